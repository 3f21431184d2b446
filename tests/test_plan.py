"""The run plan: items per method, time estimates from measured costs, GPU-only skips."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from pipeline.upscale import REGISTRY
from pipeline.upscale.plan import (
    COSTS,
    estimate,
    load_costs,
    plan_items,
    plan_markdown,
    skip_reasons,
    write_plan,
)
from pipeline.workflow import load_config

CONFIG = {
    "run_name": "t",
    "datasets": {
        "faces": {"source": {"path": "x"}},
        "emoji": {"source": {"path": "y"}, "tasks": [{"lr": 16, "hr": 64}]},
    },
    "tasks": [{"lr": 16, "hr": 128}, {"lr": 32, "hr": 128}],
    "kernels": ["pil-bicubic", "pil-area"],
    "methods": {
        "bicubic": {"arch": "interpolate", "filter": "bicubic"},
        "pulse": {"arch": "pulse", "synthesis": "s", "mapping": "m", "seeds": [1, 2], "steps": 50},
    },
    "weights": {"s": {"path": "s.pt"}, "m": {"path": "m.pt"}},
    "measure": {"lpips": {"enabled": False}},
}
COSTS_CPU = {
    "devices": {
        "cpu": {
            "device_name": "test CPU",
            "when": "2026-12-02",
            "torch": "2.x",
            "threads": 2,
            "archs": {
                "interpolate": {"seconds_per_item": 0.001, "lr": 32, "hr": 128},
                "pulse": {"seconds_per_step": 2.0},
            },
        }
    }
}


@pytest.fixture
def config():
    return load_config(CONFIG)


def test_items_are_images_times_tasks_kernels_and_seeds(config):
    plan = plan_items(config, {"faces": 10, "emoji": 4})
    # faces: 2 tasks, emoji: its own 1 task; 2 kernels; 2 methods.
    assert len(plan) == (2 + 1) * 2 * 2
    pulse = plan[plan["method"] == "pulse"]
    assert set(pulse["items"]) == {20, 8} and (pulse["seeds"] == 2).all()
    assert plan.groupby("method")["items"].sum().to_dict() == {
        "bicubic": (10 * 2 + 4) * 2,
        "pulse": (10 * 2 + 4) * 2 * 2,
    }


def test_estimates_scale_with_input_pixels_and_steps(config):
    plan = estimate(plan_items(config, {"faces": 10, "emoji": 4}), config, COSTS_CPU)
    bicubic = plan[(plan["method"] == "bicubic") & (plan["dataset"] == "faces")]
    by_task = bicubic.groupby("task")["hours_cpu"].first() * 3600
    assert by_task["32to128"] == pytest.approx(10 * 0.001)
    assert by_task["16to128"] == pytest.approx(10 * 0.001 / 4)
    pulse = plan[(plan["method"] == "pulse") & (plan["task"] == "32to128")]
    assert (pulse["hours_cpu"] * 3600).tolist() == pytest.approx([20 * 2.0 * 50] * 2)
    assert plan["hours_cuda"].isna().all()  # never measured: not guessed


def test_gpu_only_methods_skip_without_cuda_unless_asked(config):
    assert skip_reasons(config, host_cuda=False) == {
        "pulse": "GPU-only; no CUDA on this host (without_cuda: skip)"
    }
    assert skip_reasons(config, host_cuda=True) == {}
    assert skip_reasons({**config, "without_cuda": "run"}, host_cuda=False) == {}


def test_markdown_states_totals_skips_and_sources(config):
    plan = estimate(plan_items(config, {"faces": 10, "emoji": 4}), config, COSTS_CPU)
    text = plan_markdown(plan, skip_reasons(config, False), COSTS_CPU)
    assert "14 usable images in 2 data sets" in text
    assert "144 upscaled items" in text
    assert "| pulse | pulse | 2 | 96 | 2.7 h | not measured | GPU-only" in text
    assert "- cuda: not measured yet" in text and "test CPU" in text


def test_write_plan_reads_manifests(tmp_path, config):
    manifests = {}
    for name, statuses in {"faces": ["ok"] * 3 + ["error"], "emoji": ["ok", "missing"]}.items():
        manifests[name] = tmp_path / name / "manifest.parquet"
        manifests[name].parent.mkdir()
        pd.DataFrame({"status": statuses}).to_parquet(manifests[name])
    text = write_plan(config, manifests, False, tmp_path / "p.json", tmp_path / "p.md", COSTS_CPU)
    assert (tmp_path / "p.md").read_text() == text
    written = json.loads((tmp_path / "p.json").read_text())
    assert written["skipped"] == {"pulse": "GPU-only; no CUDA on this host (without_cuda: skip)"}
    assert {row["images"] for row in written["rows"]} == {3, 1}
    assert all(row["hours_cuda"] is None for row in written["rows"])


def test_the_shipped_costs_cover_every_architecture():
    costs = load_costs(COSTS)
    for device, measured in costs["devices"].items():
        assert set(measured["archs"]) == set(REGISTRY), device
        for arch, entry in measured["archs"].items():
            value = entry.get("seconds_per_item", entry.get("seconds_per_step"))
            assert math.isfinite(value) and value > 0, (device, arch)
