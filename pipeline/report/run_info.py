"""What a run was: data sets, tasks, methods, versions, digests and timings, for the report."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.measure.catalogue import METRICS
from pipeline.provenance import PACKAGE, config_digest, git_commit, software_versions
from pipeline.vocabulary import ALIGNMENTS, DETECT, OK

# The checkout the package runs from (its git commit goes into the report).
CHECKOUT = PACKAGE.parent
# A method's options as the report lists them: these first, then the rest in config order.
FIRST_OPTIONS = ("seeds", "batch_size")


def stage_timings(benchmarks_dir: Path) -> dict[str, dict[str, float]]:
    """Wall-clock seconds per stage, summed over its jobs' Snakemake benchmark files."""
    timings: dict[str, dict[str, float]] = {}
    if not Path(benchmarks_dir).is_dir():
        return timings
    for stage_dir in sorted(p for p in Path(benchmarks_dir).iterdir() if p.is_dir()):
        seconds, jobs = 0.0, 0
        for tsv in stage_dir.rglob("*.tsv"):
            frame = pd.read_csv(tsv, sep="\t")
            if "s" in frame.columns and len(frame):
                seconds += float(frame["s"].iloc[0])
                jobs += 1
        timings[stage_dir.name] = {"seconds": round(seconds, 3), "jobs": jobs}
    return timings


def dataset_counts(
    manifest: pd.DataFrame, faces: pd.DataFrame, policy: str | None
) -> dict[str, Any]:
    """Images of one data set and what became of them, for the report's data set table.

    ``images``: manifest rows; ``usable``: catalog status ``ok``;
    ``alignment_policy``: ``detect`` or ``prealigned``; ``faces_detected``: images
    in which the detector found a face (recorded under either policy); then the
    images each alignment kept (``aligned``, ``prealigned``, ``centre_crop``) and
    ``left_out``: the rest (unusable sources, ``no_face: skip``, errors).
    """
    alignments = faces["alignment"].value_counts().to_dict() if "alignment" in faces.columns else {}
    kept = {name: int(alignments.get(name, 0)) for name in ALIGNMENTS}
    return {
        "images": len(manifest),
        "usable": int((manifest["status"] == OK).sum()),
        "alignment_policy": policy or DETECT,
        "faces_detected": int((faces["status"] == OK).sum()),
        **kept,
        "left_out": len(manifest) - sum(kept.values()),
    }


def collect_run_info(
    config: Mapping[str, Any],
    manifests: Sequence[str | Path],
    faces: Sequence[str | Path],
    benchmarks_dir: Path,
    repo: Path = CHECKOUT,
) -> dict[str, Any]:
    datasets = {}
    for manifest_path, faces_path in zip(manifests, faces, strict=True):
        manifest = pd.read_parquet(manifest_path, columns=["image_id", "status"])
        face_table = pd.read_parquet(faces_path)
        name = Path(manifest_path).parent.name
        datasets[name] = dataset_counts(
            manifest, face_table, config.get("datasets", {}).get(name, {}).get("alignment")
        )
    methods = {
        name: {
            **{k: method[k] for k in FIRST_OPTIONS if k in method},
            **{k: v for k, v in method.items() if k not in ("enabled", *FIRST_OPTIONS)},
        }
        for name, method in config["methods"].items()
        if method["enabled"]
    }
    return {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(repo),
        "config_digest": config_digest(config),
        "datasets": datasets,
        "tasks": [f"{task['lr']} -> {task['hr']}" for task in config["tasks"]],
        "dataset_tasks": {
            name: [f"{task['lr']} -> {task['hr']}" for task in dataset["tasks"]]
            for name, dataset in config["datasets"].items()
            if dataset.get("enabled", True) and dataset.get("tasks")
        },
        "kernels": list(config["kernels"]),
        "methods": methods,
        "metric_conventions": {
            **{name: str(metric) for name, metric in METRICS.items()},
            "crop_border": str(config["measure"]["crop_border"]),
        },
        "stage_timings": stage_timings(benchmarks_dir),
        "software": software_versions(),
    }
