"""Code digests: changing a module reruns exactly the jobs whose code imports it.

Each rule's ``code`` param is the digest of the modules its script imports,
with everything they import (``pipeline.workflow``). The finished tiny run is
dry-run with a copy of the repository in which one module was edited: the jobs
whose params changed are exactly those whose script reaches that module; the
rest of what reruns is downstream of them (their inputs are remade).
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, run_snakemake

pytestmark = pytest.mark.slow

# What a copy of the checkout leaves out: history, environments, outputs, caches.
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", ".ci-venv", ".snakemake", "results", "resources", "logs", "reports",
    "__pycache__", ".pytest_cache", ".ruff_cache",
)  # fmt: skip
JOB = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
REASON = re.compile(r"^\s+reason: (.*)$")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this repository elsewhere on disk (as another clone would be)."""
    copy = tmp_path_factory.mktemp("checkout") / "facebench"
    shutil.copytree(REPO, copy, ignore=NOT_COPIED)
    return copy


@contextlib.contextmanager
def edited(path: Path) -> Iterator[None]:
    """``path`` with a comment appended: new bytes, the same behaviour."""
    original = path.read_bytes()
    path.write_bytes(original + b"\n# edited by tests/test_rerun_digests.py\n")
    try:
        yield
    finally:
        path.write_bytes(original)


def planned(workdir: Path, checkout: Path, *args: str) -> tuple[Counter[str], Counter[str]]:
    """Jobs a dry run plans per rule, and those among them whose params changed.

    A job that reruns because its inputs are remade shows that reason only; a
    dry run with ``--allowed-rules <rule>`` (its upstream left as it is) shows
    whether the rule's own params changed.
    """
    result = run_snakemake(workdir, "--dry-run", "--cores", "2", *args, repo=checkout)
    jobs: Counter[str] = Counter()
    params: Counter[str] = Counter()
    rule = None
    for line in result.stdout.splitlines():
        if match := JOB.match(line):
            rule = match[1]
            jobs[rule] += 1
        elif (match := REASON.match(line)) and rule and "Params have changed" in match[1]:
            params[rule] += 1
    return jobs, params


def outputs(workdir: Path, pattern: str) -> int:
    return len(list(workdir.glob(pattern)))


def test_another_checkout_of_the_same_code_reruns_nothing(finished_run, checkout):
    """Digests hold module names and bytes, not the checkout's path."""
    workdir, _ = finished_run
    jobs, _ = planned(workdir, checkout)
    assert not jobs, jobs


def test_a_change_to_the_kernels_reruns_the_inputs_and_the_metrics(finished_run, checkout):
    """LR consistency downscales each output with the input's kernel: the metric jobs
    import the kernels themselves, not only through the LR inputs they read."""
    workdir, _ = finished_run
    shards = outputs(workdir, "results/metrics/shards/**/shard-*.parquet")
    with edited(checkout / "pipeline" / "resize.py"):
        jobs, params = planned(workdir, checkout)
        _, measure = planned(workdir, checkout, "--allowed-rules", "measure")
        _, upscale = planned(workdir, checkout, "--allowed-rules", "upscale")
    # Training reads the kernels' registry too (the networks' runtime imports it), and so
    # does the plan, which reads the trained method's architecture module, and so do the
    # ground truth's features: ArcFace reads its checkpoint with that runtime's loader (an
    # over-approximation of the import closure, one cheap job per shard).
    lr_inputs = outputs(workdir, "results/*/lr*/*/from*/shard-*")
    references = outputs(workdir, "results/*/reference/*/shard-*.parquet")
    assert references > 0
    assert params == {
        "downscale": lr_inputs, "train": 1, "plan": 1, "reference_features": references,
    }  # fmt: skip
    # The rest is downstream: new inputs are upscaled again, the tables and the report remade.
    assert set(jobs) == {
        "downscale",
        "plan",
        "reference_features",
        "training_crops",
        "train",
        "upscale",
        "measure",
        "merge_metrics",
        "summarize",
        "report",
        "all",
    }
    # On their own, the metric jobs rerun too (LR consistency); the interpolations do not,
    # the trained network does (its runtime resamples with the kernels).
    assert measure == {"measure": shards}
    assert upscale == {"upscale": outputs(workdir, "results/*/sr/tiny_trained/*/*/shard-*")}


def test_a_change_to_the_summary_reruns_the_summary_and_the_report(finished_run, checkout):
    workdir, _ = finished_run
    with edited(checkout / "pipeline" / "measure" / "aggregate.py"):
        jobs, params = planned(workdir, checkout)
    assert params == {"summarize": 1}
    assert jobs == {"summarize": 1, "report": 1, "all": 1}


def test_a_change_to_the_charts_reruns_the_report_only(finished_run, checkout):
    workdir, _ = finished_run
    with edited(checkout / "pipeline" / "report" / "charts" / "draw.py"):
        jobs, params = planned(workdir, checkout)
    assert params == {"report": 1}
    assert jobs == {"report": 1, "all": 1}
