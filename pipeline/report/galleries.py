"""Gallery pages: per data set and category, one row per image and task x kernel.

A row is the LR input enlarged with nearest neighbour to the ground truth's
size, each method's output (every seed up to ``seeds_shown``, further seeds as
links), the ground truth, with metrics under each output. Rows are ordered by
task (HR size, then LR size), kernel, then image id (digit runs by value).
Each category page starts with that category's summary table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.report.assets import THUMB_MAX, fit, square
from pipeline.report.model import Category, GalleryGroup, GalleryRow, Link, Tile
from pipeline.report.tables import pager, summary_table
from pipeline.report.text import (
    TIMES,
    Key,
    has_path,
    is_na,
    key_sort,
    metric_caption,
    short_digest,
    slug,
    task_label,
    text_of,
)
from pipeline.vocabulary import ALL_IMAGES, CENTRE_CROP, SCORED


class GalleryPages:
    """The gallery pages of a report (a part of :class:`pipeline.report.render.Renderer`,
    whose state it reads: records, columns, categories, assets)."""

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
        hr_size = hr_size or square(first.get("hr_size"))
        hr_text = f", {hr_size[0]}{TIMES}{hr_size[1]}" if hr_size else ""
        hr_tile = hr.tile(f"{where}: ground truth{hr_text}")
        if hr.problem is None:
            hr_tile.captions.insert(0, f"{hr.full_width}{TIMES}{hr.full_height}")

        thumb_size = fit(hr_size, THUMB_MAX) if hr_size else None
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
                if extra is not None and extra["status"] in SCORED:
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
            f"r-{slug(image_id, 40)}-{short_digest(key, image_id)}", image_id, notes, tiles
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
        alt = f"{where}: {method} output, {task_label(task)}, {kernel}{seed_text}"
        if record is None:
            return Tile(alt, problem="no output recorded for this image")
        status = record["status"]
        if status not in SCORED:
            reason = text_of(record.get("reason")) or "no reason recorded"
            return Tile(alt, problem=f"status {status or 'missing'}: {reason}")
        stem = f"{record['image_id']}-{method}-{task}-{kernel}-s{record['seed']}"
        tile = self.assets.image(record["sr_path"], dataset, stem).tile(alt)
        tile.captions.extend(metric_caption(m, record.get(m)) for m in self.shown_metrics)
        converged = record.get("converged")
        if converged is not None and not is_na(converged) and not bool(converged):
            l2 = record.get("final_l2")
            l2_text = f" (L2 {float(l2):.4g})" if l2 is not None and not is_na(l2) else ""
            tile.captions.append(f"missed eps{l2_text}")
        animation = self._animation(record, stem)
        if animation:
            tile.links.append(Link(f"search steps of seed {record['seed']} (animation)", animation))
        return tile

    def _animation(self, record: Mapping[str, Any], stem: str) -> str | None:
        name = record.get("animation")
        if not has_path(name):
            return None
        path = Path(str(record["sr_path"])).parent / str(name)
        return self.assets.copy(str(path), record["dataset"], f"{stem}-steps")

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
                (self._key_heading(k), summary_table(sub))
                for k, sub in sorted(tables[category.name].items(), key=lambda kv: key_sort(kv[0]))
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
                    if category.name == ALL_IMAGES:
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
                    pager=pager(page, category.pages, lambda n: f"page-{n}.html"),
                )

    def _key_heading(self, key: Key) -> str:
        _, task, kernel = key
        return f"{task_label(task)} \u00b7 {kernel}"

    def _column_heads(self, key: Key) -> list[str]:
        heads = ["LR input"]
        for column in self.columns[key]:
            heads.append(
                column.method if column.seed is None else f"{column.method} (seed {column.seed})"
            )
        heads.append("Ground truth (HR)")
        return heads

    def _dataset_anchor(self, dataset: str) -> str:
        return f"d-{slug(dataset)}-{short_digest(dataset)[:6]}"
