"""The report's tables: per-image records by image, summary tables, legends, notes, pagers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from pipeline.report.model import MetricColumn, Pager, SummaryCell, SummaryRow, SummaryTable
from pipeline.report.text import (
    Key,
    as_int,
    format_value,
    is_na,
    key_sort,
    metric_info,
    natural_key,
    ordered_metrics,
    text_of,
)
from pipeline.vocabulary import ALIGNED, ALL_IMAGES, CENTRE_CROP, FALLBACK, PREALIGNED

ALIGNMENT_LABELS = {ALIGNED: "aligned", PREALIGNED: "prealigned", CENTRE_CROP: "centre crop"}


def normalised_per_image(per_image: pd.DataFrame) -> pd.DataFrame:
    frame = per_image.copy()
    for column in ("dataset", "image_id", "task", "kernel", "method", "status"):
        frame[column] = frame[column].map(text_of)
    frame["seed"] = frame["seed"].map(as_int)
    return frame


def normalised_summary(summary: pd.DataFrame) -> pd.DataFrame:
    frame = summary.copy()
    for column in ("dataset", "task", "kernel", "method", "metric"):
        frame[column] = frame[column].map(text_of)
    frame["category"] = (
        frame["category"].map(text_of) if "category" in frame.columns else ALL_IMAGES
    )
    return frame


def records_by_image(per_image: pd.DataFrame) -> dict[tuple[Key, str], list[dict[str, Any]]]:
    """Rows of each (key, image), sorted by method and seed (input order does not matter)."""
    ordered = per_image.sort_values(
        ["dataset", "task", "kernel", "image_id", "method", "seed"], kind="stable"
    )
    records: dict[tuple[Key, str], list[dict[str, Any]]] = {}
    for r in ordered.to_dict("records"):
        records.setdefault(((r["dataset"], r["task"], r["kernel"]), r["image_id"]), []).append(r)
    return dict(sorted(records.items(), key=lambda kv: (key_sort(kv[0][0]), natural_key(kv[0][1]))))


def legend(summary: pd.DataFrame) -> list[tuple[str, str]]:
    metrics = ordered_metrics(summary["metric"]) if not summary.empty else []
    legend = []
    for m in metrics:
        info = metric_info(m)
        if info.higher_is_better is None:
            direction = "no preferred direction known"
        else:
            direction = "higher is better" if info.higher_is_better else "lower is better"
        unit = f", in {info.unit}" if info.unit else ""
        legend.append((info.label, f"{direction}{unit}"))
    return legend


def summary_table(sub: pd.DataFrame) -> SummaryTable:
    """Methods as rows (best first by the primary metric), metrics as columns."""
    metrics = ordered_metrics(sub["metric"])
    by_cell = {(str(r.method), str(r.metric)): r for r in sub.itertuples(index=False)}
    methods = sorted({str(m) for m in sub["method"]})

    primary = next((m for m in metrics if metric_info(m).higher_is_better is not None), None)
    if primary is not None:
        sign = -1.0 if metric_info(primary).higher_is_better else 1.0

        def rank(method: str) -> tuple[int, float, str]:
            row = by_cell.get((method, primary))
            if row is None or pd.isna(row.mean):
                return (1, 0.0, method)
            return (0, sign * float(row.mean), method)

        methods.sort(key=rank)

    best = {m: best_methods(m, methods, by_cell) for m in metrics}
    rows = []
    for method in methods:
        cells: list[SummaryCell | None] = []
        for m in metrics:
            r = by_cell.get((method, m))
            if r is None:
                cells.append(None)
                continue
            spread = getattr(r, "seed_std", None)
            cells.append(
                SummaryCell(
                    mean=format_value(m, r.mean),
                    ci=f"[{format_value(m, r.ci_low)}, {format_value(m, r.ci_high)}]",
                    n=as_int(r.n),
                    n_excluded=as_int(getattr(r, "n_excluded", 0)),
                    excluded_reasons=text_of(getattr(r, "excluded_reasons", "")),
                    alignment=alignment_text(getattr(r, "alignment", "")),
                    seed_spread="" if is_na(spread) else format_value(m, spread),
                    best=method in best[m],
                )
            )
        rows.append(SummaryRow(method, cells))
    columns = [
        MetricColumn(m, metric_info(m).label, metric_info(m).unit, metric_info(m).higher_is_better)
        for m in metrics
    ]
    return SummaryTable(columns, rows, metric_info(primary).label if primary else None)


def column_or_none(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column of ``frame``, or None for every row when it has none (older tables)."""
    if name in frame.columns:
        return frame[name]
    return pd.Series(None, index=frame.index, dtype=object)


def outcome(status: str, alignment: Any) -> str:
    """What became of an image without a detected face, in words."""
    if alignment == CENTRE_CROP or status == FALLBACK:
        return "centre crop: scored, left out of identity"
    return "left out (no_face: skip)"


def alignment_text(value: Any) -> str:
    """``aligned:20;prealigned:0;centre_crop:4`` as ``aligned 20, centre crop 4``; empty
    when every value comes from an FFHQ alignment (the usual case) or nothing is known."""
    counts = {}
    for part in text_of(value).split(";"):
        name, _, number = part.partition(":")
        if name and number.isdigit() and int(number):
            counts[name] = int(number)
    if not counts or set(counts) == {ALIGNED}:
        return ""
    return ", ".join(f"{ALIGNMENT_LABELS.get(name, name)} {n}" for name, n in counts.items())


def best_methods(metric: str, methods: list[str], by_cell: Mapping[Any, Any]) -> set[str]:
    higher = metric_info(metric).higher_is_better
    values = {
        method: float(by_cell[(method, metric)].mean)
        for method in methods
        if (method, metric) in by_cell and not pd.isna(by_cell[(method, metric)].mean)
    }
    if higher is None or len(values) < 2:
        return set()
    target = max(values.values()) if higher else min(values.values())
    return {method for method, v in values.items() if v == target}


def section_notes(per_image: pd.DataFrame, key: Key) -> list[str]:
    if "crop_border" not in per_image.columns:
        return []
    sub = per_image[
        (per_image["dataset"] == key[0])
        & (per_image["task"] == key[1])
        & (per_image["kernel"] == key[2])
    ]
    borders = sorted({as_int(b) for b in sub["crop_border"].dropna()})
    if len(borders) == 1:
        return [f"PSNR and SSIM are computed after removing {borders[0]} px from each border."]
    if borders:
        return [f"PSNR and SSIM are computed with crop borders {', '.join(map(str, borders))} px."]
    return []


def pager(current: int, total: int, href: Any) -> Pager:
    """Links to the first, last and nearby pages, with gaps (None) between."""
    wanted = sorted({1, total, *range(max(1, current - 2), min(total, current + 2) + 1)})
    items: list[tuple[str, str | None, bool]] = []
    previous_page = 0
    for page in wanted:
        if page > previous_page + 1:
            items.append(("\u2026", None, False))
        items.append((str(page), href(page), page == current))
        previous_page = page
    return Pager(
        current,
        total,
        href(current - 1) if current > 1 else None,
        href(current + 1) if current < total else None,
        items,
    )
