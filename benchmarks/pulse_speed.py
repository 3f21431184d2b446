"""PULSE search speed: seconds per (image, seed), batched vs one at a time.

1. The 32 px network of ``../shared/fixtures/stylegan/tiny.pt`` (random weights
   of PULSE's StyleGAN with 32 channels; a same-sized random network when the
   fixtures are absent): ``--images`` LR inputs x ``--seeds`` seeds, ``--steps``
   steps (100, as PULSE), once as one batch and once item by item. The eps
   target is set out of reach so that every item runs every step.
2. The full 1024 px network (PULSE's architecture, random weights): a few steps
   (``--full-steps``) for one item and for a batch of two, extrapolated
   linearly to ``--steps`` steps and labelled ``extrapolated``.
3. The Gaussian fit of the mapping network: ``--fit-samples`` samples, with the
   time extrapolated to PULSE's 1,000,000.

Writes ``benchmarks/results/pulse_speed.json`` (device, torch version, threads,
load average)::

    .venv/bin/python benchmarks/pulse_speed.py [--threads 2] [--skip-full] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.io import write_json  # noqa: E402
from pipeline.upscale.pulse import (  # noqa: E402
    bicubic_downsample,
    fit_gaussian,
    pulse_search,
)
from pipeline.upscale.stylegan import (  # noqa: E402
    StyleGANMapping,
    StyleGANSynthesis,
    load_synthesis,
)

FIXTURE = REPO.parent / "shared" / "fixtures" / "stylegan" / "tiny.pt"
UNREACHABLE_EPS = 1e-12


def tiny_network() -> tuple[StyleGANSynthesis, dict, str]:
    if FIXTURE.is_file():
        weights = torch.load(FIXTURE, map_location="cpu", weights_only=True)
        synthesis, mapping_state = load_synthesis(weights["synthesis"]), weights["mapping"]
        source = str(FIXTURE)
    else:
        torch.manual_seed(0)
        synthesis = StyleGANSynthesis(resolution=32, fmap_max=32).eval().requires_grad_(False)
        mapping_state, source = StyleGANMapping().state_dict(), "random weights (no fixture)"
    gaussian = fit_gaussian(mapping_state, n_samples=4096, progress=False)
    return synthesis, gaussian, source


def lr_inputs(synthesis: StyleGANSynthesis, gaussian: dict, count: int, size: int):
    """LR images made from generated faces with PULSE's downsampler, quantised to 8 bits."""
    generator = torch.Generator().manual_seed(99)
    latent = torch.randn(count, synthesis.num_layers, 512, generator=generator)
    noise = [
        torch.randn(count, 1, 2 ** (i // 2 + 2), 2 ** (i // 2 + 2), generator=generator)
        for i in range(synthesis.num_layers)
    ]
    with torch.no_grad():
        dlatents = torch.nn.functional.leaky_relu(latent * gaussian["std"] + gaussian["mean"], 0.2)
        hr = ((synthesis(dlatents, noise) + 1) / 2).clamp(0, 1)
        lr = bicubic_downsample(hr, synthesis.resolution // size).clamp(0, 1)
    return (lr * 255).floor() / 255


def timed_search(synthesis, gaussian, lr, seeds, steps):
    start = time.perf_counter()
    result = pulse_search(
        synthesis, gaussian, lr, seeds, steps=steps, eps=UNREACHABLE_EPS, progress=False
    )
    return time.perf_counter() - start, result


def tiny_benchmark(images: int, seeds: int, steps: int) -> dict:
    synthesis, gaussian, source = tiny_network()
    lr = lr_inputs(synthesis, gaussian, images, 8)
    pairs = [(image, seed) for seed in range(seeds) for image in range(images)]
    picks = [image for image, _ in pairs]
    seed_list = [seed for _, seed in pairs]
    timed_search(synthesis, gaussian, lr[:1], [0], 2)  # warm-up (allocator, kernels)
    batched_seconds, batched = timed_search(synthesis, gaussian, lr[picks], seed_list, steps)
    single_seconds, differences = 0.0, []
    for row, (image, seed) in enumerate(pairs):
        seconds, alone = timed_search(synthesis, gaussian, lr[[image]], [seed], steps)
        single_seconds += seconds
        differences.append(float((alone.images[0] - batched.images[row]).abs().max()))
    items = len(pairs)
    return {
        "network": f"StyleGAN synthesis {synthesis.resolution} px, {source}",
        "lr_size": 8,
        "items": items,
        "images": images,
        "seeds": seeds,
        "steps": steps,
        "batched": {
            "batch_size": items,
            "seconds_total": round(batched_seconds, 3),
            "seconds_per_item": round(batched_seconds / items, 4),
        },
        "one_at_a_time": {
            "batch_size": 1,
            "seconds_total": round(single_seconds, 3),
            "seconds_per_item": round(single_seconds / items, 4),
        },
        "speedup_batched": round(single_seconds / batched_seconds, 2),
        "max_abs_image_difference_batched_vs_alone": round(max(differences), 4),
        "note": (
            "eps set out of reach so every item runs every step; the difference column "
            f"is float rounding (other kernels for other batch sizes) amplified over {steps} steps"
        ),
    }


def full_benchmark(steps: int, full_steps: int, batches: list[int]) -> dict:
    torch.manual_seed(0)
    synthesis = StyleGANSynthesis().eval().requires_grad_(False)
    gaussian = {"mean": torch.zeros(512), "std": torch.ones(512)}
    out = {
        "network": "StyleGAN synthesis 1024 px (PULSE architecture), random weights",
        "lr_size": 32,
        "measured_steps": full_steps,
        "extrapolated_to_steps": steps,
        "runs": [],
    }
    for batch in batches:
        lr = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
        seconds, _ = timed_search(synthesis, gaussian, lr, list(range(batch)), full_steps)
        per_step_item = seconds / full_steps / batch
        out["runs"].append(
            {
                "batch_size": batch,
                "seconds_measured": round(seconds, 2),
                "seconds_per_step_per_item": round(per_step_item, 3),
                "extrapolated_seconds_per_item": round(per_step_item * steps, 1),
            }
        )
    return out


def fit_benchmark(samples: int) -> dict:
    torch.manual_seed(0)
    state = StyleGANMapping().state_dict()
    start = time.perf_counter()
    fit_gaussian(state, n_samples=samples, progress=False)
    seconds = time.perf_counter() - start
    return {
        "samples": samples,
        "seconds": round(seconds, 2),
        "extrapolated_seconds_for_1e6": round(seconds * 1_000_000 / samples, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--full-steps", type=int, default=2)
    parser.add_argument("--full-batches", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--fit-samples", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/pulse_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    result = {
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "load_average_before": [round(value, 2) for value in load_before],
        "tiny_32px": tiny_benchmark(args.images, args.seeds, args.steps),
    }
    print(result["tiny_32px"], flush=True)
    if not args.skip_full:
        result["full_1024px_extrapolated"] = full_benchmark(
            args.steps, args.full_steps, args.full_batches
        )
        print(result["full_1024px_extrapolated"], flush=True)
    result["gaussian_fit"] = fit_benchmark(args.fit_samples)
    result["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
