"""Throughput of the upscalers: images per second at 32 -> 128 px, batch sizes 1 and 16.

Methods: ``bicubic`` (Pillow), ``esrgan`` (RealESRGAN_x4plus from ../shared/weights
when present, else random weights of the same network: the JSON says which),
``srresnet`` (the paper network, random weights: speed does not depend on the
values). Each configuration runs once to warm up, then repeatedly until
``--min-seconds`` have passed (and at least ``--repeats`` times); the figure is
images / wall-clock seconds over the timed calls, end to end through the
``Upscaler`` (uint8 in, uint8 out).

    python benchmarks/upscale_throughput.py            # CUDA when available, else CPU
    python benchmarks/upscale_throughput.py --device cpu --batch-sizes 1 16

Writes ``benchmarks/results/upscale_throughput.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import device_name, run_facts  # noqa: E402

from pipeline.io import write_json  # noqa: E402
from pipeline.upscale import Upscaler, build_method  # noqa: E402

SHARED_WEIGHTS = REPO.parent / "shared" / "weights" / "RealESRGAN_x4plus.pth"
LR, HR = 32, 128


def make_methods(device: str) -> dict[str, tuple[Upscaler, dict[str, Any]]]:
    from pipeline.upscale import rrdbnet, srresnet
    from pipeline.upscale.torch_runtime import NetworkUpscaler

    methods: dict[str, tuple[Upscaler, dict[str, Any]]] = {
        "bicubic": (
            build_method({"arch": "interpolate", "filter": "bicubic"}, "cpu"),
            {"device": "cpu", "weights": None},
        )
    }
    if SHARED_WEIGHTS.is_file():
        esrgan = build_method({"arch": "esrgan", "weights_path": str(SHARED_WEIGHTS)}, device)
        weights = f"shared {SHARED_WEIGHTS.name}"
    else:
        net = rrdbnet.RRDBNet().eval().to(device)
        esrgan = NetworkUpscaler(forward=net, scale=4, device=device)
        weights = "random (RRDBNet 64 feat, 23 blocks, 32 growth)"
    methods["esrgan"] = (esrgan, {"device": device, "weights": weights})
    net = srresnet.SRResNet(scale=4).eval().to(device)
    forward = srresnet.make_forward(net, (-1, 1), "unit", device)
    methods["srresnet"] = (
        NetworkUpscaler(forward=forward, scale=4, device=device),
        {"device": device, "weights": "random (paper SRResNet x4, 64 feat, 16 blocks)"},
    )
    return methods


def measure(
    model: Upscaler, batch_size: int, min_seconds: float, repeats: int
) -> dict[str, float | int]:
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, size=(batch_size, LR, LR, 3), dtype=np.uint8)
    seeds = [0] * batch_size
    model(batch, HR, seeds)  # warm-up: allocator, kernel selection
    runs, began = 0, time.perf_counter()
    while runs < repeats or time.perf_counter() - began < min_seconds:
        result = model(batch, HR, seeds)
        runs += 1
    elapsed = time.perf_counter() - began
    assert result.images.shape == (batch_size, HR, HR, 3)
    return {
        "batch_size": batch_size,
        "calls": runs,
        "seconds": round(elapsed, 4),
        "images_per_second": round(runs * batch_size / elapsed, 4),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda if any)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--methods", nargs="+", default=["bicubic", "esrgan", "srresnet"])
    parser.add_argument("--min-seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "upscale_throughput.json"
    )
    args = parser.parse_args(argv)

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    label = device_name(device)
    methods = make_methods(device)
    # Other processes on the machine slow every figure down: keep the load with them.
    load_before = os.getloadavg()
    figures = []
    todo = [(name, size) for name in args.methods for size in args.batch_sizes]
    for name, size in tqdm(todo, desc="throughput"):
        model, about = methods[name]
        speed = measure(model, size, args.min_seconds, args.repeats)
        figures.append({"method": name, **about, **speed})
        tqdm.write(f"{name:9s} batch {size:3d}: {figures[-1]['images_per_second']:.3f} images/s")
    report = {
        "task": {"lr": LR, "hr": HR, "input": "uniform random uint8 RGB"},
        "device": device,
        "device_name": label,
        "precision": "fp32 (tf32 and bf16 off)",
        **run_facts(load_before),
        "figures": figures,
    }
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
