"""The view model of the report: what the templates render, as plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    """A chart of ``pipeline.report.charts`` with its display size in CSS pixels (0: unknown)."""

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


@dataclass(frozen=True)
class Options:
    page_size: int
    max_images: int | None
    seeds_shown: int
    title: str


@dataclass
class MethodColumn:
    method: str
    seed: int | None  # None: the method's single output (deterministic methods)
    extra_seeds: list[int]  # seeds beyond seeds_shown, linked from this column's cells
