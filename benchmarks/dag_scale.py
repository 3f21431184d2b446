"""How `snakemake -n` grows with the catalogue: seconds and peak memory to plan the full DAG.

For each size (``--sizes``, default 1,000, 10,000 and 30,000 images) the
benchmark makes a working folder with a synthetic catalogue, as the catalog
stage leaves it: the download's ``record.json`` and the catalog's
``manifest.parquet`` (``MANIFEST_COLUMNS``, every row ``ok``), the manifest
written after the record, so the catalog checkpoint is complete and a dry run
plans every later job from it. The images are split over ``--datasets`` data
sets of kind ``images`` (URL sources: a local folder's fingerprint would be
computed too, and is measured by ``benchmarks/reliability_costs.py``).

The config is the default benchmark's methods (``config.yaml``: bicubic,
SRResNet, SRGAN, ESRGAN, Real-ESRGAN, PULSE) with PULSE searching
``--seeds`` seeds, ``--tasks`` tasks (16 -> 128, 32 -> 128, 64 -> 256), one
kernel and the default shard size. Two states of the folder (``--states``,
``STATES``): ``fresh``, nothing but the catalogues, so the dry run plans every
job (the weights fetches, PULSE's Gaussian fit, the plan, detection,
alignment, downscaling, upscaling, metrics, merges, summary and report); then
``complete``, every output there and recorded (:func:`complete_run`), so the
dry run checks them all and must find nothing to do.

Each dry run is one ``snakemake --dry-run`` process, run ``--repeats`` times:
wall seconds, CPU seconds (user + system, of the process and its children: the
figure that contention on a shared machine changes least) and peak resident
memory (``ru_maxrss`` of that process, from ``os.wait4``), and the jobs it
planned, read from its job table.

    python benchmarks/dag_scale.py                        # 1k, 10k, 30k; both states
    python benchmarks/dag_scale.py --sizes 30000 --states fresh --profile /tmp/prof

Writes ``benchmarks/results/dag_scale.json``. Targets (issue 15): at 30,000
images <= 20 s and <= 2 GB.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _machine import cpu_name  # noqa: E402

from pipeline.io import write_json, write_parquet  # noqa: E402
from pipeline.shards import merge_tables  # noqa: E402
from pipeline.vocabulary import MANIFEST_COLUMNS  # noqa: E402

TASKS = [{"lr": 16, "hr": 128}, {"lr": 32, "hr": 128}, {"lr": 64, "hr": 256}]
TARGET_SECONDS, TARGET_BYTES = 20.0, 2 * 1024**3
STATES = {
    "fresh": "only the catalogs exist: the dry run plans every later job",
    "complete": "every output exists and Snakemake recorded every job (snakemake --touch "
    "--forceall over placeholders): the dry run finds nothing to do",
}


def bench_config(datasets: list[str], n_tasks: int, seeds: int) -> dict[str, Any]:
    """The default benchmark's methods and weights over synthetic data sets."""
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    methods = {
        name: copy.deepcopy(block)
        for name, block in default["methods"].items()
        if block.get("enabled", True)
    }
    pulse = [name for name, block in methods.items() if block["arch"] == "pulse"]
    for name in pulse:
        methods[name]["seeds"] = list(range(seeds))
    return {
        "run_name": "dag_scale",
        "shard_size": default["shard_size"],
        # The working folder's config.yaml is the whole config (the repository's is not read).
        "datasets": {
            name: {"kind": "images", "source": {"url": f"https://example.invalid/{name}.zip"}}
            for name in datasets
        },
        "tasks": TASKS[:n_tasks],
        "kernels": ["pil-bicubic"],
        "weights": default["weights"],
        "methods": methods,
    }


def synthetic_manifest(n_images: int, dataset: str) -> pd.DataFrame:
    """A catalog's manifest of ``n_images`` decodable 1024 px PNGs."""
    ids = [f"{dataset}_{index:06d}" for index in range(n_images)]
    values: dict[str, Any] = {
        "image_id": ids,
        "path": [f"/data/{dataset}/{image}.png" for image in ids],
        "relpath": [f"{image}.png" for image in ids],
        "sha256": ["0" * 64] * n_images,
        "bytes": [1_500_000] * n_images,
        "width": [1024] * n_images,
        "height": [1024] * n_images,
        "mode": ["RGB"] * n_images,
        "format": ["PNG"] * n_images,
        "exif_orientation": [1] * n_images,
        "subject": [None] * n_images,
        "condition": [None] * n_images,
        "split": ["test"] * n_images,
        "categories": [[] for _ in ids],
        "status": ["ok"] * n_images,
        "reason": [None] * n_images,
    }
    return pd.DataFrame(values, columns=MANIFEST_COLUMNS)


def make_workdir(folder: Path, n_images: int, n_datasets: int, n_tasks: int, seeds: int) -> Path:
    """A working folder whose catalog checkpoints are complete for ``n_images`` images."""
    names = [f"synthetic{index}" for index in range(n_datasets)]
    config = bench_config(names, n_tasks, seeds)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    counts = [n_images // n_datasets + (i < n_images % n_datasets) for i in range(n_datasets)]
    for name, count in zip(names, counts, strict=True):
        record = folder / "resources" / "data" / name / "source" / "record.json"
        write_json(record, {"root": str(folder / "data" / name), "kind": "url"})
        manifest = folder / "results" / name / "manifest.parquet"
        write_parquet(manifest, synthetic_manifest(count, name))
        # The checkpoint is complete only when its output is newer than its input.
        stamp = record.stat().st_mtime
        os.utime(record, (stamp - 60, stamp - 60))
    return folder


def snakemake(workdir: Path, *args: str, profile: Path | None = None) -> dict[str, Any]:
    """Run the workflow in ``workdir``: its output, seconds, CPU seconds and peak memory."""
    command = [
        sys.executable,
        *(["-m", "cProfile", "-o", str(profile)] if profile else []),
        "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(workdir / "config.yaml"),
        *args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryFile("w+") as output:
        began = time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
        # wait4, not wait: the rusage of this process alone (and what it waited for).
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - began
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read()
    if process.returncode != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed in {workdir}:\n{text[-6000:]}")
    return {
        "text": text,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        # Linux reports ru_maxrss in KiB.
        "peak_rss_bytes": usage.ru_maxrss * 1024,
    }


def dry_run(workdir: Path, complete: bool, profile: Path | None = None) -> dict[str, Any]:
    """One ``snakemake --dry-run`` in ``workdir``: seconds, CPU seconds, peak memory, jobs.

    ``complete``: every output exists, so the dry run must find nothing to do.
    """
    run = snakemake(workdir, "--dry-run", "--cores", "8", "--resources", "gpu=2", profile=profile)
    text = run.pop("text")
    if complete:
        if "Nothing to be done" not in text:
            raise RuntimeError(f"a complete run left jobs to do in {workdir}:\n{text[-3000:]}")
        return {**run, "jobs": {"total": 0}}
    return {**run, "jobs": planned_jobs(text)}


def planned_jobs(text: str) -> dict[str, int]:
    """The job counts per rule of a dry run's summary table ("total" included)."""
    counts: dict[str, int] = {}
    for match in re.finditer(r"^(\w+)\s+(\d+)\s*$", text, flags=re.MULTILINE):
        counts[match.group(1)] = int(match.group(2))
    if "total" not in counts:
        raise RuntimeError(f"no job table in the dry run's output:\n{text[-3000:]}")
    return counts


# Rules whose output is a folder (``directory()``), and the merges of shard tables.
FOLDER_RULES = frozenset({"align", "downscale", "upscale", "report"})
MERGE_PARTS = {
    "merge_faces": lambda out: sorted(out.parent.glob("faces/shard-*.parquet")),
    "merge_metrics": lambda out: sorted(out.parent.glob("shards/**/*.parquet")),
}


def complete_run(workdir: Path) -> float:
    """Make the folder look like a finished run: every output of the DAG as a placeholder
    (folders; one-row tables where a merge or its check reads them; empty files), then
    ``snakemake --touch --forceall`` records every job's metadata, so that the next dry
    run checks what it checks after a real run (times, params, code, the merges' lost-shard
    check). Returns the seconds it took."""
    began = time.perf_counter()
    listing = snakemake(workdir, "--detailed-summary", "--cores", "1")["text"]
    rows = [line.split("\t") for line in listing.splitlines() if line.count("\t") >= 7]
    merges = []
    for path, _, rule, *_ in rows[1:]:
        out = workdir / path
        if out.exists():
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        if rule in MERGE_PARTS:
            merges.append((rule, out))
        elif rule in FOLDER_RULES:
            out.mkdir()
        elif out.suffix == ".parquet":
            write_parquet(out, pd.DataFrame({"image_id": ["placeholder"]}))
        else:
            out.write_bytes(b"")
    # The parts as the rules name them: relative to the working folder.
    with contextlib.chdir(workdir):
        for rule, out in merges:
            parts = MERGE_PARTS[rule](out.relative_to(workdir))
            merge_tables([str(part) for part in parts], out)
    snakemake(workdir, "--touch", "--forceall", "--cores", "1")
    return time.perf_counter() - began


def summary(size: int, state: str, trials: list[dict[str, Any]]) -> dict[str, Any]:
    best = min(trials, key=lambda trial: trial["seconds"])
    return {
        "images": size,
        "state": state,
        "jobs": best["jobs"]["total"],
        "seconds": [trial["seconds"] for trial in trials],
        "cpu_seconds": [trial["cpu_seconds"] for trial in trials],
        "peak_rss_bytes": max(trial["peak_rss_bytes"] for trial in trials),
        "jobs_per_rule": best["jobs"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 30_000])
    parser.add_argument("--datasets", type=int, default=1, help="data sets the images split into")
    parser.add_argument("--tasks", type=int, default=3, choices=range(1, len(TASKS) + 1))
    parser.add_argument("--seeds", type=int, default=4, help="PULSE seeds per image")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--states", nargs="+", default=list(STATES), choices=list(STATES))
    parser.add_argument(
        "--profile", type=Path, help="cProfile one more dry run per state of the largest size"
    )
    parser.add_argument("--keep", type=Path, help="keep the working folders under this folder")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "dag_scale.json"
    )
    args = parser.parse_args(argv)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)

    load_before = os.getloadavg()
    runs, setup = [], {}
    for size in args.sizes:
        folder = Path(tempfile.mkdtemp(prefix=f"dag{size}-", dir=args.keep))
        try:
            make_workdir(folder, size, args.datasets, args.tasks, args.seeds)
            for state in args.states:
                if state == "complete":
                    setup[size] = round(complete_run(folder), 1)
                trials = []
                for _ in range(args.repeats):
                    trials.append(dry_run(folder, state == "complete"))
                    print(f"{size:7d} images, {state:8s}: {trials[-1]}", flush=True)
                runs.append(summary(size, state, trials))
                if args.profile and size == max(args.sizes):
                    # One more run, not counted: the profiler slows it down about twice.
                    dry_run(folder, state == "complete", args.profile / f"{state}-{size}.prof")
        finally:
            if args.keep is None:
                shutil.rmtree(folder, ignore_errors=True)
    config = bench_config([], args.tasks, args.seeds)
    largest = max(args.sizes)
    report = {
        "what": "snakemake --dry-run of the full DAG",
        "states": {state: STATES[state] for state in args.states},
        "config": {
            "datasets": args.datasets,
            "methods": list(config["methods"]),
            "tasks": TASKS[: args.tasks],
            "kernels": 1,
            "pulse_seeds": args.seeds,
            "shard_size": config["shard_size"],
        },
        "profiled": bool(args.profile),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "snakemake": subprocess.run(
            [sys.executable, "-m", "snakemake", "--version"], capture_output=True, text=True
        ).stdout.strip(),
        "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
        "complete_setup_seconds": setup,
        "runs": runs,
        # Met by wall seconds, and by CPU seconds (what an idle machine's wall time would
        # be for this single-threaded process, when others crowd the cores).
        "targets": {
            "images": largest,
            "seconds": TARGET_SECONDS,
            "peak_rss_bytes": TARGET_BYTES,
            "met": {
                run["state"]: {
                    "wall": min(run["seconds"]) <= TARGET_SECONDS
                    and run["peak_rss_bytes"] <= TARGET_BYTES,
                    "cpu": min(run["cpu_seconds"]) <= TARGET_SECONDS
                    and run["peak_rss_bytes"] <= TARGET_BYTES,
                }
                for run in runs
                if run["images"] == largest
            },
        },
    }
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
