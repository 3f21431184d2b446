"""Throughput of the per-image metrics at 128 px: image pairs scored per second.

Metrics: ``psnr_y`` and ``ssim_y`` (``pipeline.measure.quality``, numpy, batched),
``lpips_alex`` (``pipeline.measure.perceptual``, batched; on CPU and, when present, on
CUDA), ``identity`` (``pipeline.measure.identity``, dlib on CPU: once with both
descriptors computed per pair, once with the ground truth's descriptor reused,
as a measure stage that caches it per image would do), ``arcface`` (the outputs'
ArcFace embeddings, batched, the ground truth's reused as the reference table
does; on CPU and CUDA). ``all default metrics`` combines the CPU figures of the
metrics ``config.yaml`` turns on: seconds per pair summed over them.

Pairs: real photos from ../shared/data (FFHQ and CelebA-HQ, resized to 128 px)
against a degraded copy (downscaled to 32 px and back with bicubic, like an
upscaler's output); without ../shared, smooth synthetic images (identity then
scores the aligned-face fallback box). Each metric runs once to warm up, then
repeatedly until ``--min-seconds`` have passed; the figure is pairs / wall-clock
seconds, uint8 arrays in, floats out (decoding PNGs is not included).

    python benchmarks/metrics_throughput.py
    python benchmarks/metrics_throughput.py --pairs 64 --min-seconds 5

Needs the LPIPS weights: ../shared/weights by default (``--weights DIR``).
ArcFace runs with ``--arcface FILE`` (GFPGAN's ``arcface_resnet18.pth``) or else
random weights: the same arithmetic, so the same speed.
Writes ``benchmarks/results/metrics_throughput.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import cpu_name, run_facts  # noqa: E402

from pipeline.io import write_json  # noqa: E402
from pipeline.measure import arcface, identity, perceptual  # noqa: E402
from pipeline.measure import quality as metrics  # noqa: E402

SHARED = REPO.parent / "shared"
SIZE, LR = 128, 32


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


def load_pairs(count: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(degraded, ground truth) uint8 stacks ``count x 128 x 128 x 3`` and where they came from."""
    folders = [SHARED / "data" / "ffhq", SHARED / "data" / "celeba_hq"]
    paths = sorted(
        p for f in folders if f.is_dir() for p in f.iterdir() if p.suffix in (".png", ".jpg")
    )
    if paths:
        hr = [_resize(np.asarray(Image.open(p).convert("RGB")), SIZE) for p in paths[:count]]
        source = f"{len(hr)} real photos from {', '.join(f.name for f in folders)}"
    else:
        rng = np.random.default_rng(0)
        small = rng.integers(0, 256, size=(count, SIZE // 16, SIZE // 16, 3), dtype=np.uint8)
        hr = [_resize(s, SIZE) for s in small]
        source = f"{count} synthetic smooth images (../shared/data absent)"
    # Repeat to the requested count when there are fewer photos.
    hr = [hr[i % len(hr)] for i in range(count)]
    sr = np.stack([_resize(_resize(h, LR), SIZE) for h in hr])
    return sr, np.stack(hr), source


def timed(run: Callable[[], Any], pairs: int, min_seconds: float) -> dict[str, float | int]:
    run()  # warm-up: caches, allocator, model files
    calls, began = 0, time.perf_counter()
    while calls < 1 or time.perf_counter() - began < min_seconds:
        run()
        calls += 1
    elapsed = time.perf_counter() - began
    return {
        "pairs_per_call": pairs,
        "calls": calls,
        "seconds": round(elapsed, 4),
        "images_per_second": round(calls * pairs / elapsed, 3),
    }


# The per-pair work of a measure job with config.yaml's metrics (ground truth reused).
DEFAULT_METRICS = ("psnr_y", "ssim_y", "lpips_alex", "identity (hr descriptor reused)", "arcface")


def combined(figures: list[dict[str, Any]]) -> dict[str, Any]:
    """Pairs per second on one CPU core with every metric of :data:`DEFAULT_METRICS`."""
    cpu = {f["metric"].split(" (batch")[0]: f for f in figures if f["device"] == "cpu"}
    seconds = sum(1.0 / cpu[name]["images_per_second"] for name in DEFAULT_METRICS)
    return {
        "metric": "all default metrics",
        "device": "cpu",
        "of": list(DEFAULT_METRICS),
        "images_per_second": round(1.0 / seconds, 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=64, help="image pairs per call")
    parser.add_argument("--identity-pairs", type=int, default=8, help="pairs per identity call")
    parser.add_argument("--lpips-batch", type=int, default=32)
    parser.add_argument("--min-seconds", type=float, default=5.0)
    parser.add_argument("--weights", type=Path, default=SHARED / "weights")
    parser.add_argument("--arcface", type=Path, help="arcface_resnet18.pth (else random weights)")
    parser.add_argument("--arcface-batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (a job's 1)")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "metrics_throughput.json"
    )
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    sr, hr, source = load_pairs(args.pairs)
    border = SIZE // LR
    alex = (args.weights / "alexnet_features.pth", args.weights / "lpips_v0.1_alex_lin.pth")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    cases: list[tuple[str, str, int, Callable[[], Any]]] = [
        ("psnr_y", "cpu", args.pairs, lambda: metrics.psnr_batch(sr, hr, border, y_channel=True)),
        ("ssim_y", "cpu", args.pairs, lambda: metrics.ssim_batch(sr, hr, border, y_channel=True)),
    ]
    for device in devices:
        model = perceptual.load_lpips("alex", *alex, device=device)
        cases.append(
            (
                f"lpips_alex (batch {args.lpips_batch})",
                device,
                args.pairs,
                lambda m=model: perceptual.lpips_distance(m, sr, hr, args.lpips_batch),
            )
        )
    for device in devices:
        if args.arcface:
            network = arcface.load_arcface(args.arcface, device)
        else:
            network = arcface.arcface_network().eval().requires_grad_(False).to(device)
        cases.append(
            (
                f"arcface (batch {args.arcface_batch})",
                device,
                args.pairs,
                lambda n=network: arcface.embed(n, sr, args.arcface_batch),
            )
        )
    n_id = min(args.identity_pairs, args.pairs)
    hr_faces = [identity.face_descriptor(h) for h in hr[:n_id]]
    cases += [
        (
            "identity (sr and hr descriptors)",
            "cpu",
            n_id,
            lambda: [identity.identity_distance(sr[i], hr[i]) for i in range(n_id)],
        ),
        (
            "identity (hr descriptor reused)",
            "cpu",
            n_id,
            lambda: [
                identity.identity_distance(sr[i], hr[i], hr_face=hr_faces[i]) for i in range(n_id)
            ],
        ),
    ]

    load_before = os.getloadavg()
    figures = []
    for name, device, pairs, run in tqdm(cases, desc="metrics"):
        figure = {"metric": name, "device": device, **timed(run, pairs, args.min_seconds)}
        figures.append(figure)
        tqdm.write(f"{name:34s} {device:5s} {figure['images_per_second']:10.2f} images/s")
    detected = [identity.face_descriptor(s)[1] for s in sr[:n_id]]
    figures.append(combined(figures))
    report = {
        "task": {"size": SIZE, "pairs": source, "degraded": f"bicubic {SIZE}->{LR}->{SIZE}"},
        "crop_border": border,
        "cpu": cpu_name(),
        "cuda_device": torch.cuda.get_device_name(0) if "cuda" in devices else None,
        "dlib_uses_blas": bool(__import__("dlib").DLIB_USE_BLAS),
        "identity_sr_faces_detected": f"{sum(detected)}/{len(detected)}",
        "torch_threads": args.threads,
        **run_facts(load_before),
        "figures": figures,
    }
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
