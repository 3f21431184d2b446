"""The new-user path: the default ``config.yaml``'s data stage, as a user runs it.

Every emoji set is fetched from the real npm registry by its default ``npm``
source (CI reaches the registry); only the Yale URLs, whose host is not
reachable here, point at a local server over ``../shared/mirror``. Each data set
is catalogued with a small ``limit`` so the run stays short. The catalogued
project then dry-runs the whole benchmark, which must plan every default
method. The test skips, with the reason, only when the registry cannot be
reached or ``../shared/mirror`` is absent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, SHARED, run_snakemake
from http_faults import FaultServer

pytestmark = pytest.mark.slow

MIRROR = SHARED / "mirror"
LIMIT = 6
DEFAULT_METHODS = {"bicubic", "srresnet", "srgan", "esrgan", "realesrgan", "pulse"}


def registry_reachable() -> str | None:
    """``None`` when ``npm view`` answers for a default package, else why not."""
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed"
    try:
        result = subprocess.run(
            [npm, "view", "emoji-datasource@16.0.0", "version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "the npm registry did not answer within 60 s"
    if result.returncode != 0 or result.stdout.strip() != "16.0.0":
        return f"the npm registry cannot be reached: {result.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="module")
def default_catalog(tmp_path_factory: pytest.TempPathFactory):
    if not (MIRROR / "yalefaces.zip").is_file():
        pytest.skip(f"the Yale mirror is not in {MIRROR}")
    unreachable = registry_reachable()
    if unreachable:
        pytest.skip(unreachable)
    workdir = tmp_path_factory.mktemp("default")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    with FaultServer() as server:
        server.route("/yalefaces.zip", file=MIRROR / "yalefaces.zip")
        server.route("/CroppedYale.zip", file=MIRROR / "CroppedYale.zip")
        for dataset in config["datasets"].values():
            dataset["limit"] = LIMIT
            if dataset["kind"] in ("yale", "croppedyale"):
                upstream = dataset["source"]["url"]
                dataset["source"]["url"] = server.url("/" + upstream.rsplit("/", 1)[1])
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        run_snakemake(workdir, "--cores", "2", "--until", "catalog")
    return workdir, config


def test_default_data_sets_are_catalogued_from_their_default_sources(default_catalog):
    workdir, config = default_catalog
    enabled = [name for name, dataset in config["datasets"].items() if dataset.get("enabled", True)]
    emoji = [name for name in enabled if config["datasets"][name]["kind"] == "emoji"]
    assert len(emoji) == 8
    for name in enabled:
        manifest = pd.read_parquet(workdir / "results" / name / "manifest.parquet")
        assert len(manifest) == LIMIT, name
        # Yale's fifth file is a duplicate upstream; every other row decodes.
        assert (manifest["status"] == "ok").sum() >= LIMIT - 1, name
        if name in emoji:
            # Every drawing comes from the package npm fetched for this data set.
            record = workdir / "resources" / "data" / name / "source" / "record.json"
            assert '"kind": "npm"' in record.read_text(), name


def test_default_benchmark_plans_every_default_method(default_catalog):
    workdir, config = default_catalog
    assert set(config["methods"]) >= DEFAULT_METHODS
    assert len(config["methods"]["pulse"]["seeds"]) >= 2
    dry = run_snakemake(workdir, "--cores", "2", "-n")
    planned = set(re.findall(r"method=(\w+)", dry.stdout))
    assert planned >= DEFAULT_METHODS, planned
    upscale = re.findall(r"^rule upscale:$", dry.stdout, flags=re.MULTILINE)
    datasets = [n for n, d in config["datasets"].items() if d.get("enabled", True)]
    assert len(upscale) >= len(DEFAULT_METHODS) * len(datasets)
    assert not (Path(workdir) / "results" / "metrics").exists()  # a dry run computes nothing
