"""The failures page: images without a face, sources left out, outputs not measured,
searches that missed eps, and the worst outputs per method."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pandas as pd

from pipeline.io import write_csv
from pipeline.report.tables import column_or_none, outcome
from pipeline.report.text import (
    MISSING,
    Key,
    first_of_family,
    is_na,
    key_sort,
    metric_caption,
    metric_info,
    natural_key,
    task_label,
    text_of,
    unique_id,
)
from pipeline.vocabulary import CENTRE_CROP, NO_FACE, NO_FACE_STATUSES, OK, PREALIGNED, SCORED

WORST_SHOWN = 8
"""Worst outputs listed per method and metric on the failures page."""
MISSED_EPS_SHOWN = 200
"""Missed-eps searches shown with thumbnails; all of them are in the CSV beside."""
# The metric families whose worst outputs are listed (the first metric of each present).
WORST_BY = ("LPIPS", "identity distance")


class FailurePages:
    """The failures page of a report (a part of :class:`pipeline.report.render.Renderer`,
    whose state it reads, and whose gallery rows it reuses)."""

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
            framing = column_or_none(frame, "alignment")
            for image_id, status, reason, path, alignment in zip(
                frame["image_id"], statuses, reasons, paths, framing, strict=True
            ):
                if status in NO_FACE_STATUSES and alignment != PREALIGNED:
                    found[(dataset, str(image_id))] = (
                        outcome(status, alignment),
                        text_of(reason),
                        path,
                    )
        for (key, image_id), records in self.records.items():
            first = records[0]
            if key[0] not in self.faces and (
                first["status"] == NO_FACE or first.get("alignment") == CENTRE_CROP
            ):
                found.setdefault(
                    (key[0], image_id),
                    (
                        outcome(first["status"], first.get("alignment")),
                        text_of(first.get("reason")) or "no face detected",
                        None,
                    ),
                )
        # The crop actually evaluated (largest HR), else the source image.
        crops: dict[tuple[str, str], tuple[Any, Key]] = {}
        for (key, image_id), records in self.records.items():  # tasks by HR size: last wins
            if (key[0], image_id) in found:
                crops[(key[0], image_id)] = (records[0]["hr_path"], key)
        items = []
        for dataset, image_id in sorted(found, key=lambda d: (d[0], natural_key(d[1]))):
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
            prealigned = column_or_none(frame, "alignment") == PREALIGNED
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
                (str(s), text_of(r))
                for s, r in zip(frame["status"], reasons, strict=True)
                if str(s) != OK
            )
            rows += [(dataset, s, r or MISSING, n) for (s, r), n in sorted(counts.items())]
        return rows

    def _not_measured(self) -> list[tuple[str, str, str, str, str, str, int]]:
        """Outputs not shown (status outside SCORED), counted by key, method and reason."""
        frame = self.per_image[~self.per_image["status"].isin(SCORED)]
        if frame.empty:
            return []
        reasons = frame["reason"].map(text_of) if "reason" in frame.columns else ""
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
        ordered = sorted(counts.items(), key=lambda kv: (key_sort(kv[0][:3]), kv[0][3:]))
        return [(d, task_label(t), k, m, s, r or MISSING, n) for (d, t, k, m, s, r), n in ordered]

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
        counts.sort(key=lambda c: (key_sort(c[0]), c[1]))
        counts_view = [(d, task_label(t), k, m, n, total) for (d, t, k), m, n, total in counts]
        missed = frame[missed_mask].copy()
        if missed.empty:
            return [], 0, counts_view
        l2 = (
            missed["final_l2"]
            if "final_l2" in missed.columns
            else pd.Series(math.nan, missed.index)
        )
        missed = missed.assign(final_l2=l2)
        missed["_sort"] = [(-v if not is_na(v) else math.inf) for v in missed["final_l2"]]
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
                f"{r['dataset']} {r['image_id']}: {r['method']} output, {task_label(r['task'])}, "
                f"{r['kernel']}, seed {r['seed']} (missed eps)"
            )
            items.append(
                {
                    "dataset": r["dataset"],
                    "image_id": r["image_id"],
                    "task": task_label(r["task"]),
                    "kernel": r["kernel"],
                    "method": r["method"],
                    "seed": r["seed"],
                    "final_l2": "" if is_na(r["final_l2"]) else f"{float(r['final_l2']):.4g}",
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
        columns = self.per_image.columns
        ranked = [m for family in WORST_BY if (m := first_of_family(columns, family))]
        used: set[str] = set()
        sections, anchors = [], {}
        shown = self.per_image[self.per_image["status"].isin(SCORED)]
        groups = {
            (str(d), str(t), str(k)): g
            for (d, t, k), g in shown.groupby(["dataset", "task", "kernel"], sort=False)
        }
        for key in self.keys:
            anchor = unique_id(f"w-{'-'.join(key)}", used)
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
            key=lambda r: (-float(r[metric]), natural_key(r["image_id"]), r["seed"]),
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
                    "value": metric_caption(metric, r[metric]),
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
        return f"{dataset} \u00b7 {task_label(task)} \u00b7 {kernel}"
