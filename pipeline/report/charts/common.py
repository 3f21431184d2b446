"""What every chart shares: the charted metrics, method styles, inputs, groups and words.

See :mod:`pipeline.report.charts` for the conventions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from pipeline.measure.catalogue import METRICS, Metric, display_order, split_crop
from pipeline.vocabulary import ALL_IMAGES, OK, SECTION_COLUMNS, SUMMARY_REQUIRED

GROUP_COLS = SECTION_COLUMNS
SPREAD_REQUIRED = (*GROUP_COLS, "method", "image_id", "seed")
CHART_DIR = "charts"
OVERVIEW_KEY = "overview"

FIGURE_WIDTH_IN = 6.4
STRIP_MAX_POINTS = 300  # per method; above it the spread chart shows the box only
JITTER_SEED = 0

# Typographic characters, spelled as escapes so the source stays ASCII.
EN_DASH = "\u2013"
TIMES = "\u00d7"
MIDDOT = "\u00b7"

YELLOW = "#f0e442"
BLACK = "#000000"
MARKERS = ("o", "s", "^", "D", "v", "P")


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
class ChartMetric:
    """A charted summary metric: its summary name (with the crop) and its catalogue entry."""

    name: str
    info: Metric
    crop: int | None

    @property
    def short(self) -> str:
        return self.info.words

    @property
    def unit(self) -> str:
        return f" {self.info.unit}" if self.info.unit else ""

    @property
    def higher_is_better(self) -> bool:
        return self.info.higher_is_better

    @property
    def axis_label(self) -> str:
        crop = f", {self.crop} px border cropped" if self.crop is not None else ""
        unit = f" ({self.info.unit})" if self.info.unit else ""
        return f"{self.info.axis}{crop}{unit}; {self.direction}"

    def value(self, value: float) -> str:
        """The value with its unit, e.g. ``23.41 dB``."""
        return f"{value:.{self.info.decimals}f}{self.unit}"

    def number(self, value: float) -> str:
        return f"{value:.{self.info.decimals}f}"

    @property
    def direction(self) -> str:
        return self.info.direction


@dataclass(frozen=True)
class Style:
    colour: str
    marker: str


@dataclass(frozen=True)
class Group:
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
class Drawn:
    """A chart before it gets its id and path: what to write and what to say."""

    key: str
    slug: str
    title: str
    alt: str
    caption: str
    figure: Figure


# ----------------------------------------------------------------------------- styles


def okabe_ito_palette() -> list[str]:
    colours = [to_hex(c) for c in mpl.color_sequences["okabe_ito"]]
    colours = [c for c in colours if c not in (YELLOW, BLACK)]
    return [*colours, BLACK]


def method_styles(methods: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Colour (hex) and matplotlib marker per method, assigned in sorted name order.

    The same set of names always gets the same styles, whatever the order given.
    """
    palette = okabe_ito_palette()
    return {
        name: (palette[i % len(palette)], MARKERS[i % len(MARKERS)])
        for i, name in enumerate(sorted(set(methods)))
    }


# ----------------------------------------------------------------------------- inputs


def check_columns(frame: pd.DataFrame, required: Sequence[str], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; it has {list(frame.columns)}")


def overall_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The ``category == "all"`` rows with finite means, group keys as strings."""
    check_columns(summary, SUMMARY_REQUIRED, "summary table")
    rows = summary
    if "category" in rows.columns:
        rows = rows[rows["category"] == ALL_IMAGES]
    rows = rows.copy()
    for col in (*GROUP_COLS, "method", "metric"):
        rows[col] = rows[col].astype(object).where(rows[col].notna(), "none").astype(str)
    for col in ("n", "mean", "ci_low", "ci_high"):
        rows[col] = pd.to_numeric(rows[col], errors="raise").astype(np.float64)
    return rows[np.isfinite(rows["mean"].to_numpy())].reset_index(drop=True)


def usable_per_image(per_image: pd.DataFrame) -> pd.DataFrame:
    """Rows with ``status == "ok"`` (all rows when there is no status), keys as strings."""
    rows = per_image
    if "status" in rows.columns:
        rows = rows[rows["status"] == OK]
    rows = rows.copy()
    for col in (*GROUP_COLS, "method"):
        if col in rows.columns:
            rows[col] = rows[col].astype(object).where(rows[col].notna(), "none").astype(str)
    return rows.reset_index(drop=True)


def task_order(task: str) -> tuple[int, int, int, str]:
    """Tasks named ``<lr>to<hr>`` sort by sizes, others after them by name."""
    match = re.fullmatch(r"(\d+)to(\d+)", task)
    if match:
        return (0, int(match[1]), int(match[2]), task)
    return (1, 0, 0, task)


def groups_of(overall: pd.DataFrame) -> list[Group]:
    keys = overall[list(GROUP_COLS)].drop_duplicates().itertuples(index=False)
    groups = [Group(*key) for key in keys]
    return sorted(groups, key=lambda g: (g.dataset, task_order(g.task), g.kernel))


def chart_metric(name: str) -> ChartMetric | None:
    """A summary metric name as a chart sees it; None for metrics not charted."""
    base, crop = split_crop(name)
    info = METRICS.get(base)
    return ChartMetric(name, info, crop) if info is not None and info.charted else None


def pick_metric(rows: pd.DataFrame, family: str) -> ChartMetric | None:
    """The charted metric of ``family`` that ``rows`` hold, the first in the report's order."""
    for name in display_order(rows["metric"]):
        metric = chart_metric(name)
        if metric is not None and metric.info.family == family:
            return metric
    return None


PSNR = "PSNR"
LPIPS = "LPIPS"


def metric_rows(rows: pd.DataFrame, metric: ChartMetric) -> pd.DataFrame:
    """One row per method for ``metric``, sorted by method name."""
    picked = rows[rows["metric"] == metric.name]
    return picked.drop_duplicates("method").sort_values("method").reset_index(drop=True)


def stochastic_methods(usable: pd.DataFrame) -> set[str]:
    """Methods with more than one seed for at least one image."""
    if not all(c in usable.columns for c in ("method", "image_id", "seed")) or usable.empty:
        return set()
    seeds = usable.groupby(["method", "image_id"])["seed"].nunique()
    return set(seeds[seeds > 1].index.get_level_values("method"))


# ----------------------------------------------------------------------------- words


def ci_words(metric: ChartMetric, low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no interval"
    return f"95 % CI {metric.number(low)}{EN_DASH}{metric.value(high)}"


def ranked_rows(rows: pd.DataFrame, metric: ChartMetric) -> pd.DataFrame:
    """Best first; ties keep name order."""
    ordered = rows.sort_values("method", kind="stable")
    return ordered.sort_values(
        "mean", ascending=not metric.higher_is_better, kind="stable"
    ).reset_index(drop=True)


def intervals_overlap(a: pd.Series, b: pd.Series) -> bool | None:
    lows, highs = (a["ci_low"], b["ci_low"]), (a["ci_high"], b["ci_high"])
    if not all(math.isfinite(v) for v in (*lows, *highs)):
        return None
    return bool(max(lows) <= min(highs))


def finding(rows: pd.DataFrame, metric: ChartMetric) -> str:
    """Best method, its margin over the runner-up, and the worst, in words."""
    ranked = ranked_rows(rows, metric)
    best = ranked.iloc[0]
    interval = ci_words(metric, best["ci_low"], best["ci_high"])
    best_words = f"{best['method']} at {metric.value(best['mean'])} ({interval})"
    if len(ranked) == 1:
        return f"Only method: {best_words}."
    second = ranked.iloc[1]
    text = (
        f"Best ({metric.direction}): {best_words}; "
        f"runner-up {second['method']} at {metric.value(second['mean'])}"
    )
    overlap = intervals_overlap(best, second)
    if overlap is True:
        text += ", the two intervals overlap"
    elif overlap is False:
        text += ", the intervals do not overlap"
    if len(ranked) > 2:
        worst = ranked.iloc[-1]
        text += f"; last {worst['method']} at {metric.value(worst['mean'])}"
    return text + "."


def n_words(rows: pd.DataFrame, stochastic: set[str]) -> str:
    counts = {m: int(n) for m, n in zip(rows["method"], rows["n"], strict=True)}
    if len(set(counts.values())) == 1:
        text = f"n = {next(iter(counts.values()))} scored outputs per method"
    else:
        text = "n per method: " + ", ".join(f"{m} {n}" for m, n in counts.items())
    pooled = sorted(stochastic & set(counts))
    if pooled:
        text += f" (seeds pooled: images {TIMES} seeds for {', '.join(pooled)})"
    return text + "."


def excluded_words(rows: pd.DataFrame) -> str:
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


def convention_words(rows: pd.DataFrame) -> str:
    if "convention" not in rows.columns:
        return ""
    conventions = rows["convention"].dropna().astype(str)
    return f" Convention: {conventions.iloc[0]}." if len(conventions) else ""


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def ci_caption() -> str:
    return "Dots: mean; error bars: bootstrap 95 % confidence interval of the mean."


def dot_height(n_rows: int) -> float:
    return max(1.9, 0.95 + 0.34 * n_rows)


def error_bars(mean: float, low: float, high: float) -> tuple[float, float]:
    """Error bar lengths below and above ``mean``; 0 where the interval is unknown."""
    below = mean - low if math.isfinite(low) else 0.0
    above = high - mean if math.isfinite(high) else 0.0
    return max(below, 0.0), max(above, 0.0)


def group_rows(overall: pd.DataFrame, group: Group) -> pd.DataFrame:
    mask = (
        (overall["dataset"] == group.dataset)
        & (overall["task"] == group.task)
        & (overall["kernel"] == group.kernel)
    )
    return overall[mask]


def group_per_image(usable: pd.DataFrame, group: Group) -> pd.DataFrame:
    if not all(c in usable.columns for c in SPREAD_REQUIRED):
        return usable.iloc[0:0]
    mask = (
        (usable["dataset"] == group.dataset)
        & (usable["task"] == group.task)
        & (usable["kernel"] == group.kernel)
    )
    return usable[mask]


def chart_slug(group: Group, kind: str) -> str:
    return safe(f"{group.dataset}-{group.task}-{group.kernel}-{kind}")


def safe(text: str) -> str:
    """Letters, digits, ``_`` and ``-`` only: safe in file names and HTML ids."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "chart"
