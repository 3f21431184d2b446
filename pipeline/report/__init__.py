"""The report stage: a static HTML report of a run, its charts, and the facts of the run.

``reports/<run_name>/`` is one self-contained folder (see :mod:`pipeline.report.render`):
an overview with the summary tables and charts (:mod:`pipeline.report.charts`),
galleries per data set and category, and a failures page. The facts of the run
come from :mod:`pipeline.report.run_info`; :mod:`pipeline.report.browser` checks
the pages in a real browser (tests, benchmarks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.report.render import render_report
from pipeline.report.run_info import collect_run_info
from pipeline.report.text import category_label, format_value, metric_info

__all__ = ["category_label", "format_value", "metric_info", "render_report", "report"]


def report(
    per_image: str | Path,
    summary: str | Path,
    manifests: Sequence[str | Path],
    faces: Sequence[str | Path],
    out_dir: str | Path,
    *,
    config: Mapping[str, Any],
    benchmarks: str | Path,
    options: Mapping[str, Any],
    histories: Sequence[str | Path] = (),
) -> Path:
    """The report stage: the run's facts and tables rendered into ``out_dir``.

    ``manifests`` and ``faces`` are ``results/<dataset>/manifest.parquet`` and
    ``faces.parquet`` (the data set is the parent folder's name); ``benchmarks``
    the folder of Snakemake's benchmark files (stage timings); ``options`` the
    config's ``report`` section; ``histories`` the trained models'
    ``resources/models/<name>/history.parquet`` (the model is the parent folder's name).
    """
    run_info = collect_run_info(
        config=config, manifests=manifests, faces=faces, benchmarks_dir=Path(benchmarks)
    )
    return render_report(
        per_image=pd.read_parquet(per_image),
        summary=pd.read_csv(summary),
        run_info=run_info,
        out_dir=Path(out_dir),
        manifests={Path(p).parent.name: pd.read_parquet(p) for p in manifests},
        faces={Path(p).parent.name: pd.read_parquet(p) for p in faces},
        histories={Path(p).parent.name: pd.read_parquet(p) for p in histories},
        **options,
    )
