"""Static HTML report: one self-contained folder with ``index.html`` and ``assets/``.

The report is meant to be opened straight from disk: every reference is a
relative path inside the folder, nothing is fetched from the network (no CDN,
no web fonts) and nothing needs JavaScript. It holds

* an overview of the run (``run_info`` rendered as a definition list),
* per dataset x task x kernel, a summary table (methods as rows, metrics as
  columns; each cell the mean with its 95 % confidence interval and ``n``),
* per dataset x task x kernel, a small gallery: the first ``gallery_rows``
  images by ``image_id``, each row showing the LR input enlarged with nearest
  neighbour to the HR size, every method's output for one seed (0, else the
  smallest) and the ground truth, each a thumbnail linking to a full-size copy.

Image conventions: everything shown is 8-bit sRGB as decoded by
:func:`pipeline.io.load_rgb`. Thumbnails are PNG, at most ``THUMB_MAX`` pixels
on the longer side; full-size copies keep the source's bytes when browsers can
show its format, otherwise they are PNG. Asset names derive from the path
recorded in the table and the transform applied, so re-rendering the same
inputs gives the same file names and the same ``index.html``.

The folder is rendered beside ``out_dir`` under a hidden temporary name and
swapped into place only when complete, so a failed render never leaves a
half-written report under the final name.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from PIL import Image

from pipeline.io import InputError, atomic_dir, load_rgb, save_png, write_bytes, write_text

log = logging.getLogger(__name__)

THUMB_MAX = 256
"""Longest side of a gallery thumbnail, in pixels."""

# Typographic characters shown in the report, spelled as escapes so the source stays ASCII.
MISSING = "\u2013"  # en dash: a value that is absent or NaN
INFINITY = "\u221e"
MINUS = "\u2212"
TIMES = "\u00d7"

PER_IMAGE_REQUIRED = (
    "dataset",
    "image_id",
    "task",
    "kernel",
    "method",
    "seed",
    "status",
    "lr_path",
    "sr_path",
    "hr_path",
)
SUMMARY_REQUIRED = (
    "dataset",
    "task",
    "kernel",
    "method",
    "metric",
    "n",
    "mean",
    "ci_low",
    "ci_high",
)

# Metrics shown under each gallery output: the first available column of each group.
GALLERY_METRICS = (("psnr_y", "psnr_rgb"), ("ssim_y", "ssim_rgb"))

# Formats every current browser displays; other sources are converted to PNG.
_WEB_SAFE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


@dataclass(frozen=True)
class MetricInfo:
    """How a metric is labelled, formatted and compared in the report."""

    label: str
    short: str
    higher_is_better: bool | None
    decimals: int
    unit: str = ""


_KNOWN_METRICS: dict[str, MetricInfo] = {
    "psnr_rgb": MetricInfo("PSNR (RGB)", "PSNR-RGB", True, 2, "dB"),
    "psnr_y": MetricInfo("PSNR (Y)", "PSNR-Y", True, 2, "dB"),
    "ssim_y": MetricInfo("SSIM (Y)", "SSIM-Y", True, 4),
    "ssim_rgb": MetricInfo("SSIM (RGB)", "SSIM-RGB", True, 4),
    "lpips": MetricInfo("LPIPS", "LPIPS", False, 4),
}
# Fallback by name when a metric is not listed above; first matching rule wins.
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
    """Label, direction and number of decimals for ``metric``.

    Unknown metrics get their own name as label, three decimals and no
    direction (``higher_is_better=None``), so the report never claims an order
    it does not know.
    """
    if metric in _KNOWN_METRICS:
        return _KNOWN_METRICS[metric]
    name = metric.lower()
    direction: bool | None = None
    if name.startswith(_HIGHER_PREFIXES):
        direction = True
    elif any(p in name for p in _LOWER_PATTERNS):
        direction = False
    decimals = 2 if name.startswith("psnr") else 4 if "ssim" in name else 3
    return MetricInfo(metric, metric, direction, decimals)


def format_value(metric: str, value: Any) -> str:
    """Format one metric value with the metric's fixed decimals.

    Infinity (PSNR of identical images) becomes ``INFINITY``; None and NaN become ``MISSING``.
    """
    if value is None or pd.isna(value):
        return MISSING
    value = float(value)
    if math.isinf(value):
        return INFINITY if value > 0 else MINUS + INFINITY
    return f"{value:.{metric_info(metric).decimals}f}"


# --------------------------------------------------------------------------- view model


@dataclass
class InfoNode:
    """One node of the run-info tree: ``kind`` is "map", "list" or "text"."""

    kind: str
    text: str = ""
    items: list[Any] = field(default_factory=list)


@dataclass
class MetricColumn:
    name: str
    label: str
    unit: str
    higher_is_better: bool | None


@dataclass
class SummaryCell:
    mean: str
    ci: str
    n: int
    n_excluded: int
    excluded_reasons: str
    best: bool


@dataclass
class SummaryRow:
    method: str
    cells: list[SummaryCell | None]


@dataclass
class SummaryTable:
    metrics: list[MetricColumn]
    rows: list[SummaryRow]
    sorted_by: str | None


@dataclass
class Tile:
    """One gallery cell: a thumbnail linking to a full-size copy, or a placeholder."""

    alt: str
    captions: list[str] = field(default_factory=list)
    thumb: str | None = None
    full: str | None = None
    width: int = 0
    height: int = 0
    problem: str | None = None


@dataclass
class GalleryRow:
    image_id: str
    tiles: list[Tile]


@dataclass
class Gallery:
    columns: list[str]
    rows: list[GalleryRow]
    n_images: int


@dataclass
class Section:
    id: str
    dataset: str
    task: str
    kernel: str
    table: SummaryTable | None
    gallery: Gallery | None
    notes: list[str]


# --------------------------------------------------------------------------- public API


def render_report(
    per_image: pd.DataFrame,
    summary: pd.DataFrame,
    run_info: Mapping[str, Any],
    out_dir: Path,
    root: Path = Path("."),
    gallery_rows: int = 8,
    title: str = "facebench report",
) -> Path:
    """Render the report folder ``out_dir`` and return the path of its ``index.html``.

    ``per_image`` and ``summary`` are the tables of the evaluation stages (see
    the module docstring for what is shown); image paths in ``per_image`` are
    relative to ``root`` unless absolute. A missing or unreadable image becomes
    a placeholder cell naming the problem; missing *columns* raise ``ValueError``.
    An existing ``out_dir`` is replaced only once the new report is complete.
    """
    _require_columns(per_image, PER_IMAGE_REQUIRED, "per_image table")
    _require_columns(summary, SUMMARY_REQUIRED, "summary table")
    if gallery_rows < 0:
        raise ValueError(f"gallery_rows must be >= 0, got {gallery_rows}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: exists and is not a folder; refusing to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    with atomic_dir(out_dir) as staging:
        _render_into(staging, per_image, summary, run_info, Path(root), gallery_rows, title)
    return out_dir / "index.html"


# --------------------------------------------------------------------------- rendering


def _render_into(
    folder: Path,
    per_image: pd.DataFrame,
    summary: pd.DataFrame,
    run_info: Mapping[str, Any],
    root: Path,
    gallery_rows: int,
    title: str,
) -> None:
    assets = _AssetWriter(folder, root)
    keys = sorted(
        {_key(r) for r in summary[["dataset", "task", "kernel"]].itertuples(index=False)}
        | {_key(r) for r in per_image[["dataset", "task", "kernel"]].itertuples(index=False)},
        key=_section_sort_key,
    )
    summary_groups = dict(_groups(summary))
    image_groups = dict(_groups(per_image))

    sections = []
    used_ids: set[str] = set()
    for key in keys:
        dataset, task, kernel = key
        sub_summary = summary_groups.get(key)
        sub_images = image_groups.get(key)
        table = _summary_table(sub_summary) if sub_summary is not None else None
        method_order = [row.method for row in table.rows] if table else []
        gallery = None
        if sub_images is not None and gallery_rows > 0:
            gallery = _gallery(sub_images, key, method_order, gallery_rows, assets)
        sections.append(
            Section(
                id=_unique_id(f"s-{dataset}-{task}-{kernel}", used_ids),
                dataset=dataset,
                task=task,
                kernel=kernel,
                table=table,
                gallery=gallery,
                notes=_section_notes(sub_images),
            )
        )

    css = importlib.resources.files("pipeline").joinpath("templates/report.css").read_text("utf-8")
    write_text(folder / "assets" / "report.css", css)
    html = (
        _environment()
        .get_template("report.html.j2")
        .render(
            title=title,
            info=_info_tree(run_info),
            sections=sections,
            legend=_legend(summary),
        )
    )
    write_text(folder / "index.html", html)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _require_columns(frame: pd.DataFrame, required: Iterable[str], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} is missing columns {missing}; it has {list(frame.columns)}")


def _key(row: Sequence[Any]) -> tuple[str, str, str]:
    return (str(row[0]), str(row[1]), str(row[2]))


def _groups(frame: pd.DataFrame) -> Iterable[tuple[tuple[str, str, str], pd.DataFrame]]:
    if frame.empty:
        return []
    keyed = frame.assign(
        _d=frame["dataset"].astype(str),
        _t=frame["task"].astype(str),
        _k=frame["kernel"].astype(str),
    )
    return (
        (_key(k), g.drop(columns=["_d", "_t", "_k"]))
        for k, g in keyed.groupby(["_d", "_t", "_k"], sort=False)
    )


def _section_sort_key(key: tuple[str, str, str]) -> tuple[Any, ...]:
    # Tasks like "16to128" sort by HR size, then LR size, not as strings.
    dataset, task, kernel = key
    match = re.fullmatch(r"(\d+)to(\d+)", task)
    task_key = (0, int(match[2]), int(match[1]), task) if match else (1, 0, 0, task)
    return (dataset, task_key, kernel)


def _slug(text: str, limit: int = 48) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")
    return slug[:limit] or "x"


def _unique_id(text: str, used: set[str]) -> str:
    base = _slug(text, 80)
    candidate, i = base, 2
    while candidate in used:
        candidate, i = f"{base}-{i}", i + 1
    used.add(candidate)
    return candidate


# --------------------------------------------------------------------------- overview


def _info_tree(value: Any, depth: int = 0) -> InfoNode:
    """Turn free-form JSON-like run info into a tree of maps, lists and text."""
    if depth > 8:
        return InfoNode("text", text=repr(value))
    if isinstance(value, Mapping):
        return InfoNode("map", items=[(str(k), _info_tree(v, depth + 1)) for k, v in value.items()])
    if isinstance(value, list | tuple | set | frozenset):
        values = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        if all(not isinstance(v, Mapping | list | tuple | set) for v in values):
            return InfoNode("text", text=", ".join(_scalar_text(v) for v in values) or "(none)")
        return InfoNode("list", items=[_info_tree(v, depth + 1) for v in values])
    return InfoNode("text", text=_scalar_text(value))


def _scalar_text(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


# --------------------------------------------------------------------------- summary tables


def _ordered_metrics(names: Iterable[str]) -> list[str]:
    known = list(_KNOWN_METRICS)
    return sorted(set(names), key=lambda m: (known.index(m) if m in known else len(known), m))


def _legend(summary: pd.DataFrame) -> list[tuple[str, str]]:
    metrics = _ordered_metrics(summary["metric"].astype(str)) if not summary.empty else []
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


def _summary_table(sub: pd.DataFrame) -> SummaryTable:
    """Methods as rows (best first by the primary metric), metrics as columns."""
    metrics = _ordered_metrics(sub["metric"].astype(str))
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

    best = {m: _best_methods(m, methods, by_cell) for m in metrics}
    rows = []
    for method in methods:
        cells: list[SummaryCell | None] = []
        for m in metrics:
            r = by_cell.get((method, m))
            if r is None:
                cells.append(None)
                continue
            cells.append(
                SummaryCell(
                    mean=format_value(m, r.mean),
                    ci=f"[{format_value(m, r.ci_low)}, {format_value(m, r.ci_high)}]",
                    n=_as_int(r.n),
                    n_excluded=_as_int(getattr(r, "n_excluded", 0)),
                    excluded_reasons=_text(getattr(r, "excluded_reasons", "")),
                    best=method in best[m],
                )
            )
        rows.append(SummaryRow(method, cells))
    columns = [
        MetricColumn(m, metric_info(m).label, metric_info(m).unit, metric_info(m).higher_is_better)
        for m in metrics
    ]
    return SummaryTable(columns, rows, metric_info(primary).label if primary else None)


def _best_methods(metric: str, methods: list[str], by_cell: Mapping[Any, Any]) -> set[str]:
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


def _as_int(value: Any) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


def _text(value: Any) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _section_notes(sub: pd.DataFrame | None) -> list[str]:
    if sub is None or "crop_border" not in sub.columns:
        return []
    borders = sorted({_as_int(b) for b in sub["crop_border"].dropna()})
    if len(borders) == 1:
        return [f"Metrics are computed after removing {borders[0]} px from each border."]
    if borders:
        return [f"Metrics are computed with crop borders {', '.join(map(str, borders))} px."]
    return []


# --------------------------------------------------------------------------- galleries


def _gallery(
    sub: pd.DataFrame,
    key: tuple[str, str, str],
    method_order: list[str],
    gallery_rows: int,
    assets: _AssetWriter,
) -> Gallery:
    """First ``gallery_rows`` images by id: LR (nearest-enlarged), each method, HR.

    Ids are ordered naturally (digit runs by value); methods follow the summary table's
    order, then any method without summary rows alphabetically.
    """
    dataset, task, _ = key
    sub = sub.assign(_id=sub["image_id"].astype(str), _m=sub["method"].astype(str))
    methods = [m for m in method_order if m in set(sub["_m"])]
    methods += sorted(set(sub["_m"]) - set(methods))
    seeds = {m: _pick_seed(sub.loc[sub["_m"] == m, "seed"]) for m in methods}
    image_ids = sorted(set(sub["_id"]), key=_natural_key)[:gallery_rows]
    shown_metrics = [
        found
        for group in GALLERY_METRICS
        if (found := next((m for m in group if m in sub.columns), None)) is not None
    ]

    columns = ["LR input (nearest-neighbour enlarged)"]
    columns += [f"{m} (seed {seeds[m]})" if seeds[m] is not None else m for m in methods]
    columns.append("Ground truth (HR)")

    rows = []
    for image_id in image_ids:
        rows_of_image = sub[sub["_id"] == image_id].sort_values(["_m", "seed"], kind="stable")
        first = rows_of_image.iloc[0]
        where = f"{image_id} ({dataset}, {task})"
        hr_tile = assets.image_tile(
            first["hr_path"], f"{dataset}-{image_id}-hr", f"Ground truth for {where}"
        )
        hr_tile.captions.insert(0, _size_caption(hr_tile))
        target = (hr_tile.width_full, hr_tile.height_full) if hr_tile.problem is None else None
        target = target or _square(first.get("hr_size"))
        lr_tile = assets.lr_tile(
            first["lr_path"],
            target,
            f"{dataset}-{image_id}-lr",
            f"LR input for {where}, enlarged with nearest neighbour",
        )
        tiles = [lr_tile]
        for method in methods:
            tiles.append(
                _output_tile(rows_of_image, method, seeds[method], where, shown_metrics, assets)
            )
        tiles.append(hr_tile)
        rows.append(GalleryRow(image_id, [t.as_tile() for t in tiles]))
    return Gallery(columns, rows, len(set(sub["_id"])))


def _natural_key(text: str) -> list[tuple[int, Any]]:
    """Sort key that orders digit runs by value, so "img2" comes before "img10"."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text)]


def _pick_seed(seeds: pd.Series) -> int | None:
    values = sorted({_as_int(s) for s in seeds.dropna()})
    if not values:
        return None
    return 0 if 0 in values else values[0]


def _square(size: Any) -> tuple[int, int] | None:
    try:
        n = int(size)
    except (TypeError, ValueError):
        return None
    return (n, n) if n > 0 else None


def _size_caption(tile: _TileBuilder) -> str:
    return f"{tile.width_full}{TIMES}{tile.height_full}" if tile.problem is None else ""


def _output_tile(
    rows_of_image: pd.DataFrame,
    method: str,
    seed: int | None,
    where: str,
    shown_metrics: list[str],
    assets: _AssetWriter,
) -> _TileBuilder:
    alt = f"{method} output for {where}"
    candidates = rows_of_image[rows_of_image["_m"] == method]
    if seed is not None:
        candidates = candidates[candidates["seed"].map(_as_int) == seed]
    if candidates.empty:
        return _TileBuilder(alt, problem="no output recorded for this image")
    row = candidates.iloc[0]
    status = _text(row["status"])
    if status != "ok":
        reason = _text(row.get("reason", "")) or "no reason recorded"
        return _TileBuilder(alt, problem=f"status {status or 'missing'}: {reason}")
    tile = assets.image_tile(row["sr_path"], f"{row['dataset']}-{row['_id']}-{method}-s{seed}", alt)
    for m in shown_metrics:
        info = metric_info(m)
        text = format_value(m, row[m])
        unit = f" {info.unit}" if info.unit and text != MISSING else ""
        tile.captions.append(f"{info.short} {text}{unit}")
    return tile


@dataclass
class _TileBuilder:
    alt: str
    problem: str | None = None
    thumb: str | None = None
    full: str | None = None
    width: int = 0
    height: int = 0
    width_full: int = 0
    height_full: int = 0
    captions: list[str] = field(default_factory=list)

    def as_tile(self) -> Tile:
        return Tile(
            alt=self.alt,
            captions=[c for c in self.captions if c],
            thumb=self.thumb,
            full=self.full,
            width=self.width,
            height=self.height,
            problem=self.problem,
        )


class _AssetWriter:
    """Writes thumbnails and full-size copies into ``<report>/assets``, once per source."""

    def __init__(self, folder: Path, root: Path) -> None:
        self.folder = folder
        self.root = root
        self._done: dict[tuple[Any, ...], _TileBuilder] = {}

    def image_tile(self, path_value: Any, stem: str, alt: str) -> _TileBuilder:
        """Thumbnail + full copy of an image as it is (SR output or HR)."""
        return self._tile(path_value, None, stem, alt)

    def lr_tile(
        self, path_value: Any, target: tuple[int, int] | None, stem: str, alt: str
    ) -> _TileBuilder:
        """Thumbnail + full copy of the LR image enlarged with nearest neighbour to ``target``."""
        return self._tile(path_value, target, stem, alt)

    def _tile(
        self, path_value: Any, target: tuple[int, int] | None, stem: str, alt: str
    ) -> _TileBuilder:
        if path_value is None or pd.isna(path_value) or not str(path_value).strip():
            return _TileBuilder(alt, problem="no image path recorded")
        key = (str(path_value), target)
        cached = self._done.get(key)
        if cached is None:
            cached = self._write(Path(str(path_value)), target, stem)
            self._done[key] = cached
        # Each use gets its own alt text and captions; files are shared.
        return _TileBuilder(**{**cached.__dict__, "alt": alt, "captions": list(cached.captions)})

    def _write(self, source: Path, target: tuple[int, int] | None, stem: str) -> _TileBuilder:
        resolved = source if source.is_absolute() else self.root / source
        try:
            image = load_rgb(resolved)
        except InputError as exc:
            # Name the file as the table records it; the resolved path is machine-specific.
            return _TileBuilder("", problem=f"{source}: {exc.problem}")
        except OSError as exc:  # e.g. permission denied, I/O error
            return _TileBuilder("", problem=f"{source}: {exc.strerror or exc}")

        digest = hashlib.sha256(repr((str(source), target)).encode()).hexdigest()[:12]
        name = f"{_slug(stem)}-{digest}"
        captions = []
        if target is not None and target != image.size:
            factor = target[0] / image.size[0]
            scale = f"{TIMES}{factor:g}" if factor == target[1] / image.size[1] else "enlarged"
            captions.append(f"{image.size[0]}{TIMES}{image.size[1]}, shown {scale}")
            full_image = image.resize(target, Image.Resampling.NEAREST)
            thumb_size = _fit(target, THUMB_MAX)
            # Straight from the LR pixels so the blocks stay crisp in the thumbnail.
            thumb_image = image.resize(thumb_size, Image.Resampling.NEAREST)
        else:
            full_image = image
            thumb_image = image.copy()
            thumb_image.thumbnail((THUMB_MAX, THUMB_MAX), Image.Resampling.LANCZOS)

        full_rel = self._write_full(resolved, full_image, name, copy_bytes=target is None)
        thumb_rel = f"assets/thumbs/{name}.png"
        save_png(self.folder / thumb_rel, thumb_image)
        return _TileBuilder(
            "",
            thumb=thumb_rel,
            full=full_rel,
            width=thumb_image.width,
            height=thumb_image.height,
            width_full=full_image.width,
            height_full=full_image.height,
            captions=captions,
        )

    def _write_full(self, resolved: Path, image: Image.Image, name: str, copy_bytes: bool) -> str:
        suffix = resolved.suffix.lower()
        if copy_bytes and suffix in _WEB_SAFE_SUFFIXES:
            rel = f"assets/full/{name}{'.jpg' if suffix == '.jpeg' else suffix}"
            write_bytes(self.folder / rel, resolved.read_bytes())
        else:
            rel = f"assets/full/{name}.png"
            save_png(self.folder / rel, image)
        return rel


def _fit(size: tuple[int, int], limit: int) -> tuple[int, int]:
    """Shrink ``size`` to fit in ``limit`` x ``limit``, keeping the aspect ratio."""
    w, h = size
    scale = min(1.0, limit / max(w, h))
    return (max(1, round(w * scale)), max(1, round(h * scale)))
