"""Catalog time and counts of the photo sets (kinds yale, croppedyale, celebahq).

Unpacks the two Yale archives of ../shared/mirror into a temporary folder, catalogs
each (and the plain ../shared/data/celeba_hq folder) ``--repeat`` times, and writes
counts per status and reason and the times to JSON (default
``benchmarks/results/catalog_photos.json``)::

    .venv/bin/python benchmarks/catalog_photos.py [--repeat 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import PIL

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.data.kinds import celebahq, croppedyale, yale  # noqa: E402
from pipeline.data.sources import sha256_file, unpack  # noqa: E402
from pipeline.io import write_json  # noqa: E402

SHARED = REPO.parent / "shared"
SETS = {
    "yale": (yale.catalog, SHARED / "mirror" / "yalefaces.zip"),
    "croppedyale": (croppedyale.catalog, SHARED / "mirror" / "CroppedYale.zip"),
    "celebahq-plain": (celebahq.catalog, SHARED / "data" / "celeba_hq"),
}


def measure(name: str, catalog, source: Path, scratch: Path, repeat: int) -> dict:
    result: dict = {"source": str(source)}
    if source.is_file():
        result["source_sha256"] = sha256_file(source)
        start = time.perf_counter()
        root = unpack(source, scratch / name)
        result["unpack_seconds"] = round(time.perf_counter() - start, 3)
    else:
        root = source
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        manifest = catalog(root, {})
        seconds.append(time.perf_counter() - start)
    usable = manifest[manifest["status"] == "ok"]
    result.update(
        rows=len(manifest),
        usable=len(usable),
        by_status=manifest["status"].value_counts().to_dict(),
        by_reason={
            f"{s}: {r}": int(n)
            for (s, r), n in manifest.groupby(["status", "reason"]).size().items()
            if s != "ok"
        },
        subjects=int(usable["subject"].nunique()),
        catalog_seconds=[round(s, 3) for s in seconds],
        catalog_seconds_median=round(statistics.median(seconds), 3),
        images_per_second=round(len(manifest) / statistics.median(seconds), 1),
        megabytes=round(int(manifest["bytes"].sum()) / 1e6, 2),
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/catalog_photos.json")
    args = parser.parse_args()
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pillow": PIL.__version__,
            "platform": platform.platform(),
        },
        "sets": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        for name, (catalog, source) in SETS.items():
            if not source.exists():
                report["sets"][name] = {"skipped": f"{source} is absent"}
                continue
            report["sets"][name] = measure(name, catalog, source, Path(scratch), args.repeat)
            print(name, report["sets"][name], flush=True)
    write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
