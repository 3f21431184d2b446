"""Count the person and face emoji of every platform found in a folder of npm packages.

Usage::

    python benchmarks/emoji_counts.py PACKAGES [--out benchmarks/results/emoji_counts.json]
                                               [--size 256] [--render-dir DIR]

``PACKAGES`` holds unpacked npm packages (``<any>/package/package.json``), as
``npm pack <name>@<version>`` + ``tar -xzf`` make them: ``emoji-datasource``
and any of the platform packages of ``pipeline.data.kinds.emoji.PLATFORMS``.
Each platform found is cataloged with the ``emoji`` kind (rendering vector
sets at ``--size``, into a temporary folder unless ``--render-dir`` is given);
the JSON has, per platform, the rows by status, the emoji it lacks and the
catalog's wall time, and per category x platform the rows by status. A
Markdown table of the same goes to stdout.
"""

from __future__ import annotations

import argparse
import logging
import platform as host
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.data.kinds.emoji import (
    DEFAULT_SIZE,
    PLATFORMS,
    catalog,
    coverage,
    find_packages,
    renderer_version,
)
from pipeline.io import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "emoji_counts.json"


def count(packages: Path, render_dir: Path, size: int) -> dict:
    found = {package.name for package in find_packages(packages)}
    report: dict = {
        "packages_folder": str(packages), "render_size": size, "renderer": renderer_version(),
        "host": f"{host.node()} {host.processor() or host.machine()}",
        "platforms": {}, "categories": {}, "absent_packages": [],
    }  # fmt: skip
    for name, spec in PLATFORMS.items():
        if spec.package not in found:
            report["absent_packages"].append(spec.package)
            continue
        options = {"platform": name, "render_dir": str(render_dir / name), "size": size}
        start = time.perf_counter()
        manifest = catalog(packages, options)
        seconds = time.perf_counter() - start
        status = manifest["status"].value_counts()
        lacking = manifest[manifest["status"] == "missing"]
        report["platforms"][name] = {
            "package": manifest["package"].iloc[0],
            "metadata_package": manifest["metadata_package"].iloc[0],
            "licence": manifest["licence"].iloc[0],
            "rows": len(manifest),
            "emoji": int(manifest["subject"].nunique()),
            **{key: int(status.get(key, 0)) for key in ("ok", "missing", "error")},
            "seconds": round(seconds, 2),
            "missing_emoji": sorted(set(lacking["emoji_name"])),
            "errors": dict(manifest.loc[manifest["status"] == "error", "reason"].value_counts()),
        }
        for row in coverage(manifest).itertuples():
            report["categories"].setdefault(row.category, {})[name] = {
                "ok": int(row.ok), "missing": int(row.missing), "error": int(row.error),
            }  # fmt: skip
    return report


def markdown(report: dict) -> str:
    names = list(report["platforms"])
    lines = [
        "| platform | package | licence | rows | ok | missing | error | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, info in report["platforms"].items():
        lines.append(
            f"| {name} | {info['package']} | {info['licence']} | {info['rows']} | {info['ok']} "
            f"| {info['missing']} | {info['error']} | {info['seconds']} |"
        )
    lines += ["", "| category | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for category, per_platform in sorted(report["categories"].items()):
        cells = []
        for name in names:
            counts = per_platform.get(name, {"ok": 0, "missing": 0, "error": 0})
            extra = "".join(
                f" ({counts[key]} {key})" for key in ("missing", "error") if counts[key]
            )
            cells.append(f"{counts['ok']}{extra}")
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", type=Path, help="folder of unpacked npm packages")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="vector render size")
    parser.add_argument("--render-dir", type=Path, help="keep the PNGs here (default: temp)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.render_dir is not None:
        report = count(args.packages, args.render_dir, args.size)
    else:
        with tempfile.TemporaryDirectory(prefix="emoji-render-") as scratch:
            report = count(args.packages, Path(scratch), args.size)
    write_json(args.out, report)
    print(markdown(report))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
