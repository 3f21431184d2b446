"""The training recipes shipped in workflow/configs/ make a valid DAG (dry runs)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

RECIPES = sorted((REPO / "workflow" / "configs").glob("train-*.yaml"))


def test_every_recipe_is_tested():
    assert {path.stem for path in RECIPES} >= {
        "train-celebahq-srresnet",
        "train-celebahq-srresnet16",
        "train-yale",
    }


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.stem)
def test_a_recipe_dry_runs_its_training_and_its_method(recipe: Path, tmp_path: Path):
    command = [
        sys.executable, "-m", "snakemake", "--dry-run", "--cores", "2",
        "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
        "--configfile", str(REPO / "config.yaml"), str(recipe),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout.split("Job stats:")[-1], re.M))
    config = yaml.safe_load(recipe.read_text())
    assert int(counts["train"]) == len(config["models"])
    assert int(counts["training_crops"]) == 2 * len(config["models"])  # train and val pairs
    trained = [m for m in config["methods"].values() if m.get("trained")]
    assert {m["trained"] for m in trained} == set(config["models"])
