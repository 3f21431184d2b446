"""Static SVG charts of the evaluation tables, for the HTML report.

Inputs are the two tables of the evaluation stage:

* ``per_image``: one row per data set x task x kernel x method x image x seed.
  Rows whose ``status`` is not ``"ok"`` are left out (a table without
  ``status`` counts as all ``ok``), as in :mod:`pipeline.measure.aggregate`. It tells
  which methods are stochastic (more than one seed for an image) and feeds the
  seed-spread chart; every other chart reads the summary.
* ``summary``: one row per data set x task x kernel x method x category x
  metric with ``n``, ``mean``, ``ci_low`` and ``ci_high`` (percentile bootstrap
  95 % confidence interval of the mean). Only ``category == "all"`` rows are
  drawn. PSNR and SSIM names carry their border crop (``psnr_y_crop8``).

Conventions shared by every chart:

* One colour and one marker per method across all charts of a report: the
  sorted method names take, in turn, the Okabe-Ito colours (matplotlib's
  ``okabe_ito`` sequence, without its yellow, which is too pale on white, and
  with black last) and a cycle of six markers. Colour and marker pairs stay
  unique up to 42 methods, and the markers keep methods apart in greyscale print.
* Per-method charts are horizontal dot plots: the mean, the confidence
  interval as an error bar, methods top to bottom in name order and the value
  printed at the right edge (the best one in bold). Dots rather than bars:
  a bar's length from zero means nothing for PSNR.
* Axis labels carry the unit and say which direction is better.
* No title inside the image: the report prints title and caption beside it.
  The SVG still describes itself: matplotlib's ``metadata`` writes the title
  as the root ``<title>`` element (shown by browsers and screen readers when
  the file is opened on its own) and the alt text as its Dublin Core
  description.
* Text stays text (``svg.fonttype: none``): smaller, searchable files. The
  layout is measured with DejaVu Sans (shipped with matplotlib) and the SVG
  asks for ``'DejaVu Sans', sans-serif``; a viewer without DejaVu Sans uses
  its default sans-serif, so labels can come out slightly wider or narrower
  than laid out.
* Same inputs give byte-identical files: fixed ``svg.hashsalt`` (it seeds the
  ids of clip paths and markers), no ``Date`` metadata, seeded jitter.
* Matplotlib's global state is left alone: figures are
  :class:`matplotlib.figure.Figure` objects saved through their own canvas
  (no pyplot, no backend switch), and rcParams are changed only inside
  :func:`matplotlib.rc_context`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
import pandas as pd

from pipeline.io import write_bytes
from pipeline.measure.catalogue import METRICS
from pipeline.report.charts.common import (
    CHART_DIR,
    LPIPS,
    PSNR,
    Chart,
    ChartMetric,
    Drawn,
    Group,
    Style,
    group_per_image,
    group_rows,
    groups_of,
    method_styles,
    metric_rows,
    overall_summary,
    pick_metric,
    stochastic_methods,
    usable_per_image,
)
from pipeline.report.charts.draw import (
    dot_chart,
    overview_chart,
    plane_chart,
    spread_chart,
    training_chart,
)

__all__ = ["Chart", "make_charts", "make_training_charts", "method_styles"]

_RC: dict[str, object] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "facebench-charts",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 10,
    "axes.labelsize": 10,
    "axes.titlesize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "grid.color": "#d9d9d9",
    "grid.linewidth": 0.6,
    # Method and data set names are shown literally: a "$" must not start mathtext.
    "text.parse_math": False,
}

_SVG_METADATA_BASE = {"Date": None}


# ----------------------------------------------------------------------------- assembly


# The dot charts drawn per group after the perception-distortion plane, in order:
# (metric family, file slug, title).
_LATER_DOT_CHARTS = (
    (METRICS["lr_psnr"].family, "lr-consistency", "Low-resolution consistency per method"),
    (METRICS["identity_distance"].family, "identity", "Identity distance per method"),
    (METRICS["arcface_angle"].family, "arcface", "ArcFace identity angle per method"),
)


def _group_charts(
    group: Group,
    overall: pd.DataFrame,
    usable: pd.DataFrame,
    styles: Mapping[str, Style],
) -> list[Drawn]:
    rows = group_rows(overall, group)
    per_image = group_per_image(usable, group)
    stochastic = stochastic_methods(per_image)

    def dots(metric: ChartMetric | None, slug: str, title: str) -> Drawn | None:
        if metric is None:
            return None
        return dot_chart(group, metric_rows(rows, metric), metric, styles, stochastic, slug, title)

    psnr = pick_metric(rows, PSNR)
    lpips = pick_metric(rows, LPIPS)
    drawn = [dots(psnr, "psnr", "PSNR per method"), dots(lpips, "lpips", "LPIPS per method")]
    if psnr is not None and lpips is not None:
        drawn.append(
            plane_chart(
                group, metric_rows(rows, psnr), metric_rows(rows, lpips), psnr, lpips, styles
            )
        )
    drawn += [dots(pick_metric(rows, family), *chart) for family, *chart in _LATER_DOT_CHARTS]
    drawn.append(spread_chart(group, per_image, styles))
    return [d for d in drawn if d is not None]


def _render(drawn: Drawn) -> bytes:
    buffer = io.BytesIO()
    drawn.figure.savefig(
        buffer,
        format="svg",
        metadata={**_SVG_METADATA_BASE, "Title": drawn.title, "Description": drawn.alt},
    )
    return buffer.getvalue()


def _all_charts(
    overall: pd.DataFrame,
    usable: pd.DataFrame,
    groups: Sequence[Group],
    styles: Mapping[str, Style],
) -> Iterator[Drawn]:
    """Every chart in display order, drawn one at a time (so only one figure is alive)."""
    for family, kind in ((PSNR, "psnr"), (LPIPS, "lpips")):
        drawn = overview_chart(overall, groups, family, kind, styles)
        if drawn is not None:
            yield drawn
    for group in groups:
        yield from _group_charts(group, overall, usable, styles)


def make_charts(per_image: pd.DataFrame, summary: pd.DataFrame, out_dir: Path) -> list[Chart]:
    """Write the report's SVG charts under ``out_dir/charts/``; return them in display order.

    Order: the overview charts (PSNR, then LPIPS; only with two or more data set
    x task x kernel groups), then per group (data set, task by sizes, kernel):
    PSNR, LPIPS, perception-distortion plane (two or more methods with both),
    low-resolution consistency, identity distance, ArcFace identity angle, spread
    across seeds (methods with more than one seed for an image). A chart without data is
    not drawn. PSNR prefers the Y channel (``psnr_y_crop*``) over RGB; LPIPS
    prefers AlexNet over VGG. Each file is written atomically; existing files
    of other names under ``charts/`` are left alone.
    """
    overall = overall_summary(summary)
    usable = usable_per_image(per_image)
    methods = set(overall["method"])
    if "method" in usable.columns:
        methods |= set(usable["method"])
    styles = {m: Style(*style) for m, style in method_styles(methods).items()}
    groups = groups_of(overall)

    # Figures are made inside the context too: text objects read their font settings when built.
    with mpl.rc_context(_RC):
        return _write_charts(_all_charts(overall, usable, groups, styles), out_dir)


def make_training_charts(histories: Mapping[str, pd.DataFrame], out_dir: Path) -> list[Chart]:
    """Write one chart of training curves per model (key ``training``), by model name.

    ``histories`` maps a model's name to its ``history.parquet``
    (:data:`pipeline.train.HISTORY_COLUMNS`); an empty history draws nothing.
    """
    with mpl.rc_context(_RC):
        drawn = (training_chart(model, histories[model]) for model in sorted(histories))
        return _write_charts((chart for chart in drawn if chart is not None), out_dir)


def _write_charts(drawn: Iterable[Drawn], out_dir: Path) -> list[Chart]:
    """Render each chart to ``out_dir/charts/<slug>.svg`` (slugs made unique), in order;
    called inside ``mpl.rc_context(_RC)``, where the charts are drawn too."""
    charts: list[Chart] = []
    used: set[str] = set()
    for chart in drawn:
        slug = _unique(chart.slug, used)
        path = f"{CHART_DIR}/{slug}.svg"
        write_bytes(Path(out_dir) / path, _render(chart))
        charts.append(
            Chart(chart.key, f"chart-{slug}", chart.title, path, chart.alt, chart.caption)
        )
    return charts


def _unique(slug: str, used: set[str]) -> str:
    """``slug``, or ``slug-2``, ``slug-3``... when names collide after cleaning."""
    candidate, counter = slug, 2
    while candidate.lower() in used:
        candidate, counter = f"{slug}-{counter}", counter + 1
    used.add(candidate.lower())
    return candidate
