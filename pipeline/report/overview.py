"""The overview page (``index.html``): what was run, the summary tables and the charts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.report.assets import svg_size
from pipeline.report.charts import make_charts, make_training_charts
from pipeline.report.model import Category, ChartView, DatasetPart, InfoNode, Link, Section
from pipeline.report.tables import legend, section_notes
from pipeline.report.text import MISSING, Key, scalar_text, seconds_text, unique_id


class OverviewPage:
    """The overview page of a report (a part of :class:`pipeline.report.render.Renderer`)."""

    def _charts(self) -> dict[str, list[ChartView]]:
        """Charts by key, written into the staging folder; each file must exist."""
        charts: dict[str, list[ChartView]] = {}
        made = make_charts(self.raw_per_image, self.raw_summary, self.folder)
        made += make_training_charts(self.histories, self.folder)
        for chart in made:
            if Path(chart.path).is_absolute() or ".." in Path(chart.path).parts:
                raise ValueError(f"chart {chart.id!r}: {chart.path!r} is not inside the report")
            path = self.folder / chart.path
            if not path.is_file():
                raise ValueError(f"chart {chart.id!r}: {chart.path} was not written")
            width, height = svg_size(path) or (0, 0)
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
        used.add("training-charts")
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
                        id=unique_id(f"s-{'-'.join(key)}", used),
                        dataset=dataset,
                        task=key[1],
                        kernel=key[2],
                        heading=self._key_heading(key),
                        table=self.summary_all.get(key),
                        charts=charts.get("/".join(key), []),
                        notes=section_notes(self.per_image, key),
                        gallery=Link("gallery of all images", first_page) if first_page else None,
                        failures=Link("worst outputs", f"failures.html#{failures[key]}")
                        if key in failures
                        else None,
                    )
                )
            parts.append(
                DatasetPart(anchor, dataset, len(categories[0].image_ids), galleries, sections)
            )
        overview = Overview.build(self.run_info, self.categories)
        self._render(
            "index.html.j2",
            "index.html",
            title=self.options.title,
            overview=overview,
            overview_charts=charts.get("overview", []),
            training_charts=charts.get("training", []),
            parts=parts,
            dataset_anchors={part.name: part.id for part in parts},
            legend=legend(self.summary),
        )


@dataclass
class Overview:
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
    ) -> Overview:
        handled: set[str] = set()

        def take(name: str, kind: type | tuple[type, ...]) -> Any:
            value = run_info.get(name)
            if isinstance(value, kind):
                handled.add(name)
                return value
            return None

        facts = [
            (label, scalar_text(run_info[name]))
            for name, label in (
                ("created", "Created"),
                ("git_commit", "Git commit"),
                ("config_digest", "Config digest"),
            )
            if name in run_info and take(name, (str, int, float)) is not None
        ]
        datasets = datasets_table(take("datasets", Mapping), categories)
        tasks = [scalar_text(t) for t in take("tasks", (list, tuple)) or []]
        dataset_tasks = [
            (str(name), ", ".join(map(scalar_text, value)))
            for name, value in (take("dataset_tasks", Mapping) or {}).items()
            if isinstance(value, list | tuple)
        ]
        kernels = [scalar_text(k) for k in take("kernels", (list, tuple)) or []]
        methods = methods_table(take("methods", Mapping))
        conventions = [
            (str(k), scalar_text(v)) for k, v in (take("metric_conventions", Mapping) or {}).items()
        ]
        software = [(str(k), scalar_text(v)) for k, v in (take("software", Mapping) or {}).items()]
        timings = [
            (
                str(stage),
                scalar_text(value.get("jobs")),
                seconds_text(value.get("seconds")),
            )
            for stage, value in (take("stage_timings", Mapping) or {}).items()
            if isinstance(value, Mapping)
        ]
        other = info_tree({k: v for k, v in run_info.items() if k not in handled})
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


def datasets_table(
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
                *(scalar_text(counts.get(f)) for f in fields),
                str(max(0, len(categories.get(name, [])) - 1)),
            ]
        )
    return header, rows


def methods_table(methods: Mapping[str, Any] | None) -> tuple[list[str], list[list[str]]] | None:
    if not methods or not all(isinstance(v, Mapping) for v in methods.values()):
        return None
    rows = []
    for name, options in methods.items():
        rest = {k: v for k, v in options.items() if k not in ("arch", "seeds")}
        rows.append(
            [
                str(name),
                scalar_text(options.get("arch")),
                ", ".join(map(scalar_text, options.get("seeds") or [])) or "0",
                "; ".join(f"{k}: {scalar_text(v)}" for k, v in rest.items()) or MISSING,
            ]
        )
    return ["Method", "Architecture", "Seeds", "Options"], rows


def info_tree(value: Any, depth: int = 0) -> InfoNode:
    """Turn free-form JSON-like run info into a tree of maps, lists and text."""
    if depth > 8:
        return InfoNode("text", text=repr(value))
    if isinstance(value, Mapping):
        return InfoNode("map", items=[(str(k), info_tree(v, depth + 1)) for k, v in value.items()])
    if isinstance(value, list | tuple | set | frozenset):
        values = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        if all(not isinstance(v, Mapping | list | tuple | set) for v in values):
            return InfoNode("text", text=", ".join(scalar_text(v) for v in values) or "(none)")
        return InfoNode("list", items=[info_tree(v, depth + 1) for v in values])
    return InfoNode("text", text=scalar_text(value))
