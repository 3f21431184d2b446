"""Throughput of face preparation: detection, alignment to 128 px, both; and photo success rates.

Per image, as the ``detect_faces`` and ``align`` stages do it: ``detect_face``
(dlib, centre-crop fallback) and then ``align_face`` to 128 px on the quad it
returns. Each image is decoded before the clock starts (decoding is timed on
its own); detection and alignment are timed separately on every image, and
"both" is their sum per image. Figures are images per second of one core:
images / process CPU seconds (the run is single-threaded; with ``taskset`` the
process has one core), and images / wall-clock seconds beside them.

Sets:

- photos: ``../shared/data/celeba_hq`` and ``../shared/data/ffhq`` (every
  image), HOG with upsample 1 (the default of ``prepare.detector``) and 0,
  pad 0; the share with status ``ok`` (a face found) per folder is reported,
  the issue asks for >= 95 %;
- emoji: one vector platform (256 px) and one raster platform (64 px), each with
  its best policy from ``benchmarks/results/emoji_detection.json`` (run
  ``emoji_detection.py`` first), on the same seeded sample as that study.

Run it on one core::

    taskset -c 1 .venv/bin/python benchmarks/prepare_throughput.py \\
        --packages /tmp/emoji_pkgs --render-dir /tmp/emoji_render [--emoji noto apple]

Without ``--packages`` only the photos are measured. Writes
``benchmarks/results/prepare_throughput.json`` and prints a Markdown table.
"""

from __future__ import annotations

import os

# One thread everywhere, before numpy or torch start their pools.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from PIL import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import cpu_name, run_facts  # noqa: E402
from emoji_detection import Policy, catalog_platform, sample_rows  # noqa: E402

from pipeline.data.kinds.emoji import DEFAULT_SIZE, PLATFORMS  # noqa: E402
from pipeline.geometry import center_square_quad  # noqa: E402
from pipeline.io import load_rgb, write_json  # noqa: E402
from pipeline.prepare import align, detect  # noqa: E402

SHARED_DATA = REPO.parent / "shared" / "data"
PHOTO_SETS = ("celeba_hq", "ffhq")
PHOTO_POLICIES = (Policy("hog", 1, 0.0, 0), Policy("hog", 0, 0.0, 0))
ALIGNED_SIZE = 128
DETECTION_STUDY = REPO / "benchmarks" / "results" / "emoji_detection.json"
RESULTS = REPO / "benchmarks" / "results" / "prepare_throughput.json"


def clocked(work: Callable[[], Any]) -> tuple[Any, float, float]:
    """``work()``'s result, its wall seconds and its process CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def measure(paths: list[Path], policy: Policy, label: str) -> dict[str, Any]:
    """Decode, detect and align every image once; per stage totals and the status counts."""
    totals = {stage: {"wall": 0.0, "cpu": 0.0} for stage in ("decode", "detect", "align")}
    statuses: dict[str, int] = {}
    sizes = []
    for path in tqdm(paths, desc=f"{label}, {policy.label}", unit="img"):
        image, wall, cpu = clocked(lambda path=path: load_rgb(path))
        totals["decode"]["wall"] += wall
        totals["decode"]["cpu"] += cpu
        result, wall, cpu = clocked(
            lambda image=image: detect.detect_face(image, **policy.options())
        )
        totals["detect"]["wall"] += wall
        totals["detect"]["cpu"] += cpu
        aligned, wall, cpu = clocked(
            lambda image=image, quad=result.quad: align.align_face(image, quad, ALIGNED_SIZE)
        )
        totals["align"]["wall"] += wall
        totals["align"]["cpu"] += cpu
        assert aligned.size == (ALIGNED_SIZE, ALIGNED_SIZE)
        statuses[result.status] = statuses.get(result.status, 0) + 1
        sizes.append(max(image.size))
    totals["detect+align"] = {
        clock: totals["detect"][clock] + totals["align"][clock] for clock in ("wall", "cpu")
    }
    n = len(paths)
    return {
        "set": label,
        "policy": policy.label,
        **policy.options(),
        "n": n,
        "image_sizes": sorted(set(sizes)),
        "statuses": statuses,
        "success_rate": round(statuses.get("ok", 0) / n, 4),
        "images_per_cpu_second": {
            stage: round(n / t["cpu"], 2) if t["cpu"] else None for stage, t in totals.items()
        },
        "images_per_wall_second": {
            stage: round(n / t["wall"], 2) if t["wall"] else None for stage, t in totals.items()
        },
    }


def photo_paths(folder: str) -> list[Path]:
    return sorted(
        p for p in (SHARED_DATA / folder).iterdir() if p.suffix.lower() in (".jpg", ".png")
    )


def best_policy(platform: str, study: Path) -> tuple[Policy, dict[str, Any]]:
    """The best policy of ``platform`` in the detection study, and the study's settings."""
    if not study.is_file():
        raise SystemExit(f"{study}: not found; run benchmarks/emoji_detection.py first")
    report = json.loads(study.read_text())
    if platform not in report["platforms"]:
        raise SystemExit(f"{study}: platform {platform} was not measured")
    measured = report["platforms"][platform]
    row = measured["policies"][measured["best"]]
    policy = Policy(row["detector"], row["upsample"], row["pad"], row["min_size"])
    return policy, report["settings"]


def warm_up() -> None:
    """Load the dlib models and run each code path once, outside the clock."""
    image = Image.new("RGB", (64, 64), (200, 180, 160))
    for detector in detect.DETECTORS:
        detect.detect_face(image, detector=detector, upsample=1, min_size=128)
    align.align_face(image, center_square_quad(64, 64), ALIGNED_SIZE)


def markdown(figures: list[dict[str, Any]]) -> str:
    lines = [
        "| set | policy | n | success | decode | detect | align 128 | detect+align |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in figures:
        speed = row["images_per_cpu_second"]
        lines.append(
            f"| {row['set']} | {row['policy']} | {row['n']} | {row['success_rate']:.3f} | "
            + " | ".join(f"{speed[s]:.2f}" for s in ("decode", "detect", "align", "detect+align"))
            + " |"
        )
    return "\n".join(lines) + "\n\n(images per CPU second of one core)"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", type=Path, help="folder of unpacked npm packages")
    parser.add_argument("--render-dir", type=Path, help="PNG cache folder of the emoji")
    parser.add_argument(
        "--emoji", nargs="+", default=["noto", "apple"], choices=list(PLATFORMS),
        help="emoji platforms to measure (default: one vector, one raster)",
    )  # fmt: skip
    parser.add_argument("--limit", type=int, help="first N images per set (quick runs)")
    parser.add_argument("--study", type=Path, default=DETECTION_STUDY)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    load_before = os.getloadavg()
    warm_up()
    figures = []
    for folder in PHOTO_SETS:
        if not (SHARED_DATA / folder).is_dir():
            print(f"skipped {folder}: {SHARED_DATA / folder} not found")
            continue
        for policy in PHOTO_POLICIES:
            figures.append(measure(photo_paths(folder)[: args.limit], policy, folder))
    if args.packages is not None:
        if args.render_dir is None:
            parser.error("--render-dir is needed with --packages")
        for name in args.emoji:
            policy, study = best_policy(name, args.study)
            manifest = catalog_platform(
                args.packages, name, args.render_dir, study.get("vector_size", DEFAULT_SIZE)
            )
            rows = sample_rows(manifest, study["sample"], study["seed"])
            paths = [Path(p) for p in rows["path"]][: args.limit]
            figures.append(measure(paths, policy, f"emoji {name}"))
    report = {
        "what": "images per second of one core: decode, detect_face, align_face to 128 px",
        "aligned_size": ALIGNED_SIZE,
        "cpu": cpu_name(),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        **run_facts(load_before),
        "figures": figures,
    }
    write_json(args.out, report)
    print(markdown(figures))
    print(f"\nwritten: {args.out}")
    return report


if __name__ == "__main__":
    main()
