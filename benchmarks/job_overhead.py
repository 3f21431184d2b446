"""The fixed cost of a per-shard job, and the metric jobs' images per second.

A job of the per-image stages costs a fixed part (the interpreter, Snakemake's
script preamble, library imports, model loads, table reads) and a part per
image. Both are measured on real jobs of the workflow: a project with two data
sets of the shared FFHQ photos, ``one`` (1 image) and ``many`` (``--images``,
one shard), one task (32 -> 128), bicubic and (with the shared checkpoint)
Real-ESRGAN, LPIPS and identity on. After one full run, the upscale, reference
and measure jobs are forced to run again ``--repeats`` times one at a time
(``--cores 1``); each job's wall-clock seconds are read from its Snakemake
benchmark file, its CPU seconds (the whole process: interpreter, Snakemake's
preamble, imports, work) from the last line of its log. Per kind of job:

- per image = (cost of ``many`` - cost of ``one``) / (images - 1);
- fixed cost = cost of ``one`` - per image.

Images per second per core = 1 / CPU seconds per image; for ``measure`` this
is the scoring of one (image, seed) with every metric on, the ground truth's
descriptors coming from the ``reference_features`` job (counted apart, once
per ground-truth image for all methods, tasks and seeds).

Where the fixed cost goes: the CPU seconds of importing each library in a
fresh interpreter (as a job does), and a cProfile (CPU time) of a measure job's stage
function on the ``many`` shard (its largest cumulative entries).

The CPU is shared (the load average is recorded): wall-clock seconds grow with
it, CPU seconds much less.

    python benchmarks/job_overhead.py               # writes benchmarks/results/job_overhead.json
    python benchmarks/job_overhead.py --images 16 --repeats 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import cpu_name  # noqa: E402

from pipeline.io import write_json  # noqa: E402
from pipeline.smk import CPU_MARK  # noqa: E402

SHARED = REPO.parent / "shared"
TASK = {"lr": 32, "hr": 128}
KINDS = ("upscale", "reference_features", "measure")

# What a job's process imports, each timed in a fresh interpreter.
IMPORTS = {
    "python": "pass",
    "snakemake preamble": "import pickle; from snakemake.logging import logger; "
    "from snakemake.iocontainers import Snakemake",
    "pandas + pyarrow": "import pandas, pyarrow.parquet",
    "torch": "import torch",
    "lpips (torch, torchvision)": "import lpips",
    "dlib": "import dlib",
    "pipeline.measure.stage": "import pipeline.measure.stage",
    "pipeline.upscale.stage": "import pipeline.upscale.stage",
}


def project_config(images: int) -> dict[str, Any]:
    ffhq = SHARED / "data" / "ffhq"
    weights = SHARED / "weights"
    if not ffhq.is_dir() or not (weights / "alexnet_features.pth").is_file():
        raise SystemExit(f"needs the shared photos and weights ({ffhq}, {weights})")
    config: dict[str, Any] = {
        "run_name": "job_overhead",
        "shard_size": images,
        "datasets": {
            "one": {"source": {"path": str(ffhq)}, "limit": 1},
            "many": {"source": {"path": str(ffhq)}, "limit": images},
        },
        "tasks": [TASK],
        "kernels": ["pil-bicubic"],
        "weights": {
            "lpips_alex_features": {"path": str(weights / "alexnet_features.pth")},
            "lpips_alex_linear": {"path": str(weights / "lpips_v0.1_alex_lin.pth")},
        },
        "methods": {"bicubic": {"arch": "interpolate", "filter": "bicubic"}},
    }
    if (weights / "RealESRGAN_x4plus.pth").is_file():
        config["weights"]["realesrgan_shared"] = {"path": str(weights / "RealESRGAN_x4plus.pth")}
        config["methods"]["realesrgan"] = {
            "arch": "esrgan",
            "weights": "realesrgan_shared",
            "batch_size": 8,
        }
    return config


def snakemake(workdir: Path, *args: str) -> None:
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), *args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode:
        raise SystemExit(f"snakemake {' '.join(args)} failed:\n{result.stderr[-4000:]}")


def targets(config: dict[str, Any]) -> list[str]:
    task = f"{TASK['lr']}to{TASK['hr']}"
    return [
        f"results/metrics/shards/{dataset}/{method}/pil-bicubic/{task}/shard-0000.parquet"
        for dataset in config["datasets"]
        for method in config["methods"]
    ]


def job_costs(workdir: Path) -> dict[tuple[str, str, str], tuple[float, float]]:
    """(kind, data set, method or '') -> (wall s, CPU s) of each job's last run.

    Wall seconds from Snakemake's benchmark file; CPU seconds from the last line
    of the job's log (:func:`pipeline.smk.job_log`): the benchmark file's CPU
    time is sampled once a second and misses a short job's last second.
    """
    found = {}
    for kind in KINDS:
        folder = workdir / "results" / "benchmarks" / kind
        for path in folder.rglob("*.tsv"):
            parts = path.relative_to(folder).with_suffix("").parts
            method = parts[1] if kind != "reference_features" else ""
            with path.open() as stream:
                row = list(csv.DictReader(stream, delimiter="\t"))[-1]
            log = (workdir / "logs" / kind).joinpath(*parts).with_suffix(".log")
            cpu = [line for line in log.read_text().splitlines() if CPU_MARK in line][-1]
            seconds = float(cpu.split(CPU_MARK, 1)[1].split()[0])
            found[(kind, parts[0], method)] = (float(row["s"]), seconds)
    return found


def import_costs(repeats: int) -> dict[str, float]:
    """CPU seconds of each import in a fresh interpreter (median of ``repeats``)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    costs = {}
    for name, statement in IMPORTS.items():
        samples = []
        for _ in range(repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-c", statement], check=True, env=env, cwd=REPO)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            samples.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        costs[name] = round(statistics.median(samples), 3)
    return costs


PROFILE = """
import cProfile, json, pstats, sys, pickle, time
began = time.process_time()
import pandas as pd
from pipeline.measure import stage
job = pickle.loads(bytes.fromhex(sys.argv[1]))
profile = cProfile.Profile(time.process_time)
profile.enable()
stage.measure(**job)
profile.disable()
stats = pstats.Stats(profile)
rows = []
for (file, line, name), (cc, nc, tt, ct, callers) in stats.stats.items():
    rows.append((ct, f"{file.split('site-packages/')[-1].split('speed15/')[-1]}:{name}"))
rows.sort(reverse=True)
print(json.dumps({"cpu_seconds": time.process_time() - began,
                  "top": [[name, round(ct, 3)] for ct, name in rows[:40]]}))
"""


def profile_measure(workdir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """cProfile of the measure stage on the ``many`` shard (as its job calls it)."""
    import pickle

    from pipeline import workflow

    full = workflow.load_config(config)
    results = workdir / "results"
    references = results / "many" / "reference" / str(TASK["hr"]) / "shard-0000.parquet"
    job = {
        "faces_path": results / "many" / "faces" / "shard-0000.parquet",
        "hr_dir": results / "many" / "aligned" / str(TASK["hr"]) / "shard-0000",
        "lr_dir": results / "many" / f"lr{TASK['lr']}" / "pil-bicubic" / f"from{TASK['hr']}"
        / "shard-0000",
        "sr_dir": results / "many" / "sr" / "bicubic" / "pil-bicubic"
        / f"{TASK['lr']}to{TASK['hr']}" / "shard-0000",
        "out": Path(tempfile.mkdtemp()) / "profile.parquet",
        "dataset": "many", "method": "bicubic", "kernel": "pil-bicubic",
        "lr": TASK["lr"], "hr": TASK["hr"], "seeds": [0], "crop_border": 4,
        "lpips": workflow.lpips_options(full),
        "identity": workflow.identity_options(full, "many"),
        "checkpoints": workflow.measure_weights(full) | {},
        "device": "cpu",
    }  # fmt: skip
    job["checkpoints"] = {k: workdir / v for k, v in job["checkpoints"].items()}
    if references.is_file():
        job["references"] = references
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", PROFILE, pickle.dumps(job).hex()],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16, help="images of the larger shard")
    parser.add_argument("--repeats", type=int, default=2, help="forced reruns of the jobs")
    parser.add_argument("--workdir", type=Path, help="project folder (default: a temporary one)")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "job_overhead.json"
    )
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="job_overhead-"))
    workdir.mkdir(parents=True, exist_ok=True)
    config = project_config(args.images)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    wanted = targets(config)
    began = time.perf_counter()
    snakemake(workdir, "--cores", "2", *wanted)
    first_run = time.perf_counter() - began
    samples: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    forced = [kind for kind in KINDS if (workdir / "results" / "benchmarks" / kind).is_dir()]
    for _ in range(args.repeats):
        snakemake(workdir, "--cores", "1", "--forcerun", *forced, "--", *wanted)
        for key, cost in job_costs(workdir).items():
            samples[key].append(cost)
    jobs = []
    for (kind, dataset, method), costs in sorted(samples.items()):
        jobs.append(
            {
                "kind": kind, "dataset": dataset, "method": method,
                "images": 1 if dataset == "one" else args.images,
                "wall_s": [round(wall, 3) for wall, _ in costs],
                "cpu_s": [round(cpu, 3) for _, cpu in costs],
            }
        )  # fmt: skip
    per_kind = []
    for kind, method in sorted({(job["kind"], job["method"]) for job in jobs}):
        one, many = (
            next(j for j in jobs if (j["kind"], j["method"], j["dataset"]) == (kind, method, name))
            for name in ("one", "many")
        )
        figure: dict[str, Any] = {"kind": kind, "method": method or None}
        for unit in ("wall_s", "cpu_s"):
            first, last = statistics.median(one[unit]), statistics.median(many[unit])
            per_image = (last - first) / (args.images - 1)
            figure[f"fixed_{unit}"] = round(first - per_image, 3)
            figure[f"per_image_{unit}"] = round(per_image, 4)
        figure["images_per_cpu_second"] = (
            round(1 / figure["per_image_cpu_s"], 2) if figure["per_image_cpu_s"] > 0 else None
        )
        per_kind.append(figure)
        print(
            f"{kind:20s} {method:12s} fixed {figure['fixed_wall_s']:6.2f} s wall "
            f"{figure['fixed_cpu_s']:6.2f} s CPU; per image {figure['per_image_cpu_s']:.4f} s CPU"
        )
    report = {
        "project": {"images": args.images, "task": TASK, "methods": sorted(config["methods"])},
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "first_run_seconds": round(first_run, 1),
        "per_kind": per_kind,
        "jobs": jobs,
        "import_cpu_s": import_costs(3),
        "measure_profile": profile_measure(workdir, config),
        "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
