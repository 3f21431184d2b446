"""What a run will upscale, and what it will cost, stated before the first upscale job.

The plan counts the (image, seed) items of every enabled method: the usable
images of each enabled data set x its tasks x the kernels x the method's seeds.
Its time estimates come from measured costs, one table per device kind, in
``pipeline/upscale/costs.json`` (written by ``benchmarks/upscale_costs.py`` on
the machine it names; a device kind nobody has measured yet is shown as such,
never guessed). A CNN's cost per item scales with the input's pixels from the
size it was measured at, except for networks of a fixed input size (the
512 px face restoration models: ``input_size`` in their entry), which cost
the same for every input; PULSE's with its number of steps.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.config import dataset_tasks
from pipeline.upscale import get_arch, skips_without_cuda
from pipeline.vocabulary import OK

log = logging.getLogger(__name__)

COSTS = Path(__file__).parent / "costs.json"
DEVICE_KINDS = ("cpu", "cuda")


def load_costs(path: Path = COSTS) -> dict[str, Any]:
    """The measured costs (``{}`` when the file is absent)."""
    return json.loads(Path(path).read_text()) if Path(path).is_file() else {}


def plan_items(config: Mapping[str, Any], usable: Mapping[str, int]) -> pd.DataFrame:
    """One row per data set x task x kernel x enabled method: images, seeds, items.

    ``usable`` maps each enabled data set to its number of usable images (the
    catalog's ``ok`` rows). ``skipped`` says why a GPU-only method's jobs will
    skip on this host (empty when they run).
    """
    rows = []
    for dataset, images in usable.items():
        for task in dataset_tasks(config, dataset):
            for kernel in config["kernels"]:
                for name, method in config["methods"].items():
                    if not method["enabled"]:
                        continue
                    seeds = len(method["seeds"])
                    rows.append(
                        {
                            "dataset": dataset,
                            "task": f"{task['lr']}to{task['hr']}",
                            "lr": task["lr"],
                            "hr": task["hr"],
                            "kernel": kernel,
                            "method": name,
                            "arch": method["arch"],
                            "images": int(images),
                            "seeds": seeds,
                            "items": int(images) * seeds,
                        }
                    )
    return pd.DataFrame(rows)


def seconds_per_item(
    costs: Mapping[str, Any], device: str, method: Mapping[str, Any], lr: int, hr: int
) -> float:
    """Estimated seconds to upscale one (image, seed) item; NaN when not measured."""
    entry = costs.get("devices", {}).get(device, {}).get("archs", {}).get(method["arch"])
    if not entry:
        return math.nan
    if "seconds_per_step" in entry:
        steps = method.get("steps") or get_arch(method["arch"]).defaults.get("steps", 1)
        return float(entry["seconds_per_step"]) * int(steps)
    if "input_size" in entry:  # every input is resized to the network's fixed size first
        return float(entry["seconds_per_item"])
    return float(entry["seconds_per_item"]) * (lr / entry["lr"]) ** 2


def estimate(
    plan: pd.DataFrame, config: Mapping[str, Any], costs: Mapping[str, Any]
) -> pd.DataFrame:
    """``plan`` with ``hours_<device>`` columns (NaN where that device kind is unmeasured)."""
    out = plan.copy()
    for device in DEVICE_KINDS:
        out[f"hours_{device}"] = [
            row.items
            * seconds_per_item(costs, device, config["methods"][row.method], row.lr, row.hr)
            / 3600
            for row in plan.itertuples()
        ]
    return out


def skip_reasons(config: Mapping[str, Any], host_cuda: bool) -> dict[str, str]:
    """Enabled GPU-only methods whose jobs will skip on this host, and why."""
    if host_cuda:
        return {}
    return {
        name: "GPU-only; no CUDA on this host (without_cuda: skip)"
        for name, method in config["methods"].items()
        if method["enabled"] and skips_without_cuda(method, config["without_cuda"])
    }


def _hours(value: float) -> str:
    if not math.isfinite(value):
        return "not measured"
    if value < 1 / 60:
        return f"{value * 3600:.0f} s"
    if value < 1:
        return f"{value * 60:.0f} min"
    return f"{value:.1f} h" if value < 48 else f"{value / 24:.1f} days"


def plan_markdown(plan: pd.DataFrame, skipped: Mapping[str, str], costs: Mapping[str, Any]) -> str:
    """The plan as a short Markdown report: totals, per method, and where the costs come from."""
    per_method = plan.groupby("method", sort=False).agg(
        arch=("arch", "first"),
        seeds=("seeds", "first"),
        items=("items", "sum"),
        # An unmeasured device kind stays unknown (NaN), not 0.
        **{f"hours_{d}": (f"hours_{d}", lambda s: s.sum(min_count=1)) for d in DEVICE_KINDS},
    )
    images = plan.drop_duplicates(["dataset"])["images"].sum()
    lines = [
        "# What this run will upscale",
        "",
        f"{images} usable images in {plan['dataset'].nunique()} data sets, "
        f"{plan[['dataset', 'task']].drop_duplicates().shape[0]} data set x task pairs, "
        f"{plan['kernel'].nunique()} kernel(s), {len(per_method)} methods: "
        f"{int(per_method['items'].sum())} upscaled items (image x task x kernel x seed).",
        "",
        "| method | arch | seeds | items | CPU (estimate) | CUDA (estimate) | this run |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, row in per_method.iterrows():
        lines.append(
            f"| {name} | {row['arch']} | {row['seeds']} | {int(row['items'])} | "
            f"{_hours(row['hours_cpu'])} | {_hours(row['hours_cuda'])} | "
            f"{skipped.get(name, 'runs')} |"
        )
    lines += ["", "Costs measured by `benchmarks/upscale_costs.py`:"]
    for device in DEVICE_KINDS:
        measured = costs.get("devices", {}).get(device)
        where = (
            f"{measured['device_name']}, {measured['when']}, torch {measured['torch']}, "
            f"{measured['threads']} threads"
            if measured
            else "not measured yet (run the benchmark on such a machine)"
        )
        lines.append(f"- {device}: {where}")
    return "\n".join(lines) + "\n"


def usable_images(manifests: Mapping[str, str | Path]) -> dict[str, int]:
    """Usable (catalog ``ok``) images per data set, from the manifests."""
    return {
        name: int((pd.read_parquet(path, columns=["status"])["status"] == OK).sum())
        for name, path in manifests.items()
    }


def plan(
    config: Mapping[str, Any],
    datasets: Sequence[str],
    manifests: Sequence[str | Path],
    host_cuda: bool,
    out_json: Path,
    out_markdown: Path,
) -> str:
    """The plan stage: :func:`write_plan` for the enabled data sets (``datasets`` and their
    ``manifests`` in the same order), logged and shown in the terminal too, so the user
    sees the cost before the first upscale job."""
    markdown = write_plan(
        config, dict(zip(datasets, manifests, strict=True)), host_cuda, out_json, out_markdown
    )
    log.info("plan:\n%s", markdown)
    # The job's stderr goes to its log: the terminal is the process's original stderr.
    print(markdown, file=sys.__stderr__)
    return markdown


def write_plan(
    config: Mapping[str, Any],
    manifests: Mapping[str, str | Path],
    host_cuda: bool,
    out_json: Path,
    out_markdown: Path,
    costs: Mapping[str, Any] | None = None,
) -> str:
    """Write ``plan.json`` (one row per data set x task x kernel x method, with
    estimates) and ``plan.md``; return the Markdown."""
    from pipeline.io import write_json, write_text

    costs = load_costs() if costs is None else costs
    plan = estimate(plan_items(config, usable_images(manifests)), config, costs)
    skipped = skip_reasons(config, host_cuda)
    markdown = plan_markdown(plan, skipped, costs)
    rows = plan.astype(object).where(plan.notna(), None).to_dict("records")
    write_json(out_json, {"host_cuda": host_cuda, "skipped": skipped, "rows": rows})
    write_text(out_markdown, markdown)
    return markdown
