"""A small SRResNet trained on faces for a wall-clock budget, scored against bicubic.

Training: the CelebA-HQ photos of ``../shared/data/celeba_hq`` (101 aligned
faces; the last ``--val`` of them, by name, validate), brought to 128 px and
downscaled to 32 px with ``pil-bicubic`` (``pipeline.resize``: the kernel the
workflow's default LR inputs use). The photos are aligned crops already
(CelebA-HQ's and FFHQ's own alignment), so no detection or alignment runs. The
model (``--variant``, default BasicSR's MSRResNet, whose bilinear skip lets a
short run start near bilinear; ``--num-feat``, ``--num-block``) trains with
``pipeline.train.loop.train`` (checkpoints, history, everything the workflow's
train job does) for as many iterations as fit ``--budget-minutes``, estimated
from timed steps, with a cosine schedule.

Evaluation: the FFHQ photos of ``../shared/data/ffhq`` (never trained on) at
32 -> 128: PSNR-Y (BasicSR conventions, 4 px border cut) and LPIPS (AlexNet)
of the trained model and of the pipeline's ``bicubic`` method, and the margin.

Throughput: images/s per training step of each recipe in
``workflow/configs/train-*.yaml`` (``pipeline.train.loop.time_steps``: random
batches of the recipe's size, after a warm-up step), fp32 and, with ``--bf16``,
under bf16 autocast; and the projected hours for the face recipe's 200k
iterations at that speed. On a GPU (``--device cuda``) the same figures hold
for it.

The machine may be shared: wall-clock figures slow down with its load (kept
in the JSON); CPU seconds per step are given beside them.

    python benchmarks/train_small.py --budget-minutes 10
    python benchmarks/train_small.py --device cuda --bf16

Needs ../shared (data and LPIPS weights). Writes ``benchmarks/results/train_small.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import device_name, run_facts  # noqa: E402

from pipeline.config import apply_definition  # noqa: E402
from pipeline.io import load_array, write_json  # noqa: E402
from pipeline.measure.perceptual import load_lpips, lpips_distance  # noqa: E402
from pipeline.measure.quality import psnr_batch  # noqa: E402
from pipeline.resize import downscale  # noqa: E402
from pipeline.train import loop  # noqa: E402
from pipeline.train.crops import Crops  # noqa: E402
from pipeline.upscale import build_method  # noqa: E402
from pipeline.upscale.torch_runtime import round_to_uint8, to_tensor  # noqa: E402

SHARED = REPO.parent / "shared"
LR, HR, CROP = 32, 128, 4
KERNEL = "pil-bicubic"
FACE_RECIPE_ITERATIONS = 200_000


def load_set(folder: Path) -> Crops:
    """Every photo of ``folder`` at HR px and its LR input, sorted by name."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    hr = np.stack([downscale(load_array(p), HR, KERNEL) for p in paths])
    lr = np.stack([downscale(image, LR, KERNEL) for image in hr])
    return Crops(hr=hr, lr=lr, image_ids=[p.stem for p in paths])


def subset(crops: Crops, chosen: slice) -> Crops:
    return Crops(hr=crops.hr[chosen], lr=crops.lr[chosen], image_ids=crops.image_ids[chosen])


def model_block(args: argparse.Namespace, iterations: int) -> dict[str, Any]:
    block = {
        "dataset": "celeba_hq",
        "variant": args.variant,
        "num_feat": args.num_feat,
        "num_block": args.num_block,
        "task": {"lr": LR, "hr": HR},
        "optimiser": {"lr": args.lr},
        "schedule": {"kind": "cosine", "eta_min": args.lr / 20},
        "iterations": iterations,
        "batch_size": args.batch_size,
        "seed": 0,
        "checkpoint_every": max(1, iterations // 4),
        "validate_every": max(1, iterations // 8),
        "bf16": args.bf16,
    }
    return apply_definition("model", block, "benchmarks/train_small")


def upscale_with(run_generator: Any, model: dict, lr: np.ndarray, device: str) -> np.ndarray:
    import torch

    output_range = loop.output_range_of(model)
    run_generator.eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(lr), 16):
            tensor = to_tensor(np.ascontiguousarray(lr[start : start + 16]), device)
            outputs.append(round_to_uint8(loop.to_unit(run_generator(tensor), output_range)))
    return np.concatenate(outputs)


def scores(sr: np.ndarray, hr: np.ndarray, lpips_model: Any) -> dict[str, float]:
    return {
        "psnr_y": float(np.mean(psnr_batch(sr, hr, CROP, y_channel=True))),
        "lpips_alex": float(np.mean(lpips_distance(lpips_model, sr, hr))),
    }


def recipe_throughput(device: str, bf16: bool, steps: int) -> dict[str, Any]:
    """images/s per training step of every shipped recipe's models (each once).

    A VGG loss runs with the VGG16 features of ../shared/weights at relu5_3 in
    place of the recipes' VGG19 relu5_4 (no VGG19 there): a slightly cheaper
    loss network than the recipe's.
    """
    out: dict[str, Any] = {}
    seen: list[dict[str, Any]] = []
    for path in sorted((REPO / "workflow" / "configs").glob("train-*.yaml")):
        for name, block in yaml.safe_load(path.read_text())["models"].items():
            model = apply_definition("model", block, f"{path.name}: models.{name}")
            if model in seen:
                continue
            seen.append(model)
            vgg = None
            if model["loss"] in ("vgg", "mse+vgg"):
                model["vgg"] = {**model["vgg"], "net": "vgg16", "layer": "relu5_3"}
                vgg = SHARED / "weights" / "vgg16_features.pth"
            for precision in ("fp32", "bf16") if bf16 else ("fp32",):
                timed = loop.time_steps(
                    model, device, bf16=precision == "bf16", steps=steps, warmup=1, vgg=vgg
                )
                hours = FACE_RECIPE_ITERATIONS * timed["seconds_per_step"] / 3600
                out[f"{path.stem}/{name}/{precision}"] = {
                    **timed,
                    "batch_size": model["batch_size"],
                    "task": model["task"],
                    "num_block": model["num_block"],
                    "arch": model["arch"],
                    "loss": model["loss"] + (" (vgg16 relu5_3 stand-in)" if vgg else ""),
                    "hours_for_200k_iterations": hours,
                    "hours_for_its_iterations": model["iterations"]
                    * timed["seconds_per_step"]
                    / 3600,
                }
                print(f"{path.stem} {name} {precision}: {timed['images_per_s']:.2f} images/s, "
                      f"{hours:.1f} h for 200k iterations")  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="also train and time under bf16")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    # BasicSR's MSRResNet by default: it adds a bilinear upsampling of its input,
    # so a short training starts near bilinear and learns the residual.
    parser.add_argument("--variant", default="msrresnet", choices=["paper", "msrresnet"])
    parser.add_argument("--num-feat", type=int, default=24)
    parser.add_argument("--num-block", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--val", type=int, default=8)
    parser.add_argument("--throughput-steps", type=int, default=3)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "train_small.json"
    )
    args = parser.parse_args()
    if args.budget_minutes > 10:
        parser.error("--budget-minutes: at most 10 (the benchmark's stated budget)")
    import torch

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    device = args.device
    faces = load_set(SHARED / "data" / "celeba_hq")
    train = subset(faces, slice(0, len(faces) - args.val))
    validation_set = subset(faces, slice(len(faces) - args.val, None))
    test = load_set(SHARED / "data" / "ffhq")
    weights = SHARED / "weights"
    lpips_model = load_lpips(
        "alex", weights / "alexnet_features.pth", weights / "lpips_v0.1_alex_lin.pth", device
    )

    # Iterations that fit the budget, from timed steps of this model (the
    # validations and checkpoints take the rest of it).
    probe = loop.time_steps(model_block(args, 1), device, bf16=args.bf16, steps=3, warmup=1)
    budget = args.budget_minutes * 60
    iterations = max(1, int(0.9 * budget / probe["seconds_per_step"]))
    model = model_block(args, iterations)
    print(f"training {iterations} iterations ({probe['seconds_per_step']:.3f} s per step)")
    validation = loop.Validation(crops=validation_set, crop_border=CROP, lpips=lpips_model)
    began, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as folder:
        history = loop.train(
            model,
            train,
            validation,
            Path(folder) / "checkpoint.pth",
            Path(folder) / "history.parquet",
            device=device,
            name="train_small",
        )
        state = torch.load(Path(folder) / "checkpoint.pth", weights_only=True)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    generator = loop.make_generator(model).to(device)
    generator.load_state_dict(state["params"])
    trained = scores(upscale_with(generator, model, test.lr, device), test.hr, lpips_model)
    bicubic = build_method({"arch": "interpolate", "filter": "bicubic"}, device)
    baseline = scores(bicubic(test.lr, HR, [0] * len(test.lr)).images, test.hr, lpips_model)
    result: dict[str, Any] = {
        "device": device_name(device),
        "task": f"{LR} -> {HR}, {KERNEL} LR inputs",
        "train_set": f"../shared/data/celeba_hq: {len(train)} train, {len(validation_set)} val",
        "test_set": f"../shared/data/ffhq: {len(test)} photos",
        "model": {k: model[k] for k in ("variant", "num_feat", "num_block", "batch_size")},
        "learning_rate": args.lr,
        "iterations": iterations,
        "budget_minutes": args.budget_minutes,
        "training_seconds": seconds,
        "training_cpu_seconds": cpu,
        "history": history.to_dict(orient="records"),
        "test": {
            "trained": trained,
            "bicubic": baseline,
            "psnr_y_margin_db": trained["psnr_y"] - baseline["psnr_y"],
            "lpips_margin": baseline["lpips_alex"] - trained["lpips_alex"],
        },
    }
    print(f"FFHQ test: trained {trained}, bicubic {baseline}")
    if not args.skip_throughput:
        result["recipes"] = recipe_throughput(device, args.bf16, args.throughput_steps)
    result["run"] = run_facts(load_before)
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
