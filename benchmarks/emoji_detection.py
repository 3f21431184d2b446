"""Face detection rate on emoji, per platform and detection policy, and the best policy.

For each emoji platform, a fixed seeded sample of its usable (status ``ok``)
person and face emoji is run through ``pipeline.prepare.detect.detect_face`` under every
policy of a grid (detector, upsample, pad, min_size). Per platform x policy the
JSON records the detection rate (a face found = status ``ok``), the sample size,
the seconds per image (wall clock and process CPU time; decoding not included),
and two sanity measures of the found faces: the median eye distance as a
fraction of the image width, and the fraction whose eye distance exceeds 15 %
of it (a head-sized face; a hit on a tiny detail or a false alarm falls below).
The threshold depends on the design: OpenMoji draws busts with wide margins,
whose real faces have eye distances near 11 % (checked by eye on contact
sheets), so compare the fraction within a platform only. The best policy per
platform is the highest rate (ties: the lower CPU time); with ``--full``, it is
then run on every usable emoji of the platform, unless the CPU time per image
measured on the sample says that would take longer than ``--full-max-seconds``.

The grid: HOG with upsample 0, 1, 2 and dlib's CNN with upsample 0, 1; pad 0 and
0.25 (edge padding); min_size 0 and 256 for the 64 px raster sets (vector sets
are rendered at 256 px already, where min_size does nothing). Pruned to keep the
study under 40 min of one core: the CNN with upsample 1 on 256 px images (about
3 CPU s per image, 5 s with padding, for faces already ~200 px wide, far above
the CNN's ~80 px minimum), the padded CNN on the enlarged raster sets (1.1 CPU s
per image; the padded CNN is measured on the vector sets, which are the same
size) and HOG with upsample 2 on the enlarged raster sets (a 1024 px pyramid for
the same faces).

The platforms are cataloged with the repository's own ``emoji`` kind from a
folder of unpacked npm packages (``<any>/package/package.json``, as
``npm pack`` + ``tar -xzf`` make them; ``emoji-datasource`` supplies the
metadata of the vector sets), rendering vector sets at 256 px into
``--render-dir`` (a cache). Run it on one core::

    taskset -c 1 .venv/bin/python benchmarks/emoji_detection.py /tmp/emoji_pkgs \\
        --render-dir /tmp/emoji_render [--sample 150] [--platforms apple noto] [--full]

Writes ``benchmarks/results/emoji_detection.json`` (after every platform, so
that ``--resume`` skips the platforms already measured with the same settings)
and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import cpu_name, run_facts  # noqa: E402

from pipeline.data.kinds import catalog_dataset  # noqa: E402
from pipeline.data.kinds.emoji import (  # noqa: E402
    DEFAULT_SIZE,
    PLATFORMS,
    find_packages,
    platform_package,
    renderer_version,
)
from pipeline.io import load_rgb, write_json  # noqa: E402
from pipeline.prepare import align, detect  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "emoji_detection.json"
PLAUSIBLE_EYE_FRACTION = 0.15  # eye distance / image width above which a face is plausible
ENLARGED_SIZE = 256  # min_size tried on the raster sets: the vector sets' render size


@dataclass(frozen=True)
class Policy:
    """One way to run ``detect_face``: its detector options."""

    detector: str
    upsample: int
    pad: float
    min_size: int

    @property
    def label(self) -> str:
        return f"{self.detector} up{self.upsample} pad{self.pad:g} min{self.min_size}"

    def options(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "upsample": self.upsample,
            "pad": self.pad,
            "min_size": self.min_size,
        }


def policy_grid(raster: bool) -> list[Policy]:
    """The policies tried on a raster (64 px) or vector (256 px) platform, cheapest first."""
    policies = []
    for min_size in (0, ENLARGED_SIZE) if raster else (0,):
        # The size the detector sees before its own upsampling.
        size = ENLARGED_SIZE if (min_size or not raster) else 64
        for detector, upsample in (("hog", 0), ("hog", 1), ("hog", 2), ("cnn", 0), ("cnn", 1)):
            if detector == "cnn" and upsample and size >= ENLARGED_SIZE:
                continue  # ~5 s/image on one core; faces are already far above the minimum
            if detector == "hog" and upsample == 2 and min_size:
                continue  # a 1024 px pyramid for ~200 px faces
            for pad in (0.0, 0.25):
                if detector == "cnn" and pad and min_size:
                    continue  # 1.1 CPU s/image; measured at this size on the vector sets

                policies.append(Policy(detector, upsample, pad, min_size))
    return policies


# --------------------------------------------------------------------------- data


def catalog_platform(packages: Path, name: str, render_dir: Path, size: int) -> pd.DataFrame:
    """The platform's manifest, made by the repository's ``emoji`` kind."""
    package = platform_package(packages, PLATFORMS[name])
    metadata = [p for p in find_packages(packages) if p.name == "emoji-datasource"]
    options: dict[str, Any] = {
        "platform": name,
        "render_dir": str(render_dir / name),
        "size": size,
    }
    if metadata:
        options["metadata_root"] = str(metadata[0].folder)
    return catalog_dataset("emoji", package.folder, options)


def emoji_key(image_id: str) -> str:
    """``<platform>__<codepoints>__<condition>`` without the platform: the same on all."""
    return image_id.split("__", 1)[1]


def sample_rows(manifest: pd.DataFrame, count: int, seed: int) -> pd.DataFrame:
    """``count`` usable rows, drawn so that every platform gets the same emoji where it can.

    The order is a seeded permutation of the emoji keys (codepoints + skin tone),
    which do not depend on the platform; each platform takes the first ``count``
    keys it draws.
    """
    usable = manifest[manifest["status"] == "ok"].copy()
    usable["key"] = usable["image_id"].map(emoji_key)
    keys = sorted(usable["key"])
    order = {key: rank for rank, key in enumerate(np.random.default_rng(seed).permutation(keys))}
    usable["rank"] = usable["key"].map(order)
    return usable.sort_values("rank").head(count).drop(columns=["rank"])


# --------------------------------------------------------------------------- measuring


def eye_fraction(result: detect.FaceResult, width: int) -> float | None:
    """Eye distance of a found face as a fraction of the image width (None: no face)."""
    if result.status != "ok":
        return None
    eyes = align.eye_centres(result.landmarks)
    return float(np.hypot(*(eyes[1] - eyes[0])) / width)


def run_policy(images: list[Image.Image], policy: Policy) -> list[dict[str, Any]]:
    """One record per image: found, eye fraction, wall and CPU seconds of ``detect_face``."""
    records = []
    for image in images:
        wall, cpu = time.perf_counter(), time.process_time()
        result = detect.detect_face(image, fallback="none", **policy.options())
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        records.append(
            {
                "found": result.status == "ok",
                "eye_fraction": eye_fraction(result, image.width),
                "wall": wall,
                "cpu": cpu,
            }
        )
    return records


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    found = [r for r in records if r["found"]]
    plausible = [r for r in found if r["eye_fraction"] > PLAUSIBLE_EYE_FRACTION]
    return {
        "n": len(records),
        "found": len(found),
        "rate": round(len(found) / len(records), 4) if records else None,
        "plausible_fraction": round(len(plausible) / len(found), 4) if found else None,
        "median_eye_fraction": (
            round(float(np.median([r["eye_fraction"] for r in found])), 4) if found else None
        ),
        "seconds_per_image": round(sum(r["wall"] for r in records) / len(records), 4),
        "cpu_seconds_per_image": round(sum(r["cpu"] for r in records) / len(records), 4),
    }


def best_policy(per_policy: dict[str, dict[str, Any]]) -> str:
    """Highest rate; ties go to the lower CPU time per image."""
    return min(
        per_policy,
        key=lambda label: (-per_policy[label]["found"], per_policy[label]["cpu_seconds_per_image"]),
    )


def warm_up(image: Image.Image) -> None:
    """Load the dlib models and run each path once, so that no policy's time includes that."""
    for detector in detect.DETECTORS:
        for upsample in (0, 1):
            detect.detect_face(image, detector=detector, upsample=upsample)


def measure_platform(name: str, manifest: pd.DataFrame, args: argparse.Namespace) -> dict[str, Any]:
    raster = PLATFORMS[name].kind == "raster"
    sample = sample_rows(manifest, args.sample, args.seed)
    images = [load_rgb(path) for path in sample["path"]]
    warm_up(images[0])
    per_policy: dict[str, dict[str, Any]] = {}
    outcomes: dict[str, list[dict[str, Any]]] = {}
    for policy in tqdm(policy_grid(raster), desc=f"{name} policies", unit="policy"):
        records = run_policy(images, policy)
        outcomes[policy.label] = records
        per_policy[policy.label] = {**asdict(policy), **summarise(records)}
        tqdm.write(f"{name:9s} {policy.label:24s} {per_policy[policy.label]['rate']:.3f}")
    best = best_policy(per_policy)
    return {
        "kind": PLATFORMS[name].kind,
        "image_size": int(images[0].width),
        "usable": int((manifest["status"] == "ok").sum()),
        "policies": per_policy,
        "best": best,
        # Per image, so that the full-set run can reuse the sample's outcomes.
        "best_outcomes": {
            image_id: record
            for image_id, record in zip(sample["image_id"], outcomes[best], strict=True)
        },
    }


def run_full(manifest: pd.DataFrame, measured: dict[str, Any], max_seconds: float) -> dict:
    """The best policy on every usable emoji (the sample's outcomes are reused)."""
    best = measured["policies"][measured["best"]]
    done = measured["best_outcomes"]
    usable = manifest[manifest["status"] == "ok"]
    rest = usable[~usable["image_id"].isin(list(done))]
    estimate = best["cpu_seconds_per_image"] * len(rest)
    facts: dict[str, Any] = {"estimated_cpu_seconds": round(estimate, 1)}
    if estimate > max_seconds:
        facts["skipped"] = f"estimated {estimate:.0f} CPU s > {max_seconds:.0f} s"
        return facts
    policy = Policy(best["detector"], best["upsample"], best["pad"], best["min_size"])
    records = list(done.values())
    began = time.perf_counter()
    for path in tqdm(list(rest["path"]), desc=f"full set, {policy.label}", unit="img"):
        records += run_policy([load_rgb(path)], policy)
    facts.update(summarise(records), seconds=round(time.perf_counter() - began, 1))
    return facts


# --------------------------------------------------------------------------- report


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| platform | policy | n | rate | plausible | s/img (CPU) | s/img (wall) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, info in report["platforms"].items():
        for label, row in info["policies"].items():
            mark = " **best**" if label == info["best"] else ""
            lines.append(
                f"| {name} | {label}{mark} | {row['n']} | {row['rate']:.3f} | "
                f"{_fmt(row['plausible_fraction'])} | {row['cpu_seconds_per_image']:.3f} | "
                f"{row['seconds_per_image']:.3f} |"
            )
    lines += [
        "",
        "| platform | best policy | sample rate | full-set rate (n) | full-set time |",
        "|---|---|---|---|---|",
    ]
    for name, info in report["platforms"].items():
        best = info["policies"][info["best"]]
        full = info.get("full", {})
        if "rate" in full:
            full_rate, full_time = f"{full['rate']:.3f} ({full['n']})", f"{full['seconds']} s"
        else:
            full_rate = full.get("skipped", "not run")
            full_time = f"~{full['estimated_cpu_seconds']} CPU s" if full else ""
        lines.append(
            f"| {name} | {info['best']} | {best['rate']:.3f} | {full_rate} | {full_time} |"
        )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What a platform's figures depend on; ``--resume`` reuses only matching ones."""
    return {
        "sample": args.sample,
        "seed": args.seed,
        "vector_size": args.size,
        "plausible_eye_fraction": PLAUSIBLE_EYE_FRACTION,
        "renderer": renderer_version(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", type=Path, help="folder of unpacked npm packages")
    parser.add_argument("--render-dir", type=Path, required=True, help="PNG cache folder")
    parser.add_argument("--platforms", nargs="+", default=list(PLATFORMS), choices=list(PLATFORMS))
    parser.add_argument("--sample", type=int, default=150, help="emoji per platform")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="vector render size")
    parser.add_argument("--full", action="store_true", help="run the best policy on all emoji")
    parser.add_argument(
        "--full-max-seconds", type=float, default=480.0, help="skip longer full runs (CPU s)"
    )
    parser.add_argument("--resume", action="store_true", help="keep matching platforms of --out")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    load_before = os.getloadavg()
    report: dict[str, Any] = {
        "what": "share of usable emoji where detect_face finds a face, per policy",
        "settings": settings(args),
        "cpu": cpu_name(),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "platforms": {},
    }
    if args.resume and args.out.is_file():
        import json

        previous = json.loads(args.out.read_text())
        if previous.get("settings") == report["settings"]:
            report["platforms"] = previous.get("platforms", {})
    for name in args.platforms:
        measured = report["platforms"].get(name)
        if measured is not None and (not args.full or "rate" in measured.get("full", {})):
            continue
        manifest = catalog_platform(args.packages, name, args.render_dir, args.size)
        if measured is None:
            measured = report["platforms"][name] = measure_platform(name, manifest, args)
        if args.full:
            measured["full"] = run_full(manifest, measured, args.full_max_seconds)
        report.update(run_facts(load_before))
        write_json(args.out, report)
    print(markdown(report))
    print(f"\nwritten: {args.out}")
    return report


if __name__ == "__main__":
    main()
