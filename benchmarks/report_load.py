"""Size of a rendered report and how fast its pages load in headless Chromium.

Opens the overview (``index.html``), the first page of every gallery and the
failures page of a report folder with ``pipeline.report.browser`` (Debian's
Chromium through Playwright), each ``--repeats`` times, and records the load
time (navigation start to the ``load`` event, from disk, images included),
console errors and failed or external requests. Saves full-page screenshots of
the overview and of the first gallery page of ``--gallery`` (a glob under
``galleries/``, default: the first emoji data set if any, else the first data set).

    python benchmarks/report_load.py reports/offline_demo
    python benchmarks/report_load.py reports/offline_demo --gallery 'emoji*'

Writes ``benchmarks/results/report_load.json`` and the screenshots beside it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import cpu_name  # noqa: E402

from pipeline.report.browser import open_browser  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def folder_size(folder: Path) -> dict[str, int]:
    """Files and bytes of a folder, with bytes per file extension."""
    by_kind: dict[str, int] = {}
    files = [p for p in folder.rglob("*") if p.is_file()]
    for path in files:
        kind = path.suffix.lstrip(".") or "other"
        by_kind[kind] = by_kind.get(kind, 0) + path.stat().st_size
    sizes = {f"bytes_{kind}": size for kind, size in sorted(by_kind.items())}
    return {"files": len(files), "bytes": sum(by_kind.values()), **sizes}


def first_gallery_page(report: Path, pattern: str | None) -> Path | None:
    galleries = sorted(p for p in (report / "galleries").glob("*") if p.is_dir())
    if pattern:
        galleries = [g for g in galleries if g.match(pattern)]
    elif any(g.name.startswith("emoji") for g in galleries):
        galleries = [g for g in galleries if g.name.startswith("emoji")]
    pages = [page for g in galleries for page in sorted(g.rglob("page-1.html"))]
    # Prefer a category page over the "all" page: it is what the closing note shows.
    named = [page for page in pages if page.parent.name != "all"]
    return (named or pages or [None])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="report folder (holds index.html)")
    parser.add_argument("--gallery", help="glob of the gallery folder to screenshot")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "report_load.json")
    args = parser.parse_args()
    report = args.report.resolve()
    if not (report / "index.html").is_file():
        raise SystemExit(f"{report}: no index.html (render the report first)")

    gallery = first_gallery_page(report, args.gallery)
    pages = {"overview": report / "index.html"}
    if gallery is not None:
        pages["gallery"] = gallery
    if (report / "failures.html").is_file():
        pages["failures"] = report / "failures.html"
    screenshots = {name: args.out.parent / f"report_{name}.png" for name in ("overview", "gallery")}

    measured = {}
    with open_browser() as browser:
        for name, page in tqdm(pages.items(), desc="pages"):
            runs = [
                browser.check(page, screenshot=screenshots.get(name) if i == 0 else None)
                for i in range(args.repeats)
            ]
            measured[name] = {
                "page": str(page.relative_to(report)),
                "load_ms_median": statistics.median(r.load_ms for r in runs),
                "load_ms_runs": [round(r.load_ms, 1) for r in runs],
                "problems": sorted({p for r in runs for p in r.problems}),
                "screenshot": str(screenshots[name]) if name in screenshots else None,
            }
    result = {
        "report": str(report),
        "size": folder_size(report),
        "pages": measured,
        "machine": {"cpu": cpu_name(), "cpu_count": os.cpu_count()},
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
