"""Static HTML report: one self-contained folder you can open from disk or copy to any host.

Every reference is a relative path inside the folder; nothing is fetched from
the network (no CDN, no web fonts) and nothing needs JavaScript. Layout::

    index.html                                   overview, summary tables, charts
    failures.html                                no face, missed eps, worst outputs
    failures-missed-eps.csv                      every PULSE search that missed eps
    galleries/<dataset>/<category>/page-<n>.html paginated galleries per category
    charts/...                                   SVG charts (pipeline.charts)
    assets/report.css
    assets/thumbs/<dataset>/<name>.webp          thumbnails, at most THUMB_MAX px
    assets/full/<dataset>/<name>.<ext>           full-size images (hard links or copies)

*Overview* (``index.html``): what was run (``run_info``: data sets with counts,
tasks, kernels, methods with options and seeds, metric conventions, software,
git commit, config digest, stage timings), then per data set its category
galleries and, per task x kernel, a summary table (methods as rows, metrics as
columns, each cell the mean with its 95 % confidence interval and ``n``) and the
charts of that key.

*Galleries*: one folder per data set and category (``all`` first, then the
categories of the manifests by size, then name), ``page_size`` rows per page.
A row is one image of one task x kernel: the LR input enlarged with nearest
neighbour to the ground truth's size, each method's output (every seed up to
``seeds_shown``, further seeds as links), the ground truth, with metrics under
each output. Rows are ordered by task (HR size, then LR size), kernel, then
image id (digit runs by value). Each category page starts with that category's
summary table.

*Failures*: images without a detected face, searches that missed eps
(``converged`` false), outputs that could not be measured, and the worst
``WORST_SHOWN`` outputs per method by LPIPS and by identity distance.

Image conventions: everything shown is 8-bit sRGB as decoded by
:func:`pipeline.io.load_rgb`. Thumbnails are WebP (lossy, fixed quality; the
nearest-neighbour LR enlargements lossless so their pixel blocks stay exact),
each a link to the full-size image: the source file itself (hard link, else a
copy) when browsers show its format, otherwise a PNG. Every source is encoded
once, however many pages show it. Asset names derive from the recorded path and
the transform, so rendering the same inputs twice gives identical files; only
the ``created`` time of ``run_info`` differs between runs.

The folder is rendered beside ``out_dir`` under a hidden temporary name and
swapped into place only when complete, so a failed render never leaves a
half-written report under the final name.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import math
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from PIL import Image

from pipeline.charts import make_charts
from pipeline.io import InputError, atomic_dir, load_rgb, save_png, write_csv, write_text
from pipeline.status import ALIGNED, CENTRE_CROP, PREALIGNED

log = logging.getLogger(__name__)

THUMB_MAX = 256
"""Longest side of a thumbnail, in pixels."""
WEBP_QUALITY = 90
"""Lossy WebP quality of thumbnails: high, since the report compares image quality."""
WORST_SHOWN = 8
"""Worst outputs listed per method and metric on the failures page."""
MISSED_EPS_SHOWN = 200
"""Missed-eps searches shown with thumbnails; all of them are in the CSV beside."""

# Typographic characters shown in the report, spelled as escapes so the source stays ASCII.
MISSING = "\u2013"  # en dash: a value that is absent or NaN
INFINITY = "\u221e"
MINUS = "\u2212"
TIMES = "\u00d7"
ARROW = "\u2192"

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
MANIFEST_REQUIRED = ("image_id",)
FACES_REQUIRED = ("image_id", "status")

ALL = "all"
"""The summary's category over every image; the first gallery of each data set."""

# Metrics shown under each gallery output: the first available column of each group.
GALLERY_METRICS = (
    ("psnr_y", "psnr_rgb"),
    ("ssim_y", "ssim_rgb"),
    ("lpips_alex", "lpips_vgg", "lpips"),
    ("identity_distance",),
    ("lr_psnr",),
)
LPIPS_COLUMNS = ("lpips_alex", "lpips_vgg", "lpips")
IDENTITY_COLUMN = "identity_distance"

# Statuses whose output exists and was scored (centre crops too: see ``alignment``;
# eps_not_reached: a search that missed eps, scored but left out of the summary).
SHOWN_STATUSES = ("ok", "eps_not_reached")
# faces.parquet statuses of images in which no face was found (kept, or left out).
NO_FACE_STATUSES = ("fallback", "no_face")
ALIGNMENT_LABELS = {ALIGNED: "aligned", PREALIGNED: "prealigned", CENTRE_CROP: "centre crop"}

# Formats every current browser displays; other sources are converted to PNG.
_WEB_SAFE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif"}


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


# Order here is the column order of summary tables; the first one present sorts the rows.
_KNOWN_METRICS: dict[str, MetricInfo] = {
    "psnr_y": MetricInfo("PSNR (Y)", "PSNR-Y", True, 2, "dB"),
    "ssim_y": MetricInfo("SSIM (Y)", "SSIM-Y", True, 4),
    "lpips_alex": MetricInfo("LPIPS (AlexNet)", "LPIPS", False, 4),
    "lpips_vgg": MetricInfo("LPIPS (VGG)", "LPIPS-VGG", False, 4),
    "lpips": MetricInfo("LPIPS", "LPIPS", False, 4),
    "identity_distance": MetricInfo("Identity distance", "ID dist", False, 3),
    "psnr_rgb": MetricInfo("PSNR (RGB)", "PSNR-RGB", True, 2, "dB"),
    "ssim_rgb": MetricInfo("SSIM (RGB)", "SSIM-RGB", True, 4),
    "lr_psnr": MetricInfo("LR PSNR", "LR-PSNR", True, 2, "dB"),
    "lr_mse": MetricInfo("LR MSE", "LR-MSE", False, 2, style="e"),
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
_CROP_SUFFIX = re.compile(r"_crop(\d+)$")


def metric_info(metric: str) -> MetricInfo:
    """Label, direction and number format of ``metric``.

    Summary names carry their crop (``psnr_y_crop8``): the crop goes into the
    label. Unknown metrics get their own name as label, three decimals and no
    direction (``higher_is_better=None``), so the report never claims an order
    it does not know.
    """
    crop = _CROP_SUFFIX.search(metric)
    base = metric[: crop.start()] if crop else metric
    if base in _KNOWN_METRICS:
        info = _KNOWN_METRICS[base]
    else:
        name = base.lower()
        direction: bool | None = None
        if name.startswith(_HIGHER_PREFIXES):
            direction = True
        elif any(p in name for p in _LOWER_PATTERNS):
            direction = False
        decimals = 2 if name.startswith("psnr") else 4 if "ssim" in name else 3
        info = MetricInfo(base, base, direction, decimals)
    if crop:
        info = replace(info, label=f"{info.label}, crop {crop[1]}")
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


def _metric_caption(metric: str, value: Any) -> str:
    info = metric_info(metric)
    text = format_value(metric, value)
    unit = f" {info.unit}" if info.unit and text != MISSING else ""
    return f"{info.short} {text}{unit}"


def _ordered_metrics(names: Iterable[str]) -> list[str]:
    known = list(_KNOWN_METRICS)

    def key(metric: str) -> tuple[int, str]:
        crop = _CROP_SUFFIX.search(metric)
        base = metric[: crop.start()] if crop else metric
        return (known.index(base) if base in known else len(known), metric)

    return sorted(set(names), key=key)


# --------------------------------------------------------------------------- view model


@dataclass
class InfoNode:
    """One node of the run-info tree: ``kind`` is "map", "list" or "text"."""

    kind: str
    text: str = ""
    items: list[Any] = field(default_factory=list)


@dataclass
class Link:
    """A link; ``href`` is relative to the report folder (templates prefix the page's base)."""

    text: str
    href: str


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
    alignment: str  # the alignments of the values, when not all are FFHQ-aligned
    seed_spread: str
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
    """One gallery cell: a thumbnail linking to a full-size image, or a placeholder."""

    alt: str
    captions: list[str] = field(default_factory=list)
    thumb: str | None = None
    full: str | None = None
    width: int = 0
    height: int = 0
    problem: str | None = None
    links: list[Link] = field(default_factory=list)
    focus: bool = False


@dataclass
class GalleryRow:
    anchor: str
    image_id: str
    notes: list[str]
    tiles: list[Tile]


@dataclass
class GalleryGroup:
    """Consecutive rows of one task x kernel, shown as one table."""

    heading: str
    columns: list[str]
    rows: list[GalleryRow]


@dataclass
class Category:
    name: str
    label: str
    slug: str
    image_ids: list[str]
    pages: int = 0


@dataclass
class Pager:
    current: int
    total: int
    previous: str | None
    next: str | None
    items: list[tuple[str, str | None, bool]]  # (label, href or None for a gap, is current)


@dataclass
class ChartView:
    """A chart of ``pipeline.charts`` with its display size in CSS pixels (0: unknown)."""

    id: str
    title: str
    path: str
    alt: str
    caption: str
    width: int
    height: int


@dataclass
class Section:
    """One data set x task x kernel on the overview page."""

    id: str
    dataset: str
    task: str
    kernel: str
    heading: str
    table: SummaryTable | None
    charts: list[ChartView]
    notes: list[str]
    gallery: Link | None
    failures: Link | None


@dataclass
class DatasetPart:
    id: str
    name: str
    n_images: int
    galleries: list[tuple[Category, str]]  # (category, href of its first page)
    sections: list[Section]


# --------------------------------------------------------------------------- public API


def render_report(
    per_image: pd.DataFrame,
    summary: pd.DataFrame,
    run_info: Mapping[str, Any],
    out_dir: Path,
    root: Path = Path("."),
    *,
    manifests: Mapping[str, pd.DataFrame] | None = None,
    faces: Mapping[str, pd.DataFrame] | None = None,
    page_size: int = 24,
    max_images_per_category: int | None = None,
    seeds_shown: int = 4,
    title: str = "facebench report",
) -> Path:
    """Render the report folder ``out_dir`` and return the path of its ``index.html``.

    ``per_image`` and ``summary`` are the tables of the evaluation stages
    (``summary`` with its ``category`` column; without one, every row counts as
    ``all``). ``manifests`` and ``faces`` map a data set's name to its
    ``manifest.parquet`` (``image_id``, ``categories``, ``status``, ``reason``)
    and ``faces.parquet`` (``image_id``, ``status``, ``reason``, ``path``).
    Image paths are relative to ``root`` unless absolute. ``page_size`` rows go
    on each gallery page; ``max_images_per_category`` keeps the first images
    (by id) of each category, None for all; ``seeds_shown`` seeds per
    stochastic method get a thumbnail, further seeds a link.

    A missing or unreadable image becomes a placeholder naming the problem;
    missing *columns* raise ``ValueError`` naming the table and the column. An
    existing ``out_dir`` is replaced only once the new report is complete.
    """
    manifests = dict(manifests or {})
    faces = dict(faces or {})
    _require_columns(per_image, PER_IMAGE_REQUIRED, "per_image table")
    _require_columns(summary, SUMMARY_REQUIRED, "summary table")
    for name, frame in manifests.items():
        _require_columns(frame, MANIFEST_REQUIRED, f"manifest of data set {name!r}")
    for name, frame in faces.items():
        _require_columns(frame, FACES_REQUIRED, f"faces table of data set {name!r}")
    if page_size < 1:
        raise ValueError(f"page_size must be >= 1, got {page_size}")
    if max_images_per_category is not None and max_images_per_category < 1:
        raise ValueError(
            f"max_images_per_category must be >= 1 or None, got {max_images_per_category}"
        )
    if seeds_shown < 1:
        raise ValueError(f"seeds_shown must be >= 1, got {seeds_shown}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: exists and is not a folder; refusing to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    options = _Options(page_size, max_images_per_category, seeds_shown, title)
    with atomic_dir(out_dir) as staging:
        _Renderer(staging, Path(root), per_image, summary, run_info, manifests, faces, options)()
    return out_dir / "index.html"


# --------------------------------------------------------------------------- input checks


def _require_columns(frame: pd.DataFrame, required: Iterable[str], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} is missing columns {missing}; it has {list(frame.columns)}")


# --------------------------------------------------------------------------- small helpers


Key = tuple[str, str, str]  # (dataset, task, kernel)


def _key_sort(key: Key) -> tuple[Any, ...]:
    dataset, task, kernel = key
    return (dataset, _task_sort(task), kernel)


def _task_sort(task: str) -> tuple[Any, ...]:
    # Tasks like "16to128" sort by HR size, then LR size, not as strings.
    match = re.fullmatch(r"(\d+)to(\d+)", task)
    return (0, int(match[2]), int(match[1]), task) if match else (1, 0, 0, task)


def _task_label(task: str) -> str:
    """``16to128`` as ``16→128``; other task names unchanged."""
    match = re.fullmatch(r"(\d+)to(\d+)", task)
    return f"{match[1]}{ARROW}{match[2]}" if match else task


def _natural_key(text: str) -> list[tuple[int, Any]]:
    """Sort key that orders digit runs by value, so "img2" comes before "img10"."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text)]


def _slug(text: str, limit: int = 48) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")
    return slug[:limit] or "x"


def _unique_id(text: str, used: set[str]) -> str:
    """A valid, unique HTML id (starts with a letter) derived from ``text``."""
    base = _slug(text, 80)
    if not base[0].isalpha():
        base = f"x-{base}"
    candidate, i = base, 2
    while candidate in used:
        candidate, i = f"{base}-{i}", i + 1
    used.add(candidate)
    return candidate


def _digest(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:10]


def _as_int(value: Any) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


def _text(value: Any) -> str:
    if value is None or (not isinstance(value, str) and _is_na(value)):
        return ""
    return str(value)


def _is_na(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and arrays are values, not missing
        return False


def _has_path(value: Any) -> bool:
    return not _is_na(value) and bool(str(value).strip())


def category_label(name: str) -> str:
    """A category as people read it: ``old_age`` -> ``old age``, ``attr:Eyeglasses`` ->
    ``attribute: Eyeglasses``, ``skin:3`` -> ``skin tone 3``."""
    prefix, sep, value = name.partition(":")
    if not sep:
        return name.replace("_", " ")
    value = value.replace("_", " ")
    named = {"attr": "attribute: ", "skin": "skin tone ", "platform": "platform: "}
    return f"{named.get(prefix, prefix.replace('_', ' ') + ': ')}{value}"


def _category_list(value: Any) -> list[str]:
    """A manifest's ``categories`` cell (list, tuple, numpy array or missing) as strings."""
    if value is None or isinstance(value, str) or _is_na(value):
        return [value] if isinstance(value, str) and value else []
    return [str(v) for v in value]


def _seconds_text(seconds: Any) -> str:
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return _scalar_text(seconds)
    if math.isnan(value):
        return MISSING
    minutes, secs = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{value:.1f} s ({hours}:{minutes:02d}:{secs:02d})"


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _Options:
    page_size: int
    max_images: int | None
    seeds_shown: int
    title: str


@dataclass
class _MethodColumn:
    method: str
    seed: int | None  # None: the method's single output (deterministic methods)
    extra_seeds: list[int]  # seeds beyond seeds_shown, linked from this column's cells


class _Renderer:
    """Builds every page of one report into ``folder`` (the staging folder)."""

    def __init__(
        self,
        folder: Path,
        root: Path,
        per_image: pd.DataFrame,
        summary: pd.DataFrame,
        run_info: Mapping[str, Any],
        manifests: Mapping[str, pd.DataFrame],
        faces: Mapping[str, pd.DataFrame],
        options: _Options,
    ) -> None:
        self.folder = folder
        self.options = options
        self.assets = _AssetWriter(folder, root)
        self.env = _environment()
        self.run_info = run_info
        self.raw_per_image = per_image
        self.raw_summary = summary
        self.manifests = manifests
        self.faces = faces
        self.per_image = _normalised_per_image(per_image)
        self.summary = _normalised_summary(summary)
        self.records = _records_by_image(self.per_image)
        self.keys = sorted(
            {k for k, _ in self.records} | set(self._summary_groups(ALL)), key=_key_sort
        )
        self.shown_metrics = [
            found
            for group in GALLERY_METRICS
            if (found := next((m for m in group if m in self.per_image.columns), None))
        ]
        all_tables = {key: _summary_table(sub) for key, sub in self._summary_groups(ALL).items()}
        self.summary_all = all_tables
        self.columns = {key: self._method_columns(key, all_tables.get(key)) for key in self.keys}
        datasets = sorted({k[0] for k in self.keys})
        self.categories = {dataset: self._dataset_categories(dataset) for dataset in datasets}
        used_slugs: set[str] = set()
        self.dataset_slugs = {dataset: _unique_id(dataset, used_slugs) for dataset in datasets}
        self._rows: dict[tuple[Key, str], GalleryRow] = {}
        # Where each (key, image) row lives in the "all" gallery, for links from other pages.
        self.locations: dict[tuple[Key, str], str] = {}
        self.first_pages: dict[Key, str] = {}  # the "all" page where each key's rows begin

    # ---------------------------------------------------------------- entry point

    def __call__(self) -> None:
        css = importlib.resources.files("pipeline").joinpath("templates/report.css")
        write_text(self.folder / "assets" / "report.css", css.read_text("utf-8"))
        charts = self._charts()
        for dataset in self.categories:
            self._render_galleries(dataset)
        failures = self._render_failures()
        self._render_index(charts, failures)

    # ---------------------------------------------------------------- shared pieces

    def _summary_groups(self, category: str) -> dict[Key, pd.DataFrame]:
        sub = self.summary[self.summary["category"] == category]
        if sub.empty:
            return {}
        return {
            (str(d), str(t), str(k)): g
            for (d, t, k), g in sub.groupby(["dataset", "task", "kernel"], sort=False)
        }

    def _method_columns(self, key: Key, table: SummaryTable | None) -> list[_MethodColumn]:
        """Methods in the summary's order (best first), then unsummarised ones by name."""
        methods: dict[str, list[int]] = {}
        for (k, _), records in self.records.items():
            if k == key:
                for r in records:
                    methods.setdefault(r["method"], []).append(r["seed"])
        order = [row.method for row in table.rows if row.method in methods] if table else []
        order += sorted(set(methods) - set(order))
        columns = []
        for method in order:
            seeds = sorted(set(methods[method]))
            if len(seeds) == 1:
                columns.append(_MethodColumn(method, None, []))
                continue
            shown = seeds[: self.options.seeds_shown]
            for i, seed in enumerate(shown):
                extra = seeds[len(shown) :] if i == len(shown) - 1 else []
                columns.append(_MethodColumn(method, seed, extra))
        return columns

    def _dataset_categories(self, dataset: str) -> list[Category]:
        """``all`` first, then the manifest's categories by size (largest first), then name.

        A category that holds every image of the data set (an emoji set's
        ``platform:<name>``) repeats ``all`` and gets no gallery of its own.
        """
        image_ids = sorted(
            {image_id for (k, image_id) in self.records if k[0] == dataset}, key=_natural_key
        )
        used: set[str] = set()
        categories = [Category(ALL, "all images", _unique_id(ALL, used), image_ids)]
        manifest = self.manifests.get(dataset)
        if manifest is None or "categories" not in manifest.columns or not image_ids:
            return categories
        known = set(image_ids)
        members: dict[str, list[str]] = {}
        for image_id, cats in zip(manifest["image_id"], manifest["categories"], strict=True):
            if str(image_id) in known:
                for name in dict.fromkeys(_category_list(cats)):
                    members.setdefault(name, []).append(str(image_id))
        unique = {name: sorted(set(ids), key=_natural_key) for name, ids in members.items()}
        ranked = sorted(unique.items(), key=lambda item: (-len(item[1]), item[0]))
        for name, ids in ranked:
            if len(ids) == len(image_ids) or name == ALL:
                continue
            categories.append(Category(name, category_label(name), _unique_id(name, used), ids))
        return categories

    def _render(self, template: str, target: str, **context: Any) -> None:
        base = "../" * target.count("/")
        html = self.env.get_template(template).render(
            base=base, report_title=self.options.title, **context
        )
        write_text(self.folder / target, html)

    # ---------------------------------------------------------------- gallery rows

    def _row(self, key: Key, image_id: str) -> GalleryRow:
        cached = self._rows.get((key, image_id))
        if cached is None:
            cached = self._build_row(key, image_id)
            self._rows[(key, image_id)] = cached
        return cached

    def _build_row(self, key: Key, image_id: str) -> GalleryRow:
        dataset, _, kernel = key
        records = self.records[(key, image_id)]
        first = records[0]
        where = f"{dataset} {image_id}"
        hr = self.assets.image(first["hr_path"], dataset, f"{image_id}-hr")
        hr_size = (hr.full_width, hr.full_height) if hr.problem is None else None
        hr_size = hr_size or _square(first.get("hr_size"))
        hr_text = f", {hr_size[0]}{TIMES}{hr_size[1]}" if hr_size else ""
        hr_tile = hr.tile(f"{where}: ground truth{hr_text}")
        if hr.problem is None:
            hr_tile.captions.insert(0, f"{hr.full_width}{TIMES}{hr.full_height}")

        thumb_size = _fit(hr_size, THUMB_MAX) if hr_size else None
        lr = self.assets.enlarged(first["lr_path"], dataset, f"{image_id}-lr", hr_size, thumb_size)
        lr_text = f"{lr.source_size[0]}{TIMES}{lr.source_size[1]} " if lr.source_size else ""
        lr_tile = lr.tile(f"{where}: LR input {lr_text}({kernel}), enlarged with nearest neighbour")
        if lr.source_size and hr_size and lr.source_size != hr_size:
            factor = hr_size[0] / lr.source_size[0]
            lr_tile.captions.insert(0, f"{lr_text.strip()}, shown {TIMES}{factor:g}")

        by_method: dict[str, dict[int, Mapping[str, Any]]] = {}
        for r in records:
            by_method.setdefault(r["method"], {})[r["seed"]] = r
        tiles = [lr_tile]
        for column in self.columns[key]:
            seeds = by_method.get(column.method, {})
            if column.seed is None:
                record = next(iter(seeds.values()), None)
            else:
                record = seeds.get(column.seed)
            tile = self._output_tile(record, column.method, column.seed, key, where)
            for seed in column.extra_seeds:
                extra = seeds.get(seed)
                if extra is not None and extra["status"] in SHOWN_STATUSES:
                    stem = f"{image_id}-{column.method}-{key[1]}-{kernel}-s{seed}"
                    href = self.assets.copy(extra["sr_path"], dataset, stem)
                    if href:
                        tile.links.append(Link(f"{column.method} seed {seed} (full size)", href))
            tiles.append(tile)
        tiles.append(hr_tile)
        notes = []
        if any(r.get("alignment") == CENTRE_CROP for r in records):
            notes.append("no face detected: centre crop (left out of identity)")
        return GalleryRow(
            f"r-{_slug(image_id, 40)}-{_digest(key, image_id)}", image_id, notes, tiles
        )

    def _output_tile(
        self,
        record: Mapping[str, Any] | None,
        method: str,
        seed: int | None,
        key: Key,
        where: str,
    ) -> Tile:
        dataset, task, kernel = key
        seed_text = f", seed {seed if seed is not None else record['seed'] if record else 0}"
        alt = f"{where}: {method} output, {_task_label(task)}, {kernel}{seed_text}"
        if record is None:
            return Tile(alt, problem="no output recorded for this image")
        status = record["status"]
        if status not in SHOWN_STATUSES:
            reason = _text(record.get("reason")) or "no reason recorded"
            return Tile(alt, problem=f"status {status or 'missing'}: {reason}")
        stem = f"{record['image_id']}-{method}-{task}-{kernel}-s{record['seed']}"
        tile = self.assets.image(record["sr_path"], dataset, stem).tile(alt)
        tile.captions.extend(_metric_caption(m, record.get(m)) for m in self.shown_metrics)
        converged = record.get("converged")
        if converged is not None and not _is_na(converged) and not bool(converged):
            l2 = record.get("final_l2")
            l2_text = f" (L2 {float(l2):.4g})" if l2 is not None and not _is_na(l2) else ""
            tile.captions.append(f"missed eps{l2_text}")
        animation = self._animation(record, stem)
        if animation:
            tile.links.append(Link(f"search steps of seed {record['seed']} (animation)", animation))
        return tile

    def _animation(self, record: Mapping[str, Any], stem: str) -> str | None:
        name = record.get("animation")
        if not _has_path(name):
            return None
        path = Path(str(record["sr_path"])).parent / str(name)
        return self.assets.copy(str(path), record["dataset"], f"{stem}-steps")

    # ---------------------------------------------------------------- galleries

    def _gallery_href(self, dataset: str, category: Category, page: int) -> str:
        return f"galleries/{self.dataset_slugs[dataset]}/{category.slug}/page-{page}.html"

    def _render_galleries(self, dataset: str) -> None:
        categories = self.categories[dataset]
        keys = [k for k in self.keys if k[0] == dataset]
        size = self.options.page_size
        rows_of: dict[str, list[tuple[Key, str]]] = {}
        for category in categories:
            image_ids = category.image_ids[: self.options.max_images]
            rows_of[category.name] = [
                (k, i) for k in keys for i in image_ids if (k, i) in self.records
            ]
            category.pages = max(1, math.ceil(len(rows_of[category.name]) / size))
        nav = [
            (c, self._gallery_href(dataset, c, 1), len(c.image_ids)) for c in categories if c.pages
        ]
        tables = {
            c.name: {k: g for k, g in self._summary_groups(c.name).items() if k[0] == dataset}
            for c in categories
        }
        for category in categories:
            image_ids = category.image_ids[: self.options.max_images]
            rows = rows_of[category.name]
            summaries = [
                (self._key_heading(k), _summary_table(sub))
                for k, sub in sorted(tables[category.name].items(), key=lambda kv: _key_sort(kv[0]))
            ]
            for page in range(1, category.pages + 1):
                chunk = rows[(page - 1) * size : page * size]
                target = self._gallery_href(dataset, category, page)
                groups: list[GalleryGroup] = []
                for key, image_id in chunk:
                    if not groups or groups[-1].heading != self._key_heading(key):
                        groups.append(
                            GalleryGroup(self._key_heading(key), self._column_heads(key), [])
                        )
                    row = self._row(key, image_id)
                    groups[-1].rows.append(row)
                    if category.name == ALL:
                        self.locations[(key, image_id)] = f"{target}#{row.anchor}"
                        self.first_pages.setdefault(key, target)
                self._render(
                    "gallery.html.j2",
                    target,
                    title=(
                        f"{dataset}: {category.label}, page {page} of {category.pages} "
                        f"\u2014 {self.options.title}"
                    ),
                    dataset=dataset,
                    dataset_anchor=self._dataset_anchor(dataset),
                    category=category,
                    categories=nav,
                    n_images=len(category.image_ids),
                    n_shown=len(image_ids),
                    n_rows=len(rows),
                    first_row=(page - 1) * size + 1,
                    last_row=(page - 1) * size + len(chunk),
                    summaries=summaries,
                    groups=groups,
                    pager=_pager(page, category.pages, lambda n: f"page-{n}.html"),
                )

    def _key_heading(self, key: Key) -> str:
        _, task, kernel = key
        return f"{_task_label(task)} \u00b7 {kernel}"

    def _column_heads(self, key: Key) -> list[str]:
        heads = ["LR input"]
        for column in self.columns[key]:
            heads.append(
                column.method if column.seed is None else f"{column.method} (seed {column.seed})"
            )
        heads.append("Ground truth (HR)")
        return heads

    def _dataset_anchor(self, dataset: str) -> str:
        return f"d-{_slug(dataset)}-{_digest(dataset)[:6]}"

    # ---------------------------------------------------------------- failures

    def _render_failures(self) -> dict[Key, str]:
        """Write ``failures.html``; return the anchor of each key's worst-outputs section."""
        no_face = self._no_face_items()
        missed, n_missed, missed_counts = self._missed_eps_items()
        worst, anchors = self._worst_sections()
        self._render(
            "failures.html.j2",
            "failures.html",
            title=f"Failures \u2014 {self.options.title}",
            no_face=no_face,
            prealigned_without_face=self._prealigned_without_face(),
            left_out=self._left_out_sources(),
            not_measured=self._not_measured(),
            missed=missed,
            n_missed=n_missed,
            missed_counts=missed_counts,
            has_convergence="converged" in self.per_image.columns,
            worst=worst,
            worst_shown=WORST_SHOWN,
        )
        return anchors

    def _no_face_items(self) -> list[dict[str, Any]]:
        """Images without a detected face that were centre-cropped or left out, from the
        faces tables (or per_image without them). Prealigned images without one are
        framed by their template and only counted (:meth:`_prealigned_without_face`)."""
        found: dict[tuple[str, str], tuple[str, str, Any]] = {}
        for dataset, frame in self.faces.items():
            statuses = frame["status"].astype(str)
            reasons = frame["reason"] if "reason" in frame.columns else pd.Series("", frame.index)
            paths = frame["path"] if "path" in frame.columns else pd.Series(None, frame.index)
            framing = _column(frame, "alignment")
            for image_id, status, reason, path, alignment in zip(
                frame["image_id"], statuses, reasons, paths, framing, strict=True
            ):
                if status in NO_FACE_STATUSES and alignment != PREALIGNED:
                    found[(dataset, str(image_id))] = (
                        _outcome(status, alignment),
                        _text(reason),
                        path,
                    )
        for (key, image_id), records in self.records.items():
            first = records[0]
            if key[0] not in self.faces and (
                first["status"] == "no_face" or first.get("alignment") == CENTRE_CROP
            ):
                found.setdefault(
                    (key[0], image_id),
                    (
                        _outcome(first["status"], first.get("alignment")),
                        _text(first.get("reason")) or "no face detected",
                        None,
                    ),
                )
        # The crop actually evaluated (largest HR), else the source image.
        crops: dict[tuple[str, str], tuple[Any, Key]] = {}
        for (key, image_id), records in self.records.items():  # tasks by HR size: last wins
            if (key[0], image_id) in found:
                crops[(key[0], image_id)] = (records[0]["hr_path"], key)
        items = []
        for dataset, image_id in sorted(found, key=lambda d: (d[0], _natural_key(d[1]))):
            status, reason, source = found[(dataset, image_id)]
            crop = crops.get((dataset, image_id))
            if crop is not None:
                image = self.assets.image(crop[0], dataset, f"{image_id}-hr")
                alt = f"{dataset} {image_id}: centre crop used without a detected face"
                link = self.locations.get((crop[1], image_id))
            else:
                image = self.assets.image(source, dataset, f"{image_id}-source")
                alt = f"{dataset} {image_id}: source image (no face detected)"
                link = None
            items.append(
                {
                    "dataset": dataset,
                    "image_id": image_id,
                    "outcome": status,
                    "reason": reason or "no reason recorded",
                    "tile": image.tile(alt),
                    "gallery": link,
                }
            )
        return items

    def _prealigned_without_face(self) -> list[tuple[str, int, int]]:
        """(data set, prealigned images without a detected face, prealigned images)."""
        rows = []
        for dataset in sorted(self.faces):
            frame = self.faces[dataset]
            prealigned = _column(frame, "alignment") == PREALIGNED
            if prealigned.any():
                missed = prealigned & frame["status"].astype(str).isin(NO_FACE_STATUSES)
                rows.append((dataset, int(missed.sum()), int(prealigned.sum())))
        return rows

    def _left_out_sources(self) -> list[tuple[str, str, str, int]]:
        """(data set, status, reason, count) of manifest rows that are not usable."""
        rows = []
        for dataset in sorted(self.manifests):
            frame = self.manifests[dataset]
            if "status" not in frame.columns:
                continue
            reasons = frame["reason"] if "reason" in frame.columns else pd.Series("", frame.index)
            counts = Counter(
                (str(s), _text(r))
                for s, r in zip(frame["status"], reasons, strict=True)
                if str(s) != "ok"
            )
            rows += [(dataset, s, r or MISSING, n) for (s, r), n in sorted(counts.items())]
        return rows

    def _not_measured(self) -> list[tuple[str, str, str, str, str, str, int]]:
        """Outputs not shown (status outside SHOWN_STATUSES), counted by key, method and reason."""
        frame = self.per_image[~self.per_image["status"].isin(SHOWN_STATUSES)]
        if frame.empty:
            return []
        reasons = frame["reason"].map(_text) if "reason" in frame.columns else ""
        counts = Counter(
            zip(
                frame["dataset"],
                frame["task"],
                frame["kernel"],
                frame["method"],
                frame["status"],
                reasons,
                strict=True,
            )
        )
        ordered = sorted(counts.items(), key=lambda kv: (_key_sort(kv[0][:3]), kv[0][3:]))
        return [(d, _task_label(t), k, m, s, r or MISSING, n) for (d, t, k, m, s, r), n in ordered]

    def _missed_eps_items(self) -> tuple[list[dict[str, Any]], int, list[tuple[Any, ...]]]:
        """Searches with ``converged`` false: the worst ``MISSED_EPS_SHOWN`` by final L2, the
        total, and (key, method, missed, searched) counts. All of them go to a CSV."""
        if "converged" not in self.per_image.columns:
            return [], 0, []
        frame = self.per_image[self.per_image["converged"].notna()]
        missed_mask = ~frame["converged"].astype(bool)
        counts = []
        for (d, t, k, m), g in frame.groupby(["dataset", "task", "kernel", "method"], sort=False):
            counts.append(((d, t, k), m, int((~g["converged"].astype(bool)).sum()), len(g)))
        counts.sort(key=lambda c: (_key_sort(c[0]), c[1]))
        counts_view = [(d, _task_label(t), k, m, n, total) for (d, t, k), m, n, total in counts]
        missed = frame[missed_mask].copy()
        if missed.empty:
            return [], 0, counts_view
        l2 = (
            missed["final_l2"]
            if "final_l2" in missed.columns
            else pd.Series(math.nan, missed.index)
        )
        missed = missed.assign(final_l2=l2)
        missed["_sort"] = [(-v if not _is_na(v) else math.inf) for v in missed["final_l2"]]
        missed = missed.sort_values(
            ["_sort", "dataset", "task", "kernel", "method", "image_id", "seed"], kind="stable"
        )
        columns = ["dataset", "image_id", "task", "kernel", "method", "seed", "final_l2"]
        columns += [c for c in ("animation", "sr_path") if c in missed.columns]
        write_csv(self.folder / "failures-missed-eps.csv", missed[columns])
        items = []
        for r in missed.head(MISSED_EPS_SHOWN).to_dict("records"):
            key = (r["dataset"], r["task"], r["kernel"])
            stem = f"{r['image_id']}-{r['method']}-{r['task']}-{r['kernel']}-s{r['seed']}"
            alt = (
                f"{r['dataset']} {r['image_id']}: {r['method']} output, {_task_label(r['task'])}, "
                f"{r['kernel']}, seed {r['seed']} (missed eps)"
            )
            items.append(
                {
                    "dataset": r["dataset"],
                    "image_id": r["image_id"],
                    "task": _task_label(r["task"]),
                    "kernel": r["kernel"],
                    "method": r["method"],
                    "seed": r["seed"],
                    "final_l2": "" if _is_na(r["final_l2"]) else f"{float(r['final_l2']):.4g}",
                    "tile": self.assets.image(r["sr_path"], r["dataset"], stem).tile(alt),
                    "animation": self._animation(r, stem),
                    "gallery": self.locations.get((key, r["image_id"])),
                }
            )
        return items, len(missed), counts_view

    def _worst_sections(self) -> tuple[list[dict[str, Any]], dict[Key, str]]:
        """Per key and method, the worst outputs by LPIPS and by identity distance.

        One output per image (its worst seed), ties broken by image id and seed.
        """
        lpips = next((m for m in LPIPS_COLUMNS if m in self.per_image.columns), None)
        ranked = [m for m in (lpips, IDENTITY_COLUMN) if m and m in self.per_image.columns]
        used: set[str] = set()
        sections, anchors = [], {}
        shown = self.per_image[self.per_image["status"].isin(SHOWN_STATUSES)]
        groups = {
            (str(d), str(t), str(k)): g
            for (d, t, k), g in shown.groupby(["dataset", "task", "kernel"], sort=False)
        }
        for key in self.keys:
            anchor = _unique_id(f"w-{'-'.join(key)}", used)
            anchors[key] = anchor
            sub = groups.get(key)
            blocks = []
            if sub is not None:
                # One list per method, even when its seeds fill several columns.
                for method in dict.fromkeys(c.method for c in self.columns[key]):
                    of_method = sub[sub["method"] == method]
                    for metric in ranked:
                        blocks.append(self._worst_block(key, method, metric, of_method))
            sections.append(
                {"anchor": anchor, "heading": self._section_heading(key), "blocks": blocks}
            )
        return sections, anchors

    def _worst_block(
        self, key: Key, method: str, metric: str, frame: pd.DataFrame
    ) -> dict[str, Any]:
        dataset = key[0]
        # Worst first; ties by image id (digit runs by value), then seed; one output per image.
        candidates = sorted(
            frame[frame[metric].notna()].to_dict("records"),
            key=lambda r: (-float(r[metric]), _natural_key(r["image_id"]), r["seed"]),
        )
        worst: dict[str, dict[str, Any]] = {}
        for r in candidates:
            if len(worst) == WORST_SHOWN:
                break
            worst.setdefault(r["image_id"], r)
        rows = []
        for r in worst.values():
            image_id = r["image_id"]
            full = self._row(key, image_id)
            lr, hr = full.tiles[0], full.tiles[-1]
            where = f"{dataset} {image_id}"
            output = self._output_tile(r, method, r["seed"], key, where)
            output.focus = True
            rows.append(
                {
                    "image_id": image_id,
                    "value": _metric_caption(metric, r[metric]),
                    "seed": r["seed"],
                    "tiles": [lr, output, hr],
                    "gallery": self.locations.get((key, image_id)),
                }
            )
        return {
            "method": method,
            "metric": metric_info(metric).label,
            "rows": rows,
            "columns": ["LR input", f"{method} output", "Ground truth"],
        }

    def _section_heading(self, key: Key) -> str:
        dataset, task, kernel = key
        return f"{dataset} \u00b7 {_task_label(task)} \u00b7 {kernel}"

    # ---------------------------------------------------------------- overview

    def _charts(self) -> dict[str, list[ChartView]]:
        """Charts by key, written into the staging folder; each file must exist."""
        charts: dict[str, list[ChartView]] = {}
        for chart in make_charts(self.raw_per_image, self.raw_summary, self.folder):
            if Path(chart.path).is_absolute() or ".." in Path(chart.path).parts:
                raise ValueError(f"chart {chart.id!r}: {chart.path!r} is not inside the report")
            path = self.folder / chart.path
            if not path.is_file():
                raise ValueError(f"chart {chart.id!r}: {chart.path} was not written")
            width, height = _svg_size(path) or (0, 0)
            view = ChartView(
                chart.id, chart.title, chart.path, chart.alt, chart.caption, width, height
            )
            charts.setdefault(str(chart.key), []).append(view)
        return charts

    def _render_index(
        self, charts: Mapping[str, list[ChartView]], failures: Mapping[Key, str]
    ) -> None:
        used = {"overview", "contents", "run", "datasets-overview", "tasks", "methods"}
        used |= {"conventions", "software", "timings", "other-facts", "overview-charts", "main"}
        used |= {chart.id for views in charts.values() for chart in views}
        parts = []
        for dataset, categories in self.categories.items():
            anchor = self._dataset_anchor(dataset)
            used.add(anchor)
            galleries = [(c, self._gallery_href(dataset, c, 1)) for c in categories if c.pages]
            sections = []
            for key in (k for k in self.keys if k[0] == dataset):
                first_page = self.first_pages.get(key)
                sections.append(
                    Section(
                        id=_unique_id(f"s-{'-'.join(key)}", used),
                        dataset=dataset,
                        task=key[1],
                        kernel=key[2],
                        heading=self._key_heading(key),
                        table=self.summary_all.get(key),
                        charts=charts.get("/".join(key), []),
                        notes=_section_notes(self.per_image, key),
                        gallery=Link("gallery of all images", first_page) if first_page else None,
                        failures=Link("worst outputs", f"failures.html#{failures[key]}")
                        if key in failures
                        else None,
                    )
                )
            parts.append(
                DatasetPart(anchor, dataset, len(categories[0].image_ids), galleries, sections)
            )
        overview = _Overview.build(self.run_info, self.categories)
        self._render(
            "index.html.j2",
            "index.html",
            title=self.options.title,
            overview=overview,
            overview_charts=charts.get("overview", []),
            parts=parts,
            dataset_anchors={part.name: part.id for part in parts},
            legend=_legend(self.summary),
        )


# --------------------------------------------------------------------------- tables


def _normalised_per_image(per_image: pd.DataFrame) -> pd.DataFrame:
    frame = per_image.copy()
    for column in ("dataset", "image_id", "task", "kernel", "method", "status"):
        frame[column] = frame[column].map(_text)
    frame["seed"] = frame["seed"].map(_as_int)
    return frame


def _normalised_summary(summary: pd.DataFrame) -> pd.DataFrame:
    frame = summary.copy()
    for column in ("dataset", "task", "kernel", "method", "metric"):
        frame[column] = frame[column].map(_text)
    frame["category"] = frame["category"].map(_text) if "category" in frame.columns else ALL
    return frame


def _records_by_image(per_image: pd.DataFrame) -> dict[tuple[Key, str], list[dict[str, Any]]]:
    """Rows of each (key, image), sorted by method and seed (input order does not matter)."""
    ordered = per_image.sort_values(
        ["dataset", "task", "kernel", "image_id", "method", "seed"], kind="stable"
    )
    records: dict[tuple[Key, str], list[dict[str, Any]]] = {}
    for r in ordered.to_dict("records"):
        records.setdefault(((r["dataset"], r["task"], r["kernel"]), r["image_id"]), []).append(r)
    return dict(
        sorted(records.items(), key=lambda kv: (_key_sort(kv[0][0]), _natural_key(kv[0][1])))
    )


def _legend(summary: pd.DataFrame) -> list[tuple[str, str]]:
    metrics = _ordered_metrics(summary["metric"]) if not summary.empty else []
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
    metrics = _ordered_metrics(sub["metric"])
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
            spread = getattr(r, "seed_std", None)
            cells.append(
                SummaryCell(
                    mean=format_value(m, r.mean),
                    ci=f"[{format_value(m, r.ci_low)}, {format_value(m, r.ci_high)}]",
                    n=_as_int(r.n),
                    n_excluded=_as_int(getattr(r, "n_excluded", 0)),
                    excluded_reasons=_text(getattr(r, "excluded_reasons", "")),
                    alignment=_alignment_text(getattr(r, "alignment", "")),
                    seed_spread="" if _is_na(spread) else format_value(m, spread),
                    best=method in best[m],
                )
            )
        rows.append(SummaryRow(method, cells))
    columns = [
        MetricColumn(m, metric_info(m).label, metric_info(m).unit, metric_info(m).higher_is_better)
        for m in metrics
    ]
    return SummaryTable(columns, rows, metric_info(primary).label if primary else None)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column of ``frame``, or None for every row when it has none (older tables)."""
    if name in frame.columns:
        return frame[name]
    return pd.Series(None, index=frame.index, dtype=object)


def _outcome(status: str, alignment: Any) -> str:
    """What became of an image without a detected face, in words."""
    if alignment == CENTRE_CROP or status == "fallback":
        return "centre crop: scored, left out of identity"
    return "left out (no_face: skip)"


def _alignment_text(value: Any) -> str:
    """``aligned:20;prealigned:0;centre_crop:4`` as ``aligned 20, centre crop 4``; empty
    when every value comes from an FFHQ alignment (the usual case) or nothing is known."""
    counts = {}
    for part in _text(value).split(";"):
        name, _, number = part.partition(":")
        if name and number.isdigit() and int(number):
            counts[name] = int(number)
    if not counts or set(counts) == {ALIGNED}:
        return ""
    return ", ".join(f"{ALIGNMENT_LABELS.get(name, name)} {n}" for name, n in counts.items())


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


def _section_notes(per_image: pd.DataFrame, key: Key) -> list[str]:
    if "crop_border" not in per_image.columns:
        return []
    sub = per_image[
        (per_image["dataset"] == key[0])
        & (per_image["task"] == key[1])
        & (per_image["kernel"] == key[2])
    ]
    borders = sorted({_as_int(b) for b in sub["crop_border"].dropna()})
    if len(borders) == 1:
        return [f"PSNR and SSIM are computed after removing {borders[0]} px from each border."]
    if borders:
        return [f"PSNR and SSIM are computed with crop borders {', '.join(map(str, borders))} px."]
    return []


def _pager(current: int, total: int, href: Any) -> Pager:
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


# --------------------------------------------------------------------------- overview


@dataclass
class _Overview:
    """Run facts arranged as tables; keys the report does not know go to ``other``."""

    facts: list[tuple[str, str]]
    datasets: tuple[list[str], list[list[Any]]] | None
    tasks: list[str]
    dataset_tasks: list[tuple[str, str]]
    kernels: list[str]
    methods: tuple[list[str], list[list[str]]] | None
    conventions: list[tuple[str, str]]
    software: list[tuple[str, str]]
    timings: list[tuple[str, str, str]]
    other: InfoNode

    @classmethod
    def build(
        cls, run_info: Mapping[str, Any], categories: Mapping[str, list[Category]]
    ) -> _Overview:
        handled: set[str] = set()

        def take(name: str, kind: type | tuple[type, ...]) -> Any:
            value = run_info.get(name)
            if isinstance(value, kind):
                handled.add(name)
                return value
            return None

        facts = [
            (label, _scalar_text(run_info[name]))
            for name, label in (
                ("created", "Created"),
                ("git_commit", "Git commit"),
                ("config_digest", "Config digest"),
            )
            if name in run_info and take(name, (str, int, float)) is not None
        ]
        datasets = _datasets_table(take("datasets", Mapping), categories)
        tasks = [_scalar_text(t) for t in take("tasks", (list, tuple)) or []]
        dataset_tasks = [
            (str(name), ", ".join(map(_scalar_text, value)))
            for name, value in (take("dataset_tasks", Mapping) or {}).items()
            if isinstance(value, list | tuple)
        ]
        kernels = [_scalar_text(k) for k in take("kernels", (list, tuple)) or []]
        methods = _methods_table(take("methods", Mapping))
        conventions = [
            (str(k), _scalar_text(v))
            for k, v in (take("metric_conventions", Mapping) or {}).items()
        ]
        software = [(str(k), _scalar_text(v)) for k, v in (take("software", Mapping) or {}).items()]
        timings = [
            (
                str(stage),
                _scalar_text(value.get("jobs")),
                _seconds_text(value.get("seconds")),
            )
            for stage, value in (take("stage_timings", Mapping) or {}).items()
            if isinstance(value, Mapping)
        ]
        other = _info_tree({k: v for k, v in run_info.items() if k not in handled})
        return cls(
            facts,
            datasets,
            tasks,
            dataset_tasks,
            kernels,
            methods,
            conventions,
            software,
            timings,
            other,
        )


def _datasets_table(
    datasets: Mapping[str, Any] | None, categories: Mapping[str, list[Category]]
) -> tuple[list[str], list[list[Any]]] | None:
    """Data sets as rows, their counts (images, usable, faces detected, ...) as columns."""
    names = sorted(set(datasets or {}) | set(categories))
    if not names:
        return None
    fields: list[str] = []
    for value in (datasets or {}).values():
        if isinstance(value, Mapping):
            fields += [str(k) for k in value if str(k) not in fields]
    header = ["Data set", *(f.replace("_", " ") for f in fields), "Gallery categories"]
    rows = []
    for name in names:
        value = (datasets or {}).get(name)
        counts = value if isinstance(value, Mapping) else {}
        rows.append(
            [
                name,
                *(_scalar_text(counts.get(f)) for f in fields),
                str(max(0, len(categories.get(name, [])) - 1)),
            ]
        )
    return header, rows


def _methods_table(methods: Mapping[str, Any] | None) -> tuple[list[str], list[list[str]]] | None:
    if not methods or not all(isinstance(v, Mapping) for v in methods.values()):
        return None
    rows = []
    for name, options in methods.items():
        rest = {k: v for k, v in options.items() if k not in ("arch", "seeds")}
        rows.append(
            [
                str(name),
                _scalar_text(options.get("arch")),
                ", ".join(map(_scalar_text, options.get("seeds") or [])) or "0",
                "; ".join(f"{k}: {_scalar_text(v)}" for k, v in rest.items()) or MISSING,
            ]
        )
    return ["Method", "Architecture", "Seeds", "Options"], rows


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
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_scalar_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_scalar_text(v) for v in value)
    return str(value)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


# --------------------------------------------------------------------------- assets


def _square(size: Any) -> tuple[int, int] | None:
    try:
        n = int(size)
    except (TypeError, ValueError):
        return None
    return (n, n) if n > 0 else None


def _fit(size: tuple[int, int], limit: int) -> tuple[int, int]:
    """Shrink ``size`` to fit in ``limit`` x ``limit``, keeping the aspect ratio."""
    w, h = size
    scale = min(1.0, limit / max(w, h))
    return (max(1, round(w * scale)), max(1, round(h * scale)))


@dataclass(frozen=True)
class _Asset:
    """Files written for one source image; ``problem`` says why there are none."""

    thumb: str | None = None
    full: str | None = None
    width: int = 0
    height: int = 0
    full_width: int = 0
    full_height: int = 0
    source_size: tuple[int, int] | None = None
    problem: str | None = None

    def tile(self, alt: str) -> Tile:
        """A fresh tile: each use gets its own alt text and captions; the files are shared."""
        return Tile(
            alt=alt,
            thumb=self.thumb,
            full=self.full,
            width=self.width,
            height=self.height,
            problem=self.problem,
        )


class _AssetWriter:
    """Writes thumbnails and full-size images into ``<report>/assets``, once per source."""

    def __init__(self, folder: Path, root: Path) -> None:
        self.folder = folder
        self.root = root
        self._done: dict[tuple[Any, ...], _Asset] = {}
        self._copies: dict[str, str | None] = {}

    def image(self, path_value: Any, dataset: str, stem: str) -> _Asset:
        """Thumbnail + full-size copy of an image as it is (SR output, HR, source)."""
        return self._cached(path_value, None, None, dataset, stem)

    def enlarged(
        self,
        path_value: Any,
        dataset: str,
        stem: str,
        target: tuple[int, int] | None,
        thumb_size: tuple[int, int] | None,
    ) -> _Asset:
        """The LR image enlarged with nearest neighbour: full size to ``target``, thumbnail
        to ``thumb_size``, both straight from the LR pixels so the blocks stay crisp."""
        return self._cached(path_value, target, thumb_size, dataset, stem)

    def copy(self, path_value: Any, dataset: str, stem: str) -> str | None:
        """A full-size copy without a thumbnail (extra seeds, animations); None if unreadable."""
        if not _has_path(path_value):
            return None
        source = str(path_value)
        if source not in self._copies:
            resolved = self._resolve(Path(source))
            if resolved.is_file() and resolved.suffix.lower() in _WEB_SAFE_SUFFIXES:
                rel = self._full_name(dataset, stem, source, None, resolved.suffix)
                _link_or_copy(resolved, self.folder / rel)
                self._copies[source] = rel
            else:
                self._copies[source] = self._cached(path_value, None, None, dataset, stem).full
        return self._copies[source]

    def _resolve(self, source: Path) -> Path:
        return source if source.is_absolute() else self.root / source

    def _cached(
        self,
        path_value: Any,
        target: tuple[int, int] | None,
        thumb_size: tuple[int, int] | None,
        dataset: str,
        stem: str,
    ) -> _Asset:
        if not _has_path(path_value):
            return _Asset(problem="no image path recorded")
        key = (str(path_value), target, thumb_size)
        cached = self._done.get(key)
        if cached is None:
            cached = self._write(Path(str(path_value)), target, thumb_size, dataset, stem)
            self._done[key] = cached
        return cached

    def _full_name(self, dataset: str, stem: str, source: str, target: Any, suffix: str) -> str:
        suffix = ".jpg" if suffix.lower() == ".jpeg" else suffix.lower()
        return f"assets/full/{_slug(dataset)}/{_slug(stem)}-{_digest(source, target)}{suffix}"

    def _write(
        self,
        source: Path,
        target: tuple[int, int] | None,
        thumb_size: tuple[int, int] | None,
        dataset: str,
        stem: str,
    ) -> _Asset:
        resolved = self._resolve(source)
        try:
            image = load_rgb(resolved)
        except InputError as exc:
            # Name the file as the table records it; the resolved path is machine-specific.
            return _Asset(problem=f"{source}: {exc.problem}")
        except OSError as exc:  # e.g. permission denied, I/O error
            return _Asset(problem=f"{source}: {exc.strerror or exc}")

        enlarge = target is not None and target != image.size
        name = f"{_slug(stem)}-{_digest(str(source), target, thumb_size)}"
        thumb_rel = f"assets/thumbs/{_slug(dataset)}/{name}.webp"
        if enlarge:
            assert target is not None
            full_image = image.resize(target, Image.Resampling.NEAREST)
            full_rel = self._full_name(dataset, stem, str(source), target, ".png")
            save_png(self.folder / full_rel, full_image)
            thumb_size = thumb_size or _fit(target, THUMB_MAX)
            # Nearest only where the thumbnail enlarges; a reduction would just drop pixels.
            shrink = thumb_size[0] < image.width or thumb_size[1] < image.height
            filter_ = Image.Resampling.LANCZOS if shrink else Image.Resampling.NEAREST
            thumb = image.resize(thumb_size, filter_)
            _save_webp(self.folder / thumb_rel, thumb, lossless=True)
            full_size = target
        else:
            suffix = resolved.suffix.lower()
            if suffix in _WEB_SAFE_SUFFIXES - {".gif"}:
                full_rel = self._full_name(dataset, stem, str(source), None, suffix)
                _link_or_copy(resolved, self.folder / full_rel)
            else:
                full_rel = self._full_name(dataset, stem, str(source), None, ".png")
                save_png(self.folder / full_rel, image)
            thumb = image.copy()
            thumb.thumbnail((THUMB_MAX, THUMB_MAX), Image.Resampling.LANCZOS)
            _save_webp(self.folder / thumb_rel, thumb, lossless=False)
            full_size = image.size
        return _Asset(
            thumb=thumb_rel,
            full=full_rel,
            width=thumb.width,
            height=thumb.height,
            full_width=full_size[0],
            full_height=full_size[1],
            source_size=image.size,
        )


_SVG_LENGTH = re.compile(r'\b(width|height)="([0-9.]+)(px|pt)?"')
_PX_PER_UNIT = {"px": 1.0, "pt": 4.0 / 3.0, None: 1.0}


def _svg_size(path: Path) -> tuple[int, int] | None:
    """Width and height of an SVG's root element in CSS pixels (1 pt = 4/3 px), if given."""
    head = path.read_bytes()[:4096].decode("utf-8", "replace")
    root = re.search(r"<svg\b[^>]*>", head)
    if root is None:
        return None
    sizes = {
        name: float(value) * _PX_PER_UNIT[unit]
        for name, value, unit in _SVG_LENGTH.findall(root[0])
    }
    if "width" not in sizes or "height" not in sizes:
        return None
    return (round(sizes["width"]), round(sizes["height"]))


def _save_webp(target: Path, image: Image.Image, lossless: bool) -> None:
    """Deterministic WebP: fixed quality and effort, no metadata."""
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, format="WEBP", quality=WEBP_QUALITY, method=4, lossless=lossless)


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (no bytes copied), else copy it.

    The target lies in the report's staging folder, which is swapped into place
    as a whole, so the copy need not be atomic by itself.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:  # other file system, no permission, links unsupported
        shutil.copyfile(source, target)


__all__ = [
    "MetricInfo",
    "category_label",
    "format_value",
    "make_charts",
    "metric_info",
    "render_report",
]
