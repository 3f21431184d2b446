"""GFPGAN, CodeFormer and RestoreFormer through the real workflow, on CPU, offline.

One run of a minimal project (one image, one task, 16 -> 64 px): the three
random-weight checkpoints at the published size (``face_checkpoints``) are
served by a local HTTP server and fetched by the weights stage; a fourth
method, disabled, names a checkpoint nobody may fetch. Then dry runs of the
shipped ``config.yaml`` over the same catalog, with the extras on and off.
Cost, measured on a 2-core machine shared with other work (load 12 to 16):
the checkpoints take about 10 s of CPU to make (once per session, shared with
``tests/test_face_restoration.py``); each upscale job 15 to 17 s of CPU (about
4 s of it imports and loading), each metric job 4 to 6 s; the dry runs 16 s
of wall time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, SHARED, SHARED_FACES, SNAKEMAKE, make_tiny_project, run_snakemake
from http_faults import FaultServer
from PIL import Image

pytest.importorskip("spandrel_extra_arches")

pytestmark = pytest.mark.slow

EXTRAS = ("gfpgan", "codeformer", "restoreformer")
METHODS = {
    "bicubic": {"arch": "interpolate", "filter": "bicubic"},
    "gfpgan": {"arch": "gfpgan", "weights": "gfpgan_random"},
    "codeformer": {"arch": "codeformer", "weights": "codeformer_random", "w": 0.7},
    "restoreformer": {"arch": "restoreformer", "weights": "restoreformer_random"},
    "gfpgan_unused": {"arch": "gfpgan", "weights": "never_fetched", "enabled": False},
}


def one_face(folder):
    """A real photo of ../shared when present (a face is found), else a smooth image.

    One image: each of the three networks costs 5 to 10 s of CPU per image.
    """
    folder.mkdir(parents=True)
    source = SHARED / "data" / SHARED_FACES[0]
    if source.is_file():
        shutil.copyfile(source, folder / f"face{source.suffix}")
    else:
        small = np.random.default_rng(0).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((96, 96), Image.Resampling.BICUBIC).save(folder / "face.png")
    return folder


@pytest.fixture(scope="module")
def face_run(tmp_path_factory, face_checkpoints):
    workdir = make_tiny_project(tmp_path_factory.mktemp("faces"))
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    faces = one_face(workdir / "data" / "one_face")
    config["datasets"] = {"faces": {"source": {"path": str(faces)}}}
    config["tasks"] = [{"lr": 16, "hr": 64}]
    config["methods"] = METHODS
    config.pop("models", None)  # the tiny project's trained model reads its `folder` set
    with FaultServer() as server:
        for arch, path in face_checkpoints.items():
            server.route(f"/{path.name}", file=path)
            config.setdefault("weights", {})[f"{arch}_random"] = {
                "url": server.url(f"/{path.name}")
            }
        server.route("/never.pth", data=b"not a checkpoint")
        config["weights"]["never_fetched"] = {"url": server.url("/never.pth")}
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        run_snakemake(workdir, "--cores", "2", "--resources", "gpu=1")
        never_requested = server.requests("/never.pth")
    return workdir, never_requested


def test_extras_score_every_image_with_declared_resizes(face_run):
    workdir, _ = face_run
    per_image = pd.read_parquet(workdir / "results/metrics/per_image.parquet")
    scored = per_image[per_image["status"].isin(["ok", "no_face"])]
    images = set(scored.loc[scored["method"] == "bicubic", "image_id"])
    assert len(images) == 1
    for method in EXTRAS:
        rows = scored[scored["method"] == method]
        assert set(rows["image_id"]) == images, method
        assert (rows["input_size"] == 512).all() and (rows["native_size"] == 512).all()
        assert (rows["input_resized_with"] == "pil-bicubic").all()
        assert (rows["resampled_with"] == "pil-bicubic").all()
        assert rows[["psnr_y", "ssim_y", "lr_psnr"]].notna().all().all()
        for path in rows["sr_path"]:
            with Image.open(workdir / path) as image:
                assert image.size == (64, 64)
    assert "gfpgan_unused" not in set(per_image["method"])


def test_extras_appear_in_the_summary_charts_and_galleries(face_run):
    workdir, _ = face_run
    summary = pd.read_csv(workdir / "results/metrics/summary.csv")
    assert set(EXTRAS) <= set(summary.loc[summary["category"] == "all", "method"])
    report = workdir / "reports" / "tiny"
    charts = "".join(path.read_text() for path in (report / "charts").glob("*.svg"))
    gallery = (report / "galleries" / "faces" / "all" / "page-1.html").read_text()
    for method in EXTRAS:
        assert method in charts, method
        assert f"-{method}-16to64-pil-bicubic-s0-" in gallery, method  # its thumbnail


def test_checkpoints_of_enabled_methods_only_are_fetched(face_run):
    workdir, never_requested = face_run
    lock = json.loads((workdir / "resources/sources.lock.json").read_text())["files"]
    fetched = {entry.get("weights") for entry in lock.values()}
    assert {f"{arch}_random" for arch in EXTRAS} <= fetched
    assert "never_fetched" not in fetched and never_requested == []
    assert not (workdir / "resources/weights/never_fetched.pth").exists()


def dry_run(workdir, extras_on: bool) -> str:
    """``snakemake -n`` of the shipped config.yaml over the catalogued test data set."""
    shipped = yaml.safe_load((REPO / "config.yaml").read_text())
    for dataset in shipped["datasets"].values():
        dataset["enabled"] = False
    for method in EXTRAS:
        assert shipped["methods"][method]["enabled"] is False  # off by default
        shipped["methods"][method]["enabled"] = extras_on
    override = workdir / f"shipped_extras_{extras_on}.yaml"
    override.write_text(yaml.safe_dump(shipped, sort_keys=False))
    # The test's config.yaml first (its `faces` data set), the shipped one over it.
    command = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    command += ["--configfile", str(workdir / "config.yaml"), str(override), "-n"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_a_dry_run_of_the_shipped_config_plans_the_extras_only_when_on(face_run):
    workdir, _ = face_run
    on, off = dry_run(workdir, True), dry_run(workdir, False)
    checkpoints = {"gfpgan_v1_4", "codeformer", "restoreformer"}
    assert set(re.findall(r"method=(\w+)", on)) >= set(EXTRAS)
    assert set(re.findall(r"weights=(\w+)", on)) >= checkpoints
    assert not set(re.findall(r"method=(\w+)", off)) & set(EXTRAS)
    assert not set(re.findall(r"weights=(\w+)", off)) & checkpoints
