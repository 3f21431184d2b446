"""How the report writes things: metric values and labels, tasks, categories, ids, sorting.

Metric labels, units, directions and number formats come from the metric
catalogue (:mod:`pipeline.measure.catalogue`); a metric it does not know gets
its own name, three decimals and a direction guessed from its name, or none.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from pipeline.measure.catalogue import METRICS, display_order, split_crop

# Typographic characters shown in the report, spelled as escapes so the source stays ASCII.
MISSING = "\u2013"  # en dash: a value that is absent or NaN
INFINITY = "\u221e"
MINUS = "\u2212"
TIMES = "\u00d7"
ARROW = "\u2192"


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class MetricInfo:
    """How a metric is labelled, formatted and compared in the report.

    ``style`` is a format type: ``f`` fixed decimals, ``e`` scientific.
    """

    label: str
    short: str
    higher_is_better: bool | None
    decimals: int
    unit: str = ""
    style: str = "f"


# Fallback by name when a metric is not in the catalogue; first matching rule wins.
_HIGHER_PREFIXES = ("psnr", "ssim", "ms_ssim", "identity_sim", "cosine")
_LOWER_PATTERNS = (
    "lpips",
    "dists",
    "fid",
    "niqe",
    "mse",
    "mae",
    "rmse",
    "distance",
    "error",
    "nme",
)


def metric_info(metric: str) -> MetricInfo:
    """Label, direction and number format of ``metric``.

    Summary names carry their crop (``psnr_y_crop8``): the crop goes into the
    label. Unknown metrics get their own name as label, three decimals and no
    direction (``higher_is_better=None``), so the report never claims an order
    it does not know.
    """
    base, crop = split_crop(metric)
    known = METRICS.get(base)
    if known is not None:
        info = MetricInfo(
            known.label,
            known.short,
            known.higher_is_better,
            known.decimals,
            known.unit,
            known.style,
        )
    else:
        name = base.lower()
        direction: bool | None = None
        if name.startswith(_HIGHER_PREFIXES):
            direction = True
        elif any(p in name for p in _LOWER_PATTERNS):
            direction = False
        decimals = 2 if name.startswith("psnr") else 4 if "ssim" in name else 3
        info = MetricInfo(base, base, direction, decimals)
    if crop is not None:
        info = replace(info, label=f"{info.label}, crop {crop}")
    return info


def format_value(metric: str, value: Any) -> str:
    """Format one metric value with the metric's fixed number format.

    Infinity (PSNR of identical images) becomes ``INFINITY``; None and NaN become ``MISSING``.
    """
    if value is None or pd.isna(value):
        return MISSING
    value = float(value)
    if math.isinf(value):
        return INFINITY if value > 0 else MINUS + INFINITY
    info = metric_info(metric)
    return f"{value:.{info.decimals}{info.style}}"


def metric_caption(metric: str, value: Any) -> str:
    info = metric_info(metric)
    text = format_value(metric, value)
    unit = f" {info.unit}" if info.unit and text != MISSING else ""
    return f"{info.short} {text}{unit}"


def ordered_metrics(names: Iterable[str]) -> list[str]:
    """Metrics in the order of the report's tables (headline metrics first)."""
    return display_order(names)


def first_of_each_family(columns: Iterable[str]) -> list[str]:
    """Of the catalogued metrics among ``columns``, the first of each family in table order
    (PSNR-Y over PSNR-RGB, LPIPS AlexNet over VGG): the metrics under a gallery image."""
    present = set(columns)
    shown: dict[str, str] = {}
    for name in display_order(m for m in METRICS if m in present):
        shown.setdefault(METRICS[name].family, name)
    return list(shown.values())


def first_of_family(columns: Iterable[str], family: str) -> str | None:
    """The first metric of ``family`` among ``columns``, in table order; None if none."""
    present = set(columns)
    names = [m for m in display_order(present) if m in METRICS and METRICS[m].family == family]
    return names[0] if names else None


# --------------------------------------------------------------------------- words and ids


Key = tuple[str, str, str]  # (dataset, task, kernel)


def key_sort(key: Key) -> tuple[Any, ...]:
    dataset, task, kernel = key
    return (dataset, task_sort(task), kernel)


def task_sort(task: str) -> tuple[Any, ...]:
    # Tasks like "16to128" sort by HR size, then LR size, not as strings.
    match = re.fullmatch(r"(\d+)to(\d+)", task)
    return (0, int(match[2]), int(match[1]), task) if match else (1, 0, 0, task)


def task_label(task: str) -> str:
    """``16to128`` as ``16→128``; other task names unchanged."""
    match = re.fullmatch(r"(\d+)to(\d+)", task)
    return f"{match[1]}{ARROW}{match[2]}" if match else task


def natural_key(text: str) -> list[tuple[int, Any]]:
    """Sort key that orders digit runs by value, so "img2" comes before "img10"."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text)]


def slug(text: str, limit: int = 48) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")
    return slug[:limit] or "x"


def unique_id(text: str, used: set[str]) -> str:
    """A valid, unique HTML id (starts with a letter) derived from ``text``."""
    base = slug(text, 80)
    if not base[0].isalpha():
        base = f"x-{base}"
    candidate, i = base, 2
    while candidate in used:
        candidate, i = f"{base}-{i}", i + 1
    used.add(candidate)
    return candidate


def short_digest(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:10]


def as_int(value: Any) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


def text_of(value: Any) -> str:
    if value is None or (not isinstance(value, str) and is_na(value)):
        return ""
    return str(value)


def is_na(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and arrays are values, not missing
        return False


def has_path(value: Any) -> bool:
    return not is_na(value) and bool(str(value).strip())


def category_label(name: str) -> str:
    """A category as people read it: ``old_age`` -> ``old age``, ``attr:Eyeglasses`` ->
    ``attribute: Eyeglasses``, ``skin:3`` -> ``skin tone 3``."""
    prefix, sep, value = name.partition(":")
    if not sep:
        return name.replace("_", " ")
    value = value.replace("_", " ")
    named = {"attr": "attribute: ", "skin": "skin tone ", "platform": "platform: "}
    return f"{named.get(prefix, prefix.replace('_', ' ') + ': ')}{value}"


def category_list(value: Any) -> list[str]:
    """A manifest's ``categories`` cell (list, tuple, numpy array or missing) as strings."""
    if value is None or isinstance(value, str) or is_na(value):
        return [value] if isinstance(value, str) and value else []
    return [str(v) for v in value]


def seconds_text(seconds: Any) -> str:
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return scalar_text(seconds)
    if math.isnan(value):
        return MISSING
    minutes, secs = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{value:.1f} s ({hours}:{minutes:02d}:{secs:02d})"


def scalar_text(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {scalar_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(scalar_text(v) for v in value)
    return str(value)
