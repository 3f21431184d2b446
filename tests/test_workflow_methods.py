"""All five upscaling methods through the real workflow, on CPU, with tiny random networks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import make_tiny_project, run_snakemake
from PIL import Image

pytest.importorskip("torch")
from tiny_models import write_tiny_checkpoints

pytestmark = pytest.mark.slow

METHODS = {
    "bicubic": {"arch": "interpolate", "filter": "bicubic"},
    # The default methods' shape (config.yaml): OpenMMLab checkpoints, variant mmedit.
    "srresnet": {"arch": "srresnet", "variant": "mmedit", "weights": "srresnet_tiny"},
    "srgan": {"arch": "srgan", "variant": "mmedit", "weights": "srgan_tiny"},
    "esrgan": {"arch": "esrgan", "weights": "esrgan_tiny", "batch_size": 4},
    "pulse": {
        "arch": "pulse",
        "synthesis": "pulse_synthesis_tiny",
        "mapping": "pulse_mapping_tiny",
        "seeds": [0, 1],
        "steps": 3,
        "batch_size": 4,
        "save_every": 1,
    },
}


@pytest.fixture(scope="module")
def methods_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = make_tiny_project(tmp_path_factory.mktemp("methods"))
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    checkpoints = write_tiny_checkpoints(workdir / "checkpoints")
    config["weights"] = {
        **config.get("weights", {}),
        **{name: {"path": str(path)} for name, path in checkpoints.items()},
    }
    config["datasets"] = {"folder": {**config["datasets"]["folder"], "limit": 6}}
    config["shard_size"] = 10
    # 8 -> 32: PULSE's 32 px network needs no resampling; x4 networks give 32 natively.
    # 16 -> 128 (x8): x4 networks and PULSE are resampled to the evaluation size.
    config["tasks"] = [{"lr": 8, "hr": 32}, {"lr": 16, "hr": 128}]
    config["methods"] = METHODS
    config["pulse_gaussian"] = {"samples": 2000, "seed": 0}
    config["without_cuda"] = "run"  # PULSE is GPU-only: its jobs would skip on this CPU
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run_snakemake(workdir, "--cores", "2", "--resources", "gpu=1")
    return workdir


# Statuses of scored outputs (eps_not_reached: scored, left out of the summary).
SCORED = ["ok", "no_face", "eps_not_reached"]


def test_every_method_scores_every_usable_image(methods_run):
    per_image = pd.read_parquet(methods_run / "results/metrics/per_image.parquet")
    usable = per_image[per_image["status"].isin(SCORED)]
    counts = usable.groupby(["method", "task"]).size().unstack()
    images = usable[usable["method"] == "bicubic"].groupby("task").size()
    for method, spec in METHODS.items():
        seeds = len(spec.get("seeds", [0]))
        assert (counts.loc[method] == images * seeds).all(), method
    assert usable[["psnr_y", "ssim_y", "lr_psnr"]].notna().all().all()


def test_fixed_scale_outputs_are_resampled_and_recorded(methods_run):
    per_image = pd.read_parquet(methods_run / "results/metrics/per_image.parquet")
    x8 = per_image[(per_image["task"] == "16to128") & per_image["method"].isin(["esrgan", "srgan"])]
    x8 = x8[x8["status"].isin(["ok", "no_face"])]
    assert (x8["native_size"] == 64).all() and (x8["resampled_with"] == "pil-bicubic").all()
    x4 = per_image[(per_image["task"] == "8to32") & (per_image["method"] == "esrgan")]
    assert x4["resampled_with"].isna().all()


def test_pulse_flags_every_image_and_seed(methods_run):
    per_image = pd.read_parquet(methods_run / "results/metrics/per_image.parquet")
    pulse = per_image[(per_image["method"] == "pulse") & per_image["status"].isin(SCORED)]
    assert set(pulse["seed"]) == {0, 1}
    assert pulse["converged"].notna().all()
    # As PULSE: every step runs. 3 steps never reach eps 2e-3: scored, but left
    # out of the summary and counted there.
    assert (pulse["steps"] == 3).all() and pulse["final_l2"].notna().all()
    missed = pulse[~pulse["converged"].astype(bool)]
    assert len(missed) and set(missed["status"]) <= {"eps_not_reached", "no_face"}
    assert (missed["status"] == "eps_not_reached").any()
    summary = pd.read_csv(methods_run / "results/metrics/summary.csv")
    rows = summary[(summary["method"] == "pulse") & (summary["category"] == "all")]
    assert rows["excluded_reasons"].fillna("").str.contains("eps_not_reached:").all()
    # Different seeds search from different latents.
    wide = pulse.pivot_table(index=["image_id", "task"], columns="seed", values="psnr_rgb")
    assert (wide[0] != wide[1]).any()
    assert (methods_run / "resources/weights/pulse_mapping_tiny.gaussian.pt").is_file()


def test_pulse_steps_are_saved_as_animations(methods_run):
    per_image = pd.read_parquet(methods_run / "results/metrics/per_image.parquet")
    pulse = per_image[(per_image["method"] == "pulse") & per_image["animation"].notna()]
    assert len(pulse) > 0
    for row in pulse.itertuples():
        animation = Path(row.sr_path).with_name(row.animation)
        with Image.open(methods_run / animation) as image:
            assert image.n_frames >= 2


def test_fetched_checkpoints_are_recorded_in_the_lock_file(methods_run):
    lock = json.loads((methods_run / "resources/sources.lock.json").read_text())["files"]
    checkpoints = methods_run / "checkpoints"
    for name in ("srresnet_tiny", "srgan_tiny", "esrgan_tiny", "pulse_mapping_tiny"):
        entry = lock[str((checkpoints / f"{name}.pth").resolve())]
        assert entry["kind"] == "path" and entry["weights"] == name
        fetched = methods_run / f"resources/weights/{name}.pth"
        assert hashlib.sha256(fetched.read_bytes()).hexdigest() == entry["sha256"]
