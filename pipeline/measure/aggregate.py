"""Aggregation of per-image metric tables into summary statistics.

Policies (stated once here, relied on by the report):

- Rows whose ``status`` is not ``"ok"`` are excluded from every metric of their
  group and counted under their status string (e.g. ``no_face``). A missing
  status (NaN/None) counts as ``status_missing``. A frame without a ``status``
  column is taken as all ``ok``.
- Rows whose ``alignment`` is ``centre_crop`` (no face was found, the image was
  centre-cropped) are excluded from the metrics that need a face
  (``face_metrics``: identity) only, reason ``centre_crop``; every other metric
  needs only the ground truth and scores them. A frame without an
  ``alignment`` column excludes nothing for this reason.
- Each summary row says which alignments its values came from (``alignment``,
  e.g. ``aligned:20;prealigned:0;centre_crop:4``), so that groups can be
  compared like with like.
- NaN metric values are excluded from that metric only, reason ``nan_<metric>``.
- Infinite metric values (PSNR of an image identical to its reference) are
  excluded from that metric only, reason ``inf_<metric>``. Neither capping (the
  cap would be arbitrary and would move the mean) nor keeping them (one such
  image would make the mean infinite) gives a number worth reporting; the
  count keeps the case visible, and an SR output identical to the ground truth
  usually means a wiring bug rather than a perfect method.
- Confidence intervals are percentile bootstraps of the mean (see
  :func:`bootstrap_ci`), with the same seed for every group and metric so that a
  summary is reproducible run to run.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

from pipeline.vocabulary import (
    ALIGNMENT_UNKNOWN,
    ALIGNMENTS,
    CENTRE_CROP,
    GROUP_COLUMNS,
    OK,
    STATUS_MISSING,
    SUMMARY_STAT_COLUMNS,
)

__all__ = [
    "DEFAULT_GROUP_COLS",
    "SUMMARY_STAT_COLUMNS",
    "bootstrap_ci",
    "summarize",
    "to_markdown",
]

DEFAULT_GROUP_COLS = GROUP_COLUMNS
ALIGNMENT_COLUMN = "alignment"

# Bootstrap resamples are drawn in chunks of rows so that the index matrix stays
# under ~32 MB however many images a group has. Successive draws from one numpy
# Generator continue the same stream, so chunking does not change the result.
_BOOT_CHUNK_ELEMENTS = 1 << 22


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values``.

    Draws ``n_boot`` resamples of size ``len(values)`` with replacement from
    ``numpy.random.default_rng(seed)`` (resample ``i`` is the ``i``-th row of
    ``rng.integers(0, n, size=(n_boot, n))``), takes each resample's mean, and
    returns the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of
    those means (numpy's default linear interpolation). One value gives
    ``(v, v)``; no values give ``(nan, nan)``. Values must be finite: filter NaN
    and infinities first (:func:`summarize` does).
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1; got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1; got {n_boot}")
    if arr.size == 0:
        return (math.nan, math.nan)
    if not np.all(np.isfinite(arr)):
        raise ValueError("bootstrap_ci needs finite values; filter NaN and inf first")
    if arr.size == 1:
        return (float(arr[0]), float(arr[0]))
    n = arr.size
    rng = np.random.default_rng(seed)
    rows_per_chunk = max(1, _BOOT_CHUNK_ELEMENTS // n)
    means = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, rows_per_chunk):
        stop = min(n_boot, start + rows_per_chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = arr[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(low), float(high))


def _reason_string(counts: Counter[str]) -> str:
    # Most frequent first, then by name, so equal inputs always print the same.
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ";".join(f"{reason}:{count}" for reason, count in ordered if count)


def _alignment_string(values: pd.Series) -> str:
    """Counts of the alignments of the rows used, ``aligned:N;prealigned:N;centre_crop:N``.

    The three known alignments always appear, in that order, so that rows line up;
    any other value (a missing one counts as ``unknown``) follows by name.
    """
    counts = Counter(ALIGNMENT_UNKNOWN if pd.isna(v) else str(v) for v in values)
    names = [*ALIGNMENTS, *sorted(set(counts) - set(ALIGNMENTS))]
    return ";".join(f"{name}:{counts[name]}" for name in names)


def _status_reasons(per_image: pd.DataFrame) -> pd.Series:
    """Exclusion reason per row from ``status``; empty string for usable rows."""
    if "status" not in per_image.columns:
        return pd.Series("", index=per_image.index, dtype=object)
    status = per_image["status"].astype(object)
    missing = status.isna()
    reasons = status.where(~missing, STATUS_MISSING).astype(str)
    return reasons.where(reasons != OK, "")


def summarize(
    per_image: pd.DataFrame,
    metrics: Sequence[str],
    group_cols: Sequence[str] = DEFAULT_GROUP_COLS,
    n_boot: int = 1000,
    seed: int = 0,
    face_metrics: Collection[str] = (),
) -> pd.DataFrame:
    """Long-format summary: one row per group x metric.

    Columns: ``group_cols`` then ``metric, n, n_excluded, excluded_reasons,
    alignment, mean, median, std, ci_low, ci_high``. ``n`` counts the values
    used, ``n_excluded`` the group's rows left out of that metric, and
    ``excluded_reasons`` spells them out as ``"reason:count;..."`` (most frequent
    first; empty when none). ``alignment`` counts the alignments of the values
    used (empty when the frame has no ``alignment`` column). Exclusion policies
    are those of the module docstring (status not ``ok``, ``centre_crop`` for
    ``face_metrics``, ``nan_<metric>``, ``inf_<metric>``). ``std`` is the sample
    standard deviation (ddof=1; NaN for a single value). A group whose rows are
    all excluded still gets its rows, with ``n = 0`` and NaN statistics.

    A row with a non-``ok`` status is counted under its status only, whatever its
    metric values. Values are sorted before bootstrapping, so the output does
    not depend on the order of the input rows.

    Groups keep missing keys (e.g. no ``kernel`` for a task without one) as their
    own group. Rows are ordered by the group keys (ascending, missing keys
    last) and, within a group, by the order of ``metrics``.
    """
    group_cols = list(group_cols)
    metrics = list(metrics)
    if not metrics:
        raise ValueError("summarize needs at least one metric column")
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics are repeated: {metrics}")
    if not group_cols:
        raise ValueError("summarize needs at least one group column")
    missing_cols = [c for c in [*group_cols, *metrics] if c not in per_image.columns]
    if missing_cols:
        raise ValueError(
            f"per-image table lacks columns {missing_cols}; it has {list(per_image.columns)}"
        )

    clash = [c for c in group_cols if c in SUMMARY_STAT_COLUMNS]
    if clash:
        raise ValueError(f"group columns {clash} clash with the summary's own columns")

    # A fresh index keeps the row alignment below exact even if the caller's has duplicates.
    per_image = per_image.reset_index(drop=True)
    status_reason = _status_reasons(per_image)
    alignment = per_image[ALIGNMENT_COLUMN] if ALIGNMENT_COLUMN in per_image.columns else None
    centre_crop = (
        alignment == CENTRE_CROP
        if alignment is not None
        else pd.Series(False, index=per_image.index)
    )
    records: list[dict[str, object]] = []
    grouped = per_image.groupby(group_cols, dropna=False, sort=True)
    for key, frame in grouped:
        keys = key if isinstance(key, tuple) else (key,)
        status_counts = Counter(status_reason.loc[frame.index])
        status_counts.pop("", None)
        usable = status_reason.loc[frame.index] == ""
        for metric in metrics:
            reasons = Counter(status_counts)
            scored = usable
            if metric in face_metrics:
                no_face = usable & centre_crop.loc[frame.index]
                reasons[CENTRE_CROP] += int(no_face.sum())
                scored = usable & ~no_face
            values = pd.to_numeric(frame.loc[scored, metric], errors="raise").to_numpy(
                dtype=np.float64
            )
            is_nan = np.isnan(values)
            is_inf = np.isinf(values)
            reasons[f"nan_{metric}"] += int(is_nan.sum())
            reasons[f"inf_{metric}"] += int(is_inf.sum())
            finite = ~(is_nan | is_inf)
            used_from = (
                ""
                if alignment is None
                else _alignment_string(alignment.loc[frame.index[scored.to_numpy()][finite]])
            )
            # Sorted so that the bootstrap, and hence the CI, does not depend on the
            # order in which per-image rows were concatenated.
            kept = np.sort(values[finite])
            ci_low, ci_high = bootstrap_ci(kept, n_boot=n_boot, seed=seed)
            records.append(
                {
                    **dict(zip(group_cols, keys, strict=True)),
                    "metric": metric,
                    "n": int(kept.size),
                    "n_excluded": int(len(frame) - kept.size),
                    "excluded_reasons": _reason_string(reasons),
                    "alignment": used_from,
                    "mean": float(kept.mean()) if kept.size else math.nan,
                    "median": float(np.median(kept)) if kept.size else math.nan,
                    "std": float(kept.std(ddof=1)) if kept.size > 1 else math.nan,
                    "ci_low": ci_low,
                    "ci_high": ci_high,
                }
            )

    columns = [*group_cols, *SUMMARY_STAT_COLUMNS]
    summary = pd.DataFrame.from_records(records, columns=columns)
    return summary.astype({"n": "int64", "n_excluded": "int64"})


def _format_value(value: float, digits: str) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return format(value, digits)


def _cell(row: pd.Series, n_group: int) -> str:
    if row["n"] == 0:
        return "n/a"
    text = _format_value(row["mean"], ".4g")
    half_width = (row["ci_high"] - row["ci_low"]) / 2.0
    if math.isfinite(half_width) and row["n"] > 1:
        text += " ± " + _format_value(half_width, ".2g")
    if row["n"] != n_group:
        text += f" (n={row['n']})"
    return text


def _escape(value: object) -> str:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return "-"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(summary: pd.DataFrame) -> str:
    """Markdown table of a :func:`summarize` result: one row per group, metrics as columns.

    Each cell is ``mean ± h`` where ``h`` is half the width of the bootstrap CI
    (the percentile interval need not be symmetric; the half-width is a compact
    stand-in, ``ci_low``/``ci_high`` stay exact in the summary table). Means show
    4 significant digits, ``h`` 2. The ``n`` column is the largest ``n`` over the
    group's metrics, and ``alignment`` the alignments of that metric's values;
    a metric with fewer values adds ``(n=K)`` to its cell. A missing group key
    prints as ``-``, a metric without values as ``n/a``.
    Groups and metrics keep the order of ``summary``.
    """
    missing = [c for c in SUMMARY_STAT_COLUMNS if c not in summary.columns]
    if missing:
        raise ValueError(f"summary lacks columns {missing}; pass the output of summarize()")
    group_cols = [c for c in summary.columns if c not in SUMMARY_STAT_COLUMNS]
    metrics = list(dict.fromkeys(summary["metric"]))
    header = [*group_cols, "n", "alignment", *metrics]
    lines = [
        "| " + " | ".join(_escape(h) for h in header) + " |",
        "|" + "|".join("---" if h in [*group_cols, "alignment"] else "---:" for h in header) + "|",
    ]
    if summary.empty:
        return "\n".join(lines) + "\n"
    if group_cols:
        groups = summary.groupby(group_cols, dropna=False, sort=False)
    else:
        groups = [((), summary)]
    for key, frame in groups:
        keys = key if isinstance(key, tuple) else (key,)
        n_group = int(frame["n"].max())
        by_metric = {row["metric"]: row for _, row in frame.iterrows()}
        widest = frame.loc[frame["n"].idxmax()]
        cells = [_escape(k) for k in keys] + [str(n_group), _escape(widest["alignment"] or "-")]
        for metric in metrics:
            row = by_metric.get(metric)
            cells.append("" if row is None else _escape(_cell(row, n_group)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
