"""benchmarks/dag_scale.py at its smallest: the synthetic catalogues plan the whole DAG, and
after the complete run's placeholders the dry run finds nothing to do."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import dag_scale  # noqa: E402


@pytest.mark.slow
def test_dag_scale_plans_every_job_then_nothing(tmp_path):
    out = tmp_path / "dag.json"
    # 600 images: two shards of the default 500.
    argv = ["--sizes", "600", "--tasks", "1", "--seeds", "2", "--repeats", "1"]
    dag_scale.main([*argv, "--out", str(out)])
    report = json.loads(out.read_text())
    fresh, complete = report["runs"]
    assert (fresh["state"], complete["state"]) == ("fresh", "complete")
    methods = len(report["config"]["methods"])
    jobs = fresh["jobs_per_rule"]
    assert methods == 6 and jobs["upscale"] == jobs["measure"] == 2 * methods
    assert jobs["detect_faces"] == 2 and "catalog" not in jobs and "download" not in jobs
    assert complete["jobs"] == 0
    for run in report["runs"]:
        assert min(run["seconds"]) > 0 and run["peak_rss_bytes"] > 10_000_000
    assert set(report["targets"]["met"]) == {"fresh", "complete"}
