"""Smoke test of ``benchmarks/pulse_vs_original.py`` on the CPU (3 steps, a 32 px network).

The side-by-side half needs a checkout of PULSE's original code (``adamian98/pulse``),
which this repository does not ship: set ``FACEBENCH_PULSE_CHECKOUT`` to one to run
it; without it that test skips and the project's side runs alone.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pulse_vs_original.py"
SMOKE = [
    "--device", "cpu", "--steps", "3", "--random-weights", "--resolution", "32",
    "--fmap-max", "32", "--lr-size", "8", "--faces", "1", "--seeds", "2",
    "--speed-runs", "1", "--fit-samples", "2000", "--no-lpips",
]  # fmt: skip


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("pulse_vs_original", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_project_side_runs_and_writes_json(benchmark, tmp_path, monkeypatch):
    monkeypatch.delenv("FACEBENCH_PULSE_CHECKOUT", raising=False)
    out = tmp_path / "result.json"
    result = benchmark.main([*SMOKE, "--out", str(out)])
    assert json.loads(out.read_text())["faces_done"] == 1
    assert result["original"] == "no checkout given" and result["step_equality"]["pass"] is None
    ours = result["distributions"]["per_run"]["ours"]
    assert len(ours["last_l2"]) == len(ours["min_l2"]) == 2
    assert all(low <= last for low, last in zip(ours["min_l2"], ours["last_l2"], strict=True))
    assert result["speed"]["ours_batch_1_per_s"] > 0 and result["speed"]["ours_batched_per_s"] > 0


@pytest.mark.skipif(
    not os.environ.get("FACEBENCH_PULSE_CHECKOUT"),
    reason="no checkout of PULSE's original code (set FACEBENCH_PULSE_CHECKOUT)",
)
def test_side_by_side_with_the_original(benchmark, tmp_path):
    checkout = os.environ["FACEBENCH_PULSE_CHECKOUT"]
    result = benchmark.main([*SMOKE, "--original", checkout, "--out", str(tmp_path / "r.json")])
    # On the CPU at 32 px the original's device and size constants are replaced on load.
    assert len(result["original_replacements"]) == 5
    assert result["step_equality"]["pass"] is True
    summary = result["distributions"]["summary"]
    assert summary["ours_vs_original"]["eps_decision_agreement"] == 1.0
    assert summary["ours_vs_original"]["last_l2"]["max_abs_difference"] < 1e-4
    assert result["speed"]["original_batch_1_per_s"] > 0
