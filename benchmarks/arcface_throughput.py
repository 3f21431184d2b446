"""Throughput of ArcFace embeddings (``pipeline.measure.arcface.embed``): images per second.

The network's cost does not depend on its weights, so it runs on random
weights in the published layout (no checkpoint needed). Images: real photos
from ../shared/data (FFHQ, CelebA-HQ) at 128 px (the default evaluation size,
no resampling) and 512 px (reduced to 128 px on the device); smooth synthetic
images without ../shared. Each case runs once to warm up, then until
``--min-seconds`` have passed; it reports images per wall-clock second and per
CPU second of this process (``time.process_time``: all its threads), since a
shared machine's wall clock counts other processes' work too.

    python benchmarks/arcface_throughput.py
    python benchmarks/arcface_throughput.py --images 64 --batch-sizes 1 32 --threads 1

Writes ``benchmarks/results/arcface_throughput.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import device_name, run_facts  # noqa: E402

from pipeline.io import write_json  # noqa: E402
from pipeline.measure import arcface  # noqa: E402

SHARED = REPO.parent / "shared"


def load_images(count: int, size: int) -> tuple[np.ndarray, str]:
    """``count`` uint8 RGB faces of ``size`` px and where they came from."""
    folders = [SHARED / "data" / "ffhq", SHARED / "data" / "celeba_hq"]
    paths = sorted(
        p for f in folders if f.is_dir() for p in f.iterdir() if p.suffix in (".png", ".jpg")
    )
    if paths:
        images = []
        for path in (paths * count)[:count]:
            with Image.open(path) as image:
                square = image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
            images.append(np.asarray(square))
        return np.stack(images), f"{len(set(paths[:count]))} photos of ../shared/data"
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(count, 8, 8, 3), dtype=np.uint8)
    images = [
        np.asarray(Image.fromarray(s).resize((size, size), Image.Resampling.BICUBIC)) for s in small
    ]
    return np.stack(images), "synthetic smooth images"


def timed(network: Any, images: np.ndarray, batch: int, min_seconds: float) -> dict[str, Any]:
    arcface.embed(network, images, batch)  # warm-up
    calls, wall, cpu = 0, time.perf_counter(), time.process_time()
    while calls < 1 or time.perf_counter() - wall < min_seconds:
        arcface.embed(network, images, batch)
        calls += 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "batch_size": batch,
        "images_per_call": len(images),
        "calls": calls,
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "images_per_wall_second": round(calls * len(images) / wall, 2),
        "images_per_cpu_second": round(calls * len(images) / cpu, 2) if cpu > 0 else None,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--min-seconds", type=float, default=5.0)
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "arcface_throughput.json"
    )
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()
    torch.manual_seed(0)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = []
    source = ""
    for device in devices:
        network = arcface.arcface_network().eval().to(device)
        for size in args.sizes:
            images, source = load_images(args.images, size)
            for batch in args.batch_sizes:
                row = {"device": device, "device_name": device_name(device), "size": size}
                row |= timed(network, images, batch, args.min_seconds)
                results.append(row)
                print(row, flush=True)
    out = {"images": source, "results": results, **run_facts(load)}
    write_json(args.out, out)
    return out


if __name__ == "__main__":
    main()
