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
        "train-celebahq-srgan",
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
    pairs = {(m["dataset"], m.get("split", "train")) for m in config["models"].values()}
    pairs |= {
        (m.get("val_dataset") or m["dataset"], m.get("val_split", "val"))
        for m in config["models"].values()
    }
    assert int(counts["training_crops"]) == len(pairs)  # each split's pairs cached once
    inputs = [line for line in result.stdout.splitlines() if line.strip().startswith("input:")]
    for model in config["models"].values():
        if model.get("init_from"):  # the DAG trains the starting model first
            wanted = f"resources/models/{model['init_from']}/checkpoint.pth"
            assert any(wanted in line for line in inputs), wanted
    trained = [m for m in config["methods"].values() if m.get("trained")]
    assert {m["trained"] for m in trained} == set(config["models"])
