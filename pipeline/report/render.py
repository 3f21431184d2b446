"""Static HTML report: one self-contained folder you can open from disk or copy to any host.

Every reference is a relative path inside the folder; nothing is fetched from
the network (no CDN, no web fonts) and nothing needs JavaScript. Layout::

    index.html                                   overview, summary tables, charts, training curves
    failures.html                                no face, missed eps, worst outputs
    failures-missed-eps.csv                      every PULSE search that missed eps
    galleries/<dataset>/<category>/page-<n>.html paginated galleries per category
    charts/...                                   SVG charts (pipeline.report.charts)
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

import importlib.resources
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from pipeline.io import atomic_dir, write_text
from pipeline.report.assets import AssetWriter
from pipeline.report.failures import FailurePages
from pipeline.report.galleries import GalleryPages
from pipeline.report.model import Category, GalleryRow, MethodColumn, Options, SummaryTable
from pipeline.report.overview import OverviewPage
from pipeline.report.tables import (
    normalised_per_image,
    normalised_summary,
    records_by_image,
    summary_table,
)
from pipeline.report.text import (
    Key,
    category_label,
    category_list,
    first_of_each_family,
    key_sort,
    natural_key,
    unique_id,
)
from pipeline.vocabulary import ALL_IMAGES, GROUP_COLUMNS, SUMMARY_REQUIRED

log = logging.getLogger(__name__)

PER_IMAGE_REQUIRED = (
    *GROUP_COLUMNS,
    "image_id",
    "seed",
    "status",
    "lr_path",
    "sr_path",
    "hr_path",
)
MANIFEST_REQUIRED = ("image_id",)
FACES_REQUIRED = ("image_id", "status")


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
    histories: Mapping[str, pd.DataFrame] | None = None,
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
    and ``faces.parquet`` (``image_id``, ``status``, ``reason``, ``path``);
    ``histories`` a trained model's name to its ``history.parquet`` (training
    curves, :mod:`pipeline.train`). Image paths are relative to ``root`` unless
    absolute. ``page_size`` rows go on each gallery page;
    ``max_images_per_category`` keeps the first images (by id) of each
    category, None for all; ``seeds_shown`` seeds per stochastic method get a
    thumbnail, further seeds a link.

    A missing or unreadable image becomes a placeholder naming the problem;
    missing *columns* raise ``ValueError`` naming the table and the column. An
    existing ``out_dir`` is replaced only once the new report is complete.
    """
    manifests = dict(manifests or {})
    faces = dict(faces or {})
    require_columns(per_image, PER_IMAGE_REQUIRED, "per_image table")
    require_columns(summary, SUMMARY_REQUIRED, "summary table")
    for name, frame in manifests.items():
        require_columns(frame, MANIFEST_REQUIRED, f"manifest of data set {name!r}")
    for name, frame in faces.items():
        require_columns(frame, FACES_REQUIRED, f"faces table of data set {name!r}")
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

    options = Options(page_size, max_images_per_category, seeds_shown, title)
    with atomic_dir(out_dir) as staging:
        Renderer(
            staging, Path(root), per_image, summary, run_info, manifests, faces, options,
            histories=dict(histories or {}),
        )()  # fmt: skip
    return out_dir / "index.html"


def require_columns(frame: pd.DataFrame, required: Iterable[str], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} is missing columns {missing}; it has {list(frame.columns)}")


# --------------------------------------------------------------------------- rendering


class Renderer(GalleryPages, FailurePages, OverviewPage):
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
        options: Options,
        histories: Mapping[str, pd.DataFrame] | None = None,
    ) -> None:
        self.folder = folder
        self.histories = dict(histories or {})
        self.options = options
        self.assets = AssetWriter(folder, root)
        self.env = environment()
        self.run_info = run_info
        self.raw_per_image = per_image
        self.raw_summary = summary
        self.manifests = manifests
        self.faces = faces
        self.per_image = normalised_per_image(per_image)
        self.summary = normalised_summary(summary)
        self.records = records_by_image(self.per_image)
        self.keys = sorted(
            {k for k, _ in self.records} | set(self._summary_groups(ALL_IMAGES)), key=key_sort
        )
        self.shown_metrics = first_of_each_family(self.per_image.columns)
        all_tables = {
            key: summary_table(sub) for key, sub in self._summary_groups(ALL_IMAGES).items()
        }
        self.summary_all = all_tables
        self.columns = {key: self._method_columns(key, all_tables.get(key)) for key in self.keys}
        datasets = sorted({k[0] for k in self.keys})
        self.categories = {dataset: self._dataset_categories(dataset) for dataset in datasets}
        used_slugs: set[str] = set()
        self.dataset_slugs = {dataset: unique_id(dataset, used_slugs) for dataset in datasets}
        self._rows: dict[tuple[Key, str], GalleryRow] = {}
        # Where each (key, image) row lives in the "all" gallery, for links from other pages.
        self.locations: dict[tuple[Key, str], str] = {}
        self.first_pages: dict[Key, str] = {}  # the "all" page where each key's rows begin

    # ---------------------------------------------------------------- entry point

    def __call__(self) -> None:
        css = importlib.resources.files("pipeline.report").joinpath("templates/report.css")
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

    def _method_columns(self, key: Key, table: SummaryTable | None) -> list[MethodColumn]:
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
                columns.append(MethodColumn(method, None, []))
                continue
            shown = seeds[: self.options.seeds_shown]
            for i, seed in enumerate(shown):
                extra = seeds[len(shown) :] if i == len(shown) - 1 else []
                columns.append(MethodColumn(method, seed, extra))
        return columns

    def _dataset_categories(self, dataset: str) -> list[Category]:
        """``all`` first, then the manifest's categories by size (largest first), then name.

        A category that holds every image of the data set (an emoji set's
        ``platform:<name>``) repeats ``all`` and gets no gallery of its own.
        """
        image_ids = sorted(
            {image_id for (k, image_id) in self.records if k[0] == dataset}, key=natural_key
        )
        used: set[str] = set()
        categories = [Category(ALL_IMAGES, "all images", unique_id(ALL_IMAGES, used), image_ids)]
        manifest = self.manifests.get(dataset)
        if manifest is None or "categories" not in manifest.columns or not image_ids:
            return categories
        known = set(image_ids)
        members: dict[str, list[str]] = {}
        for image_id, cats in zip(manifest["image_id"], manifest["categories"], strict=True):
            if str(image_id) in known:
                for name in dict.fromkeys(category_list(cats)):
                    members.setdefault(name, []).append(str(image_id))
        unique = {name: sorted(set(ids), key=natural_key) for name, ids in members.items()}
        ranked = sorted(unique.items(), key=lambda item: (-len(item[1]), item[0]))
        for name, ids in ranked:
            if len(ids) == len(image_ids) or name == ALL_IMAGES:
                continue
            categories.append(Category(name, category_label(name), unique_id(name, used), ids))
        return categories

    def _render(self, template: str, target: str, **context: Any) -> None:
        base = "../" * target.count("/")
        html = self.env.get_template(template).render(
            base=base, report_title=self.options.title, **context
        )
        write_text(self.folder / target, html)


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
