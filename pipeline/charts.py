"""Static SVG charts of the evaluation tables, for the HTML report.

Inputs are the two tables of the evaluation stage:

* ``per_image``: one row per data set x task x kernel x method x image x seed.
  Rows whose ``status`` is not ``"ok"`` are left out (a table without
  ``status`` counts as all ``ok``), as in :mod:`pipeline.aggregate`. It tells
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
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pipeline.io import write_bytes

__all__ = ["Chart", "make_charts", "method_styles"]

GROUP_COLS = ("dataset", "task", "kernel")
SUMMARY_REQUIRED = (*GROUP_COLS, "method", "metric", "n", "mean", "ci_low", "ci_high")
SPREAD_REQUIRED = (*GROUP_COLS, "method", "image_id", "seed")
CHART_DIR = "charts"
OVERVIEW_KEY = "overview"

FIGURE_WIDTH_IN = 6.4
SAME_PERSON_THRESHOLD = 0.6  # dlib's convention, see pipeline.identity
STRIP_MAX_POINTS = 300  # per method; above it the spread chart shows the box only
JITTER_SEED = 0

# Typographic characters, spelled as escapes so the source stays ASCII.
EN_DASH = "\u2013"
TIMES = "\u00d7"
MIDDOT = "\u00b7"

_YELLOW = "#f0e442"
_BLACK = "#000000"
_MARKERS = ("o", "s", "^", "D", "v", "P")

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


@dataclass(frozen=True)
class Chart:
    """One rendered chart.

    ``key`` is ``"overview"`` or ``"<dataset>/<task>/<kernel>"``; ``id`` is
    unique and safe as an HTML id; ``path`` is the SVG file, posix and
    relative to ``out_dir``; ``alt`` describes the chart and its main finding,
    computed from the data; ``caption`` states the conventions (metric variant,
    error bars, n).
    """

    key: str
    id: str
    title: str
    path: str
    alt: str
    caption: str


@dataclass(frozen=True)
class _Metric:
    """How one summary metric is named, labelled, formatted and ranked."""

    name: str
    short: str
    axis_label: str
    unit: str
    decimals: int
    higher_is_better: bool

    def value(self, value: float) -> str:
        """The value with its unit, e.g. ``23.41 dB``."""
        return f"{value:.{self.decimals}f}{self.unit}"

    def number(self, value: float) -> str:
        return f"{value:.{self.decimals}f}"

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


@dataclass(frozen=True)
class _Style:
    colour: str
    marker: str


@dataclass(frozen=True)
class _Group:
    dataset: str
    task: str
    kernel: str

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.task}/{self.kernel}"

    @property
    def words(self) -> str:
        return f"data set {self.dataset}, task {self.task}, kernel {self.kernel}"

    @property
    def label(self) -> str:
        return f"{self.dataset}, {self.task}, {self.kernel}"


@dataclass(frozen=True)
class _Drawn:
    """A chart before it gets its id and path: what to write and what to say."""

    key: str
    slug: str
    title: str
    alt: str
    caption: str
    figure: Figure


# ----------------------------------------------------------------------------- styles


def _palette() -> list[str]:
    colours = [to_hex(c) for c in mpl.color_sequences["okabe_ito"]]
    colours = [c for c in colours if c not in (_YELLOW, _BLACK)]
    return [*colours, _BLACK]


def method_styles(methods: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Colour (hex) and matplotlib marker per method, assigned in sorted name order.

    The same set of names always gets the same styles, whatever the order given.
    """
    palette = _palette()
    return {
        name: (palette[i % len(palette)], _MARKERS[i % len(_MARKERS)])
        for i, name in enumerate(sorted(set(methods)))
    }


# ----------------------------------------------------------------------------- inputs


def _check_columns(frame: pd.DataFrame, required: Sequence[str], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; it has {list(frame.columns)}")


def _overall_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The ``category == "all"`` rows with finite means, group keys as strings."""
    _check_columns(summary, SUMMARY_REQUIRED, "summary table")
    rows = summary
    if "category" in rows.columns:
        rows = rows[rows["category"] == "all"]
    rows = rows.copy()
    for col in (*GROUP_COLS, "method", "metric"):
        rows[col] = rows[col].astype(object).where(rows[col].notna(), "none").astype(str)
    for col in ("n", "mean", "ci_low", "ci_high"):
        rows[col] = pd.to_numeric(rows[col], errors="raise").astype(np.float64)
    return rows[np.isfinite(rows["mean"].to_numpy())].reset_index(drop=True)


def _usable_per_image(per_image: pd.DataFrame) -> pd.DataFrame:
    """Rows with ``status == "ok"`` (all rows when there is no status), keys as strings."""
    rows = per_image
    if "status" in rows.columns:
        rows = rows[rows["status"] == "ok"]
    rows = rows.copy()
    for col in (*GROUP_COLS, "method"):
        if col in rows.columns:
            rows[col] = rows[col].astype(object).where(rows[col].notna(), "none").astype(str)
    return rows.reset_index(drop=True)


def _task_order(task: str) -> tuple[int, int, int, str]:
    """Tasks named ``<lr>to<hr>`` sort by sizes, others after them by name."""
    match = re.fullmatch(r"(\d+)to(\d+)", task)
    if match:
        return (0, int(match[1]), int(match[2]), task)
    return (1, 0, 0, task)


def _groups(overall: pd.DataFrame) -> list[_Group]:
    keys = overall[list(GROUP_COLS)].drop_duplicates().itertuples(index=False)
    groups = [_Group(*key) for key in keys]
    return sorted(groups, key=lambda g: (g.dataset, _task_order(g.task), g.kernel))


def _metric(name: str) -> _Metric | None:
    """Label and ranking of a summary metric name; None for metrics not charted."""
    crop = re.search(r"_crop(\d+)$", name)
    crop_words = f", {crop[1]} px border cropped" if crop else ""
    if re.fullmatch(r"psnr_y(_crop\d+)?", name):
        return _Metric(
            name,
            "PSNR (Y channel)",
            f"PSNR, Y channel{crop_words} (dB); higher is better",
            " dB",
            2,
            True,
        )
    if re.fullmatch(r"psnr_rgb(_crop\d+)?", name):
        return _Metric(
            name, "PSNR (RGB)", f"PSNR, RGB{crop_words} (dB); higher is better", " dB", 2, True
        )
    lpips = re.fullmatch(r"lpips_(\w+)", name)
    if lpips:
        net = {"alex": "AlexNet", "vgg": "VGG16", "squeeze": "SqueezeNet"}.get(lpips[1], lpips[1])
        return _Metric(
            name, f"LPIPS ({net})", f"LPIPS ({net}), 0 = identical; lower is better", "", 3, False
        )
    if name == "lr_psnr":
        return _Metric(
            name,
            "low-resolution consistency PSNR",
            "PSNR of the downscaled output vs the input (dB); higher is better",
            " dB",
            2,
            True,
        )
    if name == "identity_distance":
        return _Metric(
            name,
            "identity distance",
            f"dlib identity distance (< {SAME_PERSON_THRESHOLD}: same person); lower is better",
            "",
            3,
            False,
        )
    return None


def _pick_metric(rows: pd.DataFrame, patterns: Sequence[str]) -> _Metric | None:
    """The first metric, by pattern order then name, that has a finite mean in ``rows``."""
    names = sorted(set(rows["metric"]))
    for pattern in patterns:
        for name in names:
            if re.fullmatch(pattern, name):
                return _metric(name)
    return None


PSNR_PATTERNS = (r"psnr_y(_crop\d+)?", r"psnr_rgb(_crop\d+)?")
LPIPS_PATTERNS = (r"lpips_alex", r"lpips_vgg", r"lpips_\w+")


def _metric_rows(rows: pd.DataFrame, metric: _Metric) -> pd.DataFrame:
    """One row per method for ``metric``, sorted by method name."""
    picked = rows[rows["metric"] == metric.name]
    return picked.drop_duplicates("method").sort_values("method").reset_index(drop=True)


def _stochastic_methods(usable: pd.DataFrame) -> set[str]:
    """Methods with more than one seed for at least one image."""
    if not all(c in usable.columns for c in ("method", "image_id", "seed")) or usable.empty:
        return set()
    seeds = usable.groupby(["method", "image_id"])["seed"].nunique()
    return set(seeds[seeds > 1].index.get_level_values("method"))


# ----------------------------------------------------------------------------- words


def _ci_words(metric: _Metric, low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no interval"
    return f"95 % CI {metric.number(low)}{EN_DASH}{metric.value(high)}"


def _ranked(rows: pd.DataFrame, metric: _Metric) -> pd.DataFrame:
    """Best first; ties keep name order."""
    ordered = rows.sort_values("method", kind="stable")
    return ordered.sort_values(
        "mean", ascending=not metric.higher_is_better, kind="stable"
    ).reset_index(drop=True)


def _overlap(a: pd.Series, b: pd.Series) -> bool | None:
    lows, highs = (a["ci_low"], b["ci_low"]), (a["ci_high"], b["ci_high"])
    if not all(math.isfinite(v) for v in (*lows, *highs)):
        return None
    return bool(max(lows) <= min(highs))


def _finding(rows: pd.DataFrame, metric: _Metric) -> str:
    """Best method, its margin over the runner-up, and the worst, in words."""
    ranked = _ranked(rows, metric)
    best = ranked.iloc[0]
    interval = _ci_words(metric, best["ci_low"], best["ci_high"])
    best_words = f"{best['method']} at {metric.value(best['mean'])} ({interval})"
    if len(ranked) == 1:
        return f"Only method: {best_words}."
    second = ranked.iloc[1]
    text = (
        f"Best ({metric.direction}): {best_words}; "
        f"runner-up {second['method']} at {metric.value(second['mean'])}"
    )
    overlap = _overlap(best, second)
    if overlap is True:
        text += ", the two intervals overlap"
    elif overlap is False:
        text += ", the intervals do not overlap"
    if len(ranked) > 2:
        worst = ranked.iloc[-1]
        text += f"; last {worst['method']} at {metric.value(worst['mean'])}"
    return text + "."


def _n_words(rows: pd.DataFrame, stochastic: set[str]) -> str:
    counts = {m: int(n) for m, n in zip(rows["method"], rows["n"], strict=True)}
    if len(set(counts.values())) == 1:
        text = f"n = {next(iter(counts.values()))} scored outputs per method"
    else:
        text = "n per method: " + ", ".join(f"{m} {n}" for m, n in counts.items())
    pooled = sorted(stochastic & set(counts))
    if pooled:
        text += f" (seeds pooled: images {TIMES} seeds for {', '.join(pooled)})"
    return text + "."


def _excluded_words(rows: pd.DataFrame) -> str:
    if "n_excluded" not in rows.columns:
        return ""
    left_out = {
        m: int(k)
        for m, k in zip(rows["method"], rows["n_excluded"].fillna(0), strict=True)
        if k > 0
    }
    if not left_out:
        return ""
    listed = ", ".join(f"{m} {k}" for m, k in left_out.items())
    return f" Left out (status not ok, a centre crop in a face metric, NaN or infinite): {listed}."


def _convention(rows: pd.DataFrame) -> str:
    if "convention" not in rows.columns:
        return ""
    conventions = rows["convention"].dropna().astype(str)
    return f" Convention: {conventions.iloc[0]}." if len(conventions) else ""


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _ci_caption() -> str:
    return "Dots: mean; error bars: bootstrap 95 % confidence interval of the mean."


# ----------------------------------------------------------------------------- drawing


def _dot_height(n_rows: int) -> float:
    return max(1.9, 0.95 + 0.34 * n_rows)


def _error(mean: float, low: float, high: float) -> tuple[float, float]:
    """Error bar lengths below and above ``mean``; 0 where the interval is unknown."""
    below = mean - low if math.isfinite(low) else 0.0
    above = high - mean if math.isfinite(high) else 0.0
    return max(below, 0.0), max(above, 0.0)


def _dot_axes(
    ax: Axes,
    rows: pd.DataFrame,
    metric: _Metric,
    styles: Mapping[str, _Style],
) -> None:
    """Horizontal dot plot of ``rows`` (one per method, name order) on ``ax``."""
    positions = np.arange(len(rows))
    for position, row in zip(positions, rows.itertuples(index=False), strict=True):
        style = styles[row.method]
        below, above = _error(row.mean, row.ci_low, row.ci_high)
        ax.errorbar(
            [row.mean],
            [position],
            xerr=[[below], [above]],
            fmt=style.marker,
            color=style.colour,
            markersize=6,
            capsize=3,
            elinewidth=1.2,
        )
    ax.set_yticks(positions, labels=list(rows["method"]))
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel(metric.axis_label)
    ax.grid(axis="x")
    ax.set_axisbelow(True)
    ax.tick_params(axis="y", length=0)
    values = ax.secondary_yaxis("right")
    values.set_yticks(positions, labels=[metric.number(v) for v in rows["mean"]])
    values.tick_params(length=0)
    values.spines["right"].set_visible(False)
    best = _ranked(rows, metric).iloc[0]["method"]
    for label, method in zip(values.get_yticklabels(), rows["method"], strict=True):
        if method == best:
            label.set_fontweight("bold")


def _dot_chart(
    group: _Group,
    rows: pd.DataFrame,
    metric: _Metric,
    styles: Mapping[str, _Style],
    stochastic: set[str],
    kind: str,
    title: str,
    after_draw: Callable[[Axes], None] | None = None,
) -> _Drawn:
    figure = Figure(figsize=(FIGURE_WIDTH_IN, _dot_height(len(rows))), layout="constrained")
    ax = figure.add_subplot()
    _dot_axes(ax, rows, metric, styles)
    if after_draw is not None:
        after_draw(ax)
    alt = (
        f"Dot plot of the mean {metric.short} of {len(rows)} "
        f"method{'s' if len(rows) != 1 else ''} with 95 % confidence intervals, {group.words}. "
        + _finding(rows, metric)
    )
    caption = (
        f"{_capitalised(metric.short)}, metric {metric.name}; {metric.direction}. "
        f"{_ci_caption()} " + _n_words(rows, stochastic) + _excluded_words(rows) + _convention(rows)
    )
    return _Drawn(
        group.key, _slug(group, kind), f"{title} {EN_DASH} {group.label}", alt, caption, figure
    )


def _same_person_line(ax: Axes) -> None:
    ax.axvline(SAME_PERSON_THRESHOLD, color="0.45", linestyle="--", linewidth=1.0, zorder=0)
    ax.annotate(
        f"{SAME_PERSON_THRESHOLD}: same person",
        xy=(SAME_PERSON_THRESHOLD, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(3, -2),
        textcoords="offset points",
        ha="left",
        va="top",
        fontsize=9,
        color="0.35",
    )


def _pareto(points: pd.DataFrame) -> list[str]:
    """Methods no other method beats on both axes (lower x = LPIPS, higher y = PSNR)."""
    front = []
    for row in points.itertuples(index=False):
        dominated = (
            (points["x"] <= row.x)
            & (points["y"] >= row.y)
            & ((points["x"] < row.x) | (points["y"] > row.y))
        ).any()
        if not dominated:
            front.append(row.method)
    return front


def _plane_chart(
    group: _Group,
    psnr_rows: pd.DataFrame,
    lpips_rows: pd.DataFrame,
    psnr: _Metric,
    lpips: _Metric,
    styles: Mapping[str, _Style],
) -> _Drawn | None:
    """Perception-distortion plane: x = LPIPS mean, y = PSNR mean, both with CIs."""
    points = lpips_rows.merge(psnr_rows, on="method", suffixes=("_x", "_y"))
    points = points.rename(columns={"mean_x": "x", "mean_y": "y"}).sort_values("method")
    if len(points) < 2:
        return None  # one point says nothing the two dot plots do not say
    figure = Figure(figsize=(FIGURE_WIDTH_IN, 4.4), layout="constrained")
    ax = figure.add_subplot()
    x_span = float(points["x"].max() - points["x"].min()) or 1.0
    x_mid = float(points["x"].min()) + 0.75 * x_span
    for row in points.itertuples(index=False):
        style = styles[row.method]
        x_err = _error(row.x, row.ci_low_x, row.ci_high_x)
        y_err = _error(row.y, row.ci_low_y, row.ci_high_y)
        ax.errorbar(
            [row.x],
            [row.y],
            xerr=[[x_err[0]], [x_err[1]]],
            yerr=[[y_err[0]], [y_err[1]]],
            fmt=style.marker,
            color=style.colour,
            markersize=6,
            capsize=2,
            elinewidth=1.0,
        )
        # Labels go left of points in the right quarter, so that they stay inside the axes.
        right = row.x <= x_mid
        ax.annotate(
            row.method,
            xy=(row.x, row.y),
            xytext=(6 if right else -6, 4),
            textcoords="offset points",
            ha="left" if right else "right",
            va="bottom",
            fontsize=9,
        )
    front = _pareto(points)
    front_points = points[points["method"].isin(front)].sort_values("x")
    if len(front_points) > 1:
        ax.plot(
            front_points["x"],
            front_points["y"],
            color="0.55",
            linestyle=":",
            linewidth=1.0,
            zorder=0,
        )
    ax.annotate(
        "better",
        xy=(0.02, 0.98),
        xycoords="axes fraction",
        xytext=(0.13, 0.84),
        textcoords="axes fraction",
        ha="left",
        va="top",
        fontsize=9,
        color="0.35",
        arrowprops={"arrowstyle": "->", "color": "0.35", "linewidth": 1.0},
    )
    ax.margins(x=0.15, y=0.15)
    ax.set_xlabel(f"{lpips.short}, mean; lower is better")
    ax.set_ylabel(f"{psnr.short}, mean (dB); higher is better")
    ax.grid(True)
    ax.set_axisbelow(True)

    best_lpips = _ranked(lpips_rows[lpips_rows["method"].isin(points["method"])], lpips).iloc[0]
    best_psnr = _ranked(psnr_rows[psnr_rows["method"].isin(points["method"])], psnr).iloc[0]
    dominated = [m for m in points["method"] if m not in front]
    alt = (
        f"Perception-distortion plane for {len(points)} methods, {group.words}: x is the mean "
        f"{lpips.short}, lower is better; y is the mean {psnr.short}, higher is better; so the "
        f"upper left corner is best. Lowest LPIPS: {best_lpips['method']} "
        f"({lpips.value(best_lpips['mean'])}); highest PSNR: {best_psnr['method']} "
        f"({psnr.value(best_psnr['mean'])}). Not beaten on both axes by any other method: "
        f"{', '.join(front)}"
        + (f"; beaten on both by another: {', '.join(dominated)}." if dominated else ".")
    )
    caption = (
        f"x: {lpips.name}, y: {psnr.name}; each point one method's means, error bars "
        f"bootstrap 95 % confidence intervals of the means. The dotted line joins the methods "
        f"that no other method beats on both axes. "
        + _n_words(points.rename(columns={"n_y": "n"}), set())
    )
    return _Drawn(
        group.key,
        _slug(group, "plane"),
        f"Perception{EN_DASH}distortion plane {EN_DASH} {group.label}",
        alt,
        caption,
        figure,
    )


def _seed_spread(usable: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per method and image: std (ddof=1) of ``column`` across seeds, and the seed count."""
    rows = usable[np.isfinite(pd.to_numeric(usable[column], errors="coerce"))]
    grouped = rows.groupby(["method", "image_id"])[column]
    spread = pd.DataFrame({"std": grouped.std(ddof=1), "seeds": grouped.count()}).reset_index()
    return spread[spread["seeds"] > 1].sort_values(["method", "image_id"]).reset_index(drop=True)


def _spread_column(usable: pd.DataFrame) -> str | None:
    """LPIPS if any is scored, else PSNR (Y, then RGB)."""
    candidates = sorted(c for c in usable.columns if re.fullmatch(r"lpips_\w+", c))
    candidates.sort(key=lambda c: (c != "lpips_alex", c != "lpips_vgg", c))
    for column in [*candidates, "psnr_y", "psnr_rgb"]:
        if column in usable.columns:
            values = pd.to_numeric(usable[column], errors="coerce")
            if np.isfinite(values).any():
                return column
    return None


def _convergence_words(usable: pd.DataFrame, methods: Sequence[str]) -> str:
    """``converged`` counts of methods that report it (PULSE)."""
    if "converged" not in usable.columns:
        return ""
    parts = []
    for method in methods:
        flags = usable.loc[usable["method"] == method, "converged"].dropna()
        if len(flags):
            parts.append(
                f"{method}: {int(flags.astype(bool).sum())} of {len(flags)} runs converged"
            )
    return (" " + "; ".join(parts) + ".") if parts else ""


def _spread_chart(
    group: _Group, usable: pd.DataFrame, styles: Mapping[str, _Style]
) -> _Drawn | None:
    stochastic = sorted(_stochastic_methods(usable))
    if not stochastic:
        return None
    usable = usable[usable["method"].isin(stochastic)]
    column = _spread_column(usable)
    if column is None:
        return None
    spread = _seed_spread(usable, column)
    methods = [m for m in stochastic if (spread["method"] == m).any()]
    if not methods:
        return None
    metric = _metric(column)
    if metric is None:
        return None
    unit = f" ({metric.unit.strip()})" if metric.unit else ""
    figure = Figure(
        figsize=(FIGURE_WIDTH_IN, _dot_height(len(methods)) + 0.2), layout="constrained"
    )
    ax = figure.add_subplot()
    rng = np.random.default_rng(JITTER_SEED)
    for position, method in enumerate(methods):
        values = spread.loc[spread["method"] == method, "std"].to_numpy()
        style = styles[method]
        ax.boxplot(
            [values],
            positions=[position],
            orientation="horizontal",
            widths=0.5,
            whis=(5, 95),
            showfliers=False,
            patch_artist=True,
            boxprops={"facecolor": "none", "edgecolor": style.colour},
            medianprops={"color": style.colour, "linewidth": 1.8},
            whiskerprops={"color": style.colour},
            capprops={"color": style.colour},
        )
        if len(values) <= STRIP_MAX_POINTS:
            jitter = rng.uniform(-0.18, 0.18, size=len(values))
            ax.scatter(
                values,
                position + jitter,
                s=20,
                marker=style.marker,
                color=style.colour,
                alpha=0.7,
                linewidths=0,
            )
    ax.set_yticks(range(len(methods)), labels=methods)
    ax.set_ylim(len(methods) - 0.5, -0.5)
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel(f"Std of {metric.short} across seeds, per image{unit}; lower is more repeatable")
    ax.grid(axis="x")
    ax.set_axisbelow(True)

    findings = []
    for method in methods:
        per_method = spread[spread["method"] == method]
        worst = per_method.sort_values(["std", "image_id"], ascending=[False, True]).iloc[0]
        seeds = int(per_method["seeds"].max())
        findings.append(
            f"{method}: median {metric.value(float(per_method['std'].median()))} over "
            f"{len(per_method)} images with up to {seeds} seeds, largest "
            f"{metric.value(float(worst['std']))} (image {worst['image_id']})"
        )
    alt = (
        f"Box plot of the per-image standard deviation of {metric.short} across seeds for the "
        f"stochastic method{'s' if len(methods) > 1 else ''} {', '.join(methods)}, "
        f"{group.words}. " + "; ".join(findings) + "."
    )
    caption = (
        f"Each point is one image: the standard deviation (ddof = 1) of its {column} over the "
        f"method's seeds (points drawn for methods with at most {STRIP_MAX_POINTS} images, "
        f"jittered vertically). Box: quartiles and median; whiskers: 5th to 95th percentile. "
        f"The mean of these values is seed_std in the summary table."
        + _convergence_words(usable, methods)
    )
    return _Drawn(
        group.key,
        _slug(group, "seed-spread"),
        f"Spread across seeds {EN_DASH} {group.label}",
        alt,
        caption,
        figure,
    )


# ----------------------------------------------------------------------------- overview


def _overview_chart(
    overall: pd.DataFrame,
    groups: Sequence[_Group],
    patterns: Sequence[str],
    kind: str,
    styles: Mapping[str, _Style],
) -> _Drawn | None:
    """Small multiples: a panel per data set (and kernel), tasks on x, a dodged dot per method."""
    picked: list[tuple[_Group, _Metric, pd.DataFrame]] = []
    for group in groups:
        rows = _group_rows(overall, group)
        metric = _pick_metric(rows, patterns)
        if metric is not None:
            picked.append((group, metric, _metric_rows(rows, metric)))
    if len({g.key for g, _, _ in picked}) < 2:
        return None
    kernels = {g.kernel for g, _, _ in picked}
    panels = sorted({(g.dataset, g.kernel) for g, _, _ in picked})
    methods = sorted({m for _, _, rows in picked for m in rows["method"]})
    n_cols = min(3, len(panels))
    n_rows = math.ceil(len(panels) / n_cols)
    figure = Figure(figsize=(FIGURE_WIDTH_IN, 2.5 * n_rows + 0.6), layout="constrained")
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    first_metric = picked[0][1]
    dodge = 0.6 / max(len(methods), 1)
    for index, (dataset, kernel) in enumerate(panels):
        ax = axes[index // n_cols][index % n_cols]
        in_panel = [(g, m, r) for g, m, r in picked if (g.dataset, g.kernel) == (dataset, kernel)]
        in_panel.sort(key=lambda item: _task_order(item[0].task))
        for x, (_, _, rows) in enumerate(in_panel):
            for row in rows.itertuples(index=False):
                style = styles[row.method]
                offset = (methods.index(row.method) - (len(methods) - 1) / 2) * dodge
                below, above = _error(row.mean, row.ci_low, row.ci_high)
                ax.errorbar(
                    [x + offset],
                    [row.mean],
                    yerr=[[below], [above]],
                    fmt=style.marker,
                    color=style.colour,
                    markersize=5,
                    capsize=2,
                    elinewidth=1.0,
                )
        ax.set_xticks(range(len(in_panel)), labels=[g.task for g, _, _ in in_panel])
        ax.set_xlim(-0.5, len(in_panel) - 0.5)
        ax.set_title(dataset if len(kernels) == 1 else f"{dataset} {MIDDOT} {kernel}", fontsize=10)
        ax.grid(axis="y")
        ax.set_axisbelow(True)
        if index % n_cols == 0:
            ax.set_ylabel(_overview_label(first_metric))
    for index in range(len(panels), n_rows * n_cols):
        axes[index // n_cols][index % n_cols].set_visible(False)
    handles = [
        Line2D([], [], color=styles[m].colour, marker=styles[m].marker, linestyle="none", label=m)
        for m in methods
    ]
    figure.legend(
        handles=handles, loc="outside lower center", ncols=min(4, len(methods)), frameon=False
    )

    wins: dict[str, int] = {}
    for _, metric, rows in picked:
        best = _ranked(rows, metric).iloc[0]["method"]
        wins[best] = wins.get(best, 0) + 1
    win_words = ", ".join(
        f"{m} in {k}" for m, k in sorted(wins.items(), key=lambda item: (-item[1], item[0]))
    )
    family = _family(first_metric)
    alt = (
        f"Small multiples of the mean {family} with 95 % confidence intervals: one panel per data "
        f"set{' and kernel' if len(kernels) > 1 else ''} ({len(panels)}), tasks on the x axis, "
        f"{len(methods)} methods. Best ({first_metric.direction}) in each of the {len(picked)} "
        f"data set {TIMES} task {TIMES} kernel combinations: {win_words}."
    )
    variants = sorted({(g.task, m.name) for g, m, _ in picked}, key=lambda t: _task_order(t[0]))
    caption = (
        f"{family}, {first_metric.direction}. {_ci_caption()} Metric per task: "
        + ", ".join(f"{name} ({task})" for task, name in _dedupe(variants))
        + ". n per method and group as in the per-group charts."
    )
    return _Drawn(
        OVERVIEW_KEY,
        f"overview-{kind}",
        f"{family} per method and task {EN_DASH} overview",
        alt,
        caption,
        figure,
    )


def _overview_label(metric: _Metric) -> str:
    unit = f" ({metric.unit.strip()})" if metric.unit else ""
    return f"{_family(metric)}{unit}; {metric.direction}"


def _family(metric: _Metric) -> str:
    """``PSNR`` or ``LPIPS``: the overview groups variants of one family."""
    return metric.short.split(" ")[0]


def _dedupe(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


# ----------------------------------------------------------------------------- assembly


def _group_rows(overall: pd.DataFrame, group: _Group) -> pd.DataFrame:
    mask = (
        (overall["dataset"] == group.dataset)
        & (overall["task"] == group.task)
        & (overall["kernel"] == group.kernel)
    )
    return overall[mask]


def _group_per_image(usable: pd.DataFrame, group: _Group) -> pd.DataFrame:
    if not all(c in usable.columns for c in SPREAD_REQUIRED):
        return usable.iloc[0:0]
    mask = (
        (usable["dataset"] == group.dataset)
        & (usable["task"] == group.task)
        & (usable["kernel"] == group.kernel)
    )
    return usable[mask]


def _slug(group: _Group, kind: str) -> str:
    return _safe(f"{group.dataset}-{group.task}-{group.kernel}-{kind}")


def _safe(text: str) -> str:
    """Letters, digits, ``_`` and ``-`` only: safe in file names and HTML ids."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "chart"


def _group_charts(
    group: _Group,
    overall: pd.DataFrame,
    usable: pd.DataFrame,
    styles: Mapping[str, _Style],
) -> list[_Drawn]:
    rows = _group_rows(overall, group)
    per_image = _group_per_image(usable, group)
    stochastic = _stochastic_methods(per_image)
    drawn: list[_Drawn | None] = []
    psnr = _pick_metric(rows, PSNR_PATTERNS)
    lpips = _pick_metric(rows, LPIPS_PATTERNS)
    if psnr is not None:
        drawn.append(
            _dot_chart(
                group, _metric_rows(rows, psnr), psnr, styles, stochastic, "psnr", "PSNR per method"
            )
        )
    if lpips is not None:
        drawn.append(
            _dot_chart(
                group,
                _metric_rows(rows, lpips),
                lpips,
                styles,
                stochastic,
                "lpips",
                "LPIPS per method",
            )
        )
    if psnr is not None and lpips is not None:
        drawn.append(
            _plane_chart(
                group, _metric_rows(rows, psnr), _metric_rows(rows, lpips), psnr, lpips, styles
            )
        )
    lr = _pick_metric(rows, ("lr_psnr",))
    if lr is not None:
        drawn.append(
            _dot_chart(
                group,
                _metric_rows(rows, lr),
                lr,
                styles,
                stochastic,
                "lr-consistency",
                "Low-resolution consistency per method",
            )
        )
    identity = _pick_metric(rows, ("identity_distance",))
    if identity is not None:
        drawn.append(
            _dot_chart(
                group,
                _metric_rows(rows, identity),
                identity,
                styles,
                stochastic,
                "identity",
                "Identity distance per method",
                after_draw=_same_person_line,
            )
        )
    drawn.append(_spread_chart(group, per_image, styles))
    return [d for d in drawn if d is not None]


def _render(drawn: _Drawn) -> bytes:
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
    groups: Sequence[_Group],
    styles: Mapping[str, _Style],
) -> Iterator[_Drawn]:
    """Every chart in display order, drawn one at a time (so only one figure is alive)."""
    for patterns, kind in ((PSNR_PATTERNS, "psnr"), (LPIPS_PATTERNS, "lpips")):
        drawn = _overview_chart(overall, groups, patterns, kind, styles)
        if drawn is not None:
            yield drawn
    for group in groups:
        yield from _group_charts(group, overall, usable, styles)


def make_charts(per_image: pd.DataFrame, summary: pd.DataFrame, out_dir: Path) -> list[Chart]:
    """Write the report's SVG charts under ``out_dir/charts/``; return them in display order.

    Order: the overview charts (PSNR, then LPIPS; only with two or more data set
    x task x kernel groups), then per group (data set, task by sizes, kernel):
    PSNR, LPIPS, perception-distortion plane (two or more methods with both),
    low-resolution consistency, identity distance, spread across seeds
    (methods with more than one seed for an image). A chart without data is
    not drawn. PSNR prefers the Y channel (``psnr_y_crop*``) over RGB; LPIPS
    prefers AlexNet over VGG. Each file is written atomically; existing files
    of other names under ``charts/`` are left alone.
    """
    overall = _overall_summary(summary)
    usable = _usable_per_image(per_image)
    methods = set(overall["method"])
    if "method" in usable.columns:
        methods |= set(usable["method"])
    styles = {m: _Style(*style) for m, style in method_styles(methods).items()}
    groups = _groups(overall)

    charts: list[Chart] = []
    used: set[str] = set()
    # Figures are made inside the context too: text objects read their font settings when built.
    with mpl.rc_context(_RC):
        for drawn in _all_charts(overall, usable, groups, styles):
            slug = _unique(drawn.slug, used)
            path = f"{CHART_DIR}/{slug}.svg"
            write_bytes(Path(out_dir) / path, _render(drawn))
            charts.append(
                Chart(drawn.key, f"chart-{slug}", drawn.title, path, drawn.alt, drawn.caption)
            )
    return charts


def _unique(slug: str, used: set[str]) -> str:
    """``slug``, or ``slug-2``, ``slug-3``... when names collide after cleaning."""
    candidate, counter = slug, 2
    while candidate.lower() in used:
        candidate, counter = f"{slug}-{counter}", counter + 1
    used.add(candidate.lower())
    return candidate
