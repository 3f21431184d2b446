"""The training stage: cached pairs, the loop, resumption after ``kill -9``, NaN stops."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, smooth_image

from pipeline.config import apply_definition
from pipeline.io import InputError, save_png
from pipeline.resize import downscale
from pipeline.workflow import load_config

torch = pytest.importorskip("torch")

from pipeline.train import HISTORY_COLUMNS, loop  # noqa: E402
from pipeline.train.crops import cache_crops, read_crops  # noqa: E402
from pipeline.upscale.srresnet import load_network  # noqa: E402

LR, HR = 8, 32


def tiny_model(**overrides) -> dict:
    block = {
        "dataset": "faces",
        "task": {"lr": LR, "hr": HR},
        "num_feat": 8,
        "num_block": 1,
        "iterations": 12,
        "batch_size": 4,
        "checkpoint_every": 4,
        "validate_every": 6,
        "val_limit": 3,
        "optimiser": {"lr": 1e-3},
        **overrides,
    }
    return apply_definition("model", block, "models.tiny")


def write_shards(root: Path, count: int, splits: list[str]) -> tuple[Path, list[Path], list[Path]]:
    """A manifest and two shards of aligned crops and their pil-bicubic LR inputs."""
    rng = np.random.default_rng(0)
    ids = [f"img{index:02d}" for index in range(count)]
    manifest = root / "manifest.parquet"
    pd.DataFrame({"image_id": ids, "split": splits}).to_parquet(manifest)
    aligned = [root / "aligned/shard-0000", root / "aligned/shard-0001"]
    for index, image_id in enumerate(ids):
        hr = smooth_image(rng, HR, HR)
        save_png(aligned[index % 2] / f"{image_id}.png", hr)
        lr = downscale(hr, LR, "pil-bicubic")
        save_png(root / f"lr/shard-{index % 2:04d}" / f"{image_id}.png", lr)
    lrs = [root / "lr/shard-0000", root / "lr/shard-0001"]
    return manifest, aligned, lrs


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("crops")
    manifest, aligned, lrs = write_shards(root, 12, ["train"] * 8 + ["val"] * 3 + ["test"])
    assert cache_crops(manifest, aligned, lrs, "train", root / "train") == 8
    assert cache_crops(manifest, aligned, lrs, "val", root / "val") == 3
    return root / "train", root / "val"


def test_the_cache_holds_the_split_s_pairs_in_id_order(crops):
    train = read_crops(crops[0])
    assert train.image_ids == [f"img{index:02d}" for index in range(8)]
    assert train.hr.shape == (8, HR, HR, 3) and train.lr.shape == (8, LR, LR, 3)
    assert train.hr.dtype == np.uint8
    assert len(read_crops(crops[1], limit=2)) == 2


def test_a_split_without_images_names_the_manifest(tmp_path):
    manifest, aligned, lrs = write_shards(tmp_path, 2, ["test", "test"])
    with pytest.raises(InputError, match=r"manifest\.parquet.*no aligned image of split 'train'"):
        cache_crops(manifest, aligned, lrs, "train", tmp_path / "out")


def test_batches_cover_each_epoch_once_and_depend_only_on_seed_and_iteration():
    first_epoch = np.concatenate([loop.batch_indices(10, 5, 3, i) for i in range(2)])
    assert sorted(first_epoch) == list(range(10))
    assert np.array_equal(loop.batch_indices(10, 5, 3, 7), loop.batch_indices(10, 5, 3, 7))
    assert not np.array_equal(loop.batch_indices(10, 5, 3, 0), loop.batch_indices(10, 5, 4, 0))


def run_training(model: dict, crops, out: Path) -> pd.DataFrame:
    validation = loop.Validation(crops=read_crops(crops[1], 3), crop_border=4)
    train = read_crops(crops[0])
    return loop.train(model, train, validation, out / "checkpoint.pth", out / "history.parquet")


def test_training_writes_a_loadable_checkpoint_and_its_history(crops, tmp_path, torch_one_thread):
    model = tiny_model()
    history = run_training(model, crops, tmp_path)
    assert list(history["iteration"]) == [6, 12]
    assert list(history.columns[: len(HISTORY_COLUMNS)]) == list(HISTORY_COLUMNS)
    assert history["val_psnr_y"].between(5, 60).all() and history["val_ssim_y"].between(-1, 1).all()
    assert history["val_lpips"].isna().all()  # no LPIPS model given
    assert (history["loss"] == history["loss_mse"]).all() and (history["images_per_s"] > 0).all()
    assert pd.read_parquet(tmp_path / "history.parquet").equals(history)
    assert not (tmp_path / "resume.pth").exists()
    net = load_network(tmp_path / "checkpoint.pth", "paper", 4, (-1, 1))
    assert len(net.residual_blocks) == 1
    trained = loop.make_generator(model)
    trained.load_state_dict(torch.load(tmp_path / "checkpoint.pth", weights_only=True)["params"])
    lr = torch.rand(1, 3, LR, LR)
    assert torch.equal(net(lr), trained.eval()(lr))


def test_schedules_follow_the_config(crops, tmp_path, torch_one_thread):
    model = tiny_model(schedule={"kind": "step", "milestones": [6], "gamma": 0.1})
    history = run_training(model, crops, tmp_path)
    assert history["lr"].tolist() == pytest.approx([1e-4, 1e-4])  # after iteration 6
    cosine = tiny_model(schedule={"kind": "cosine", "eta_min": 0.0})
    history = run_training(cosine, crops, tmp_path / "cosine")
    assert history["lr"].tolist() == pytest.approx([5e-4, 0.0])


def test_bf16_autocast_and_channels_last_train_on_the_cpu(crops, tmp_path, torch_one_thread):
    model = tiny_model(bf16=True, channels_last=True, iterations=6)
    history = run_training(model, crops, tmp_path)
    assert np.isfinite(history["loss"]).all()
    timed = loop.time_steps(model, "cpu", bf16=True, channels_last=True, steps=2)
    assert timed["images_per_s"] > 0 and timed["cpu_seconds_per_step"] > 0


def test_a_nan_loss_stops_naming_the_iteration_and_keeps_the_last_checkpoint(
    crops, tmp_path, monkeypatch, torch_one_thread
):
    calls = []

    def mse_then_nan(sr, hr):
        calls.append(1)
        loss = torch.nn.functional.mse_loss(sr, hr)
        return loss * float("nan") if len(calls) == 7 else loss

    monkeypatch.setitem(loop.PIXEL_LOSSES, "mse", mse_then_nan)
    with pytest.raises(loop.TrainingError, match="iteration 7: the mse loss is nan"):
        run_training(tiny_model(), crops, tmp_path)
    kept = torch.load(tmp_path / "resume.pth", weights_only=True)
    assert kept["iteration"] == 4
    assert torch.isfinite(torch.cat([v.flatten().float() for v in kept["params"].values()])).all()
    assert not (tmp_path / "checkpoint.pth").exists()


TRAIN_SCRIPT = """
import sys
import torch
from pipeline.config import apply_definition
from pipeline.train import loop
from pipeline.train.crops import read_crops
torch.set_num_threads(1)
train, val, out = sys.argv[1:4]
model = apply_definition("model", {model!r}, "models.tiny")
validation = loop.Validation(crops=read_crops(val, 3), crop_border=4)
loop.train(model, read_crops(train), validation, out + "/checkpoint.pth", out + "/history.parquet")
"""


def start(crops, out: Path, model: dict) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = TRAIN_SCRIPT.replace("{model!r}", repr(model))
    command = [sys.executable, "-c", script, str(crops[0]), str(crops[1]), str(out)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_killed_with_sigkill_it_resumes_to_the_weights_of_an_uninterrupted_run(crops, tmp_path):
    block = {
        "dataset": "faces",
        "task": {"lr": LR, "hr": HR},
        "num_feat": 8,
        "num_block": 1,
        "iterations": 400,
        "batch_size": 4,
        "checkpoint_every": 10,
        "validate_every": 100,
        "val_limit": 3,
        "optimiser": {"lr": 1e-3},
        "schedule": {"kind": "cosine"},
    }
    killed = tmp_path / "killed"
    process = start(crops, killed, block)
    deadline = time.monotonic() + 120
    while not (killed / "resume.pth").exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "checkpoint.pth").exists(), "finished before the kill: make it longer"
    stopped_at = torch.load(killed / "resume.pth", weights_only=True)["iteration"]
    assert 10 <= stopped_at < 400
    uninterrupted = tmp_path / "uninterrupted"
    for out in (killed, uninterrupted):
        process = start(crops, out, block)
        assert process.wait(timeout=300) == 0, process.stderr.read().decode()
    resumed = torch.load(killed / "checkpoint.pth", weights_only=True)
    reference = torch.load(uninterrupted / "checkpoint.pth", weights_only=True)
    assert resumed["iteration"] == reference["iteration"] == 400
    for key, value in reference["params"].items():
        assert torch.equal(resumed["params"][key], value), key
    history = pd.read_parquet(killed / "history.parquet")
    assert list(history["iteration"]) == [100, 200, 300, 400]


# --------------------------------------------------------------------------- config

CONFIG = {
    "run_name": "t",
    "datasets": {"faces": {"source": {"path": "/data/faces"}}},
    "tasks": [{"lr": 16, "hr": 64}],
    "kernels": ["pil-bicubic"],
    "methods": {"mine": {"arch": "srresnet", "trained": "face"}},
    "models": {"face": {"dataset": "faces", "task": {"lr": 16, "hr": 64}, "iterations": 10}},
    "measure": {"lpips": {"enabled": False}},
}


def config_with(**changes) -> dict:
    import copy

    config = copy.deepcopy(CONFIG)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = config
        for key in parents:
            node = node[key]
        node[leaf] = value
    return config


def test_a_trained_method_takes_its_model_s_layout_and_checkpoint():
    from pipeline.workflow import method_weights, model_options, model_validation

    config = load_config(config_with(models__face__output_range=[0, 1]))
    method = config["methods"]["mine"]
    assert (method["variant"], method["scale"], method["output_range"]) == ("paper", 4, [0, 1])
    assert method_weights(config, "mine") == {"weights": "resources/models/face/checkpoint.pth"}
    assert "gpus" not in model_options(config, "face")
    assert model_validation(config, "face") == {"crop_border": 4, "lpips": None}


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"methods__mine__trained": "other"}, "methods.mine.trained: no model named 'other'"),
        ({"methods__mine__weights": "x"}, "`trained` and `weights` both name"),
        ({"methods__mine__arch": "esrgan"}, "arch 'esrgan' cannot run a trained model"),
        ({"methods__mine__variant": "msrresnet"}, "methods.mine.variant: 'msrresnet', but"),
        ({"models__face__dataset": "nope"}, "models.face.dataset: no data set named 'nope'"),
        ({"models__face__task": {"lr": 16, "hr": 48}}, "models.face.task: 16 -> 48 px"),
        ({"models__face__output_range": [-1, 2]}, "models.face.output_range"),
        ({"models__face__bogus": 1}, "models.face: Additional properties"),
        ({"models__face__loss": "vgg"}, "models.face.vgg.weights: no checkpoint named 'vgg19'"),
        ({"models__face__init_from": "other"}, "models.face.init_from: no model named 'other'"),
        ({"models__face__init_from": "face"}, "models.face.init_from: a cycle: face -> face"),
        (
            {
                "models__base": {
                    "dataset": "faces",
                    "task": {"lr": 16, "hr": 64},
                    "iterations": 1,
                    "num_block": 4,
                },
                "models__face__init_from": "base",
            },
            "models.face.init_from: model 'base' has num_block 4, this one 16",
        ),
    ],
)
def test_model_and_trained_method_mistakes_name_the_key(changes, named):
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match=re.escape(named)):
        load_config(config_with(**changes))


# --------------------------------------------------------------------------- srgan

VGG16 = REPO.parent / "shared" / "weights" / "vgg16_features.pth"


@pytest.fixture
def gan_modules():
    """The discriminator and the losses (pipeline.train.discriminator, .losses)."""
    pytest.importorskip("pipeline.train.losses", reason="merged from branch trainloss14")
    if not VGG16.is_file():
        pytest.skip("needs ../shared/weights/vgg16_features.pth")


def gan_model(kind: str, **overrides) -> dict:
    block = {
        "arch": "srgan",
        "loss": "mse+vgg",
        "vgg": {"weights": "vgg16", "net": "vgg16", "layer": "relu2_2"},
        "adversarial": {"kind": kind},
        "init_from": "tiny",
    }
    return tiny_model(**{**block, **overrides})


def test_srgan_starts_from_a_trained_srresnet_and_trains_its_discriminator(
    gan_modules, crops, tmp_path, torch_one_thread
):
    run_training(tiny_model(iterations=4), crops, tmp_path / "srresnet")
    init = tmp_path / "srresnet" / "checkpoint.pth"
    model = gan_model("nsgan", iterations=6)
    validation = loop.Validation(crops=read_crops(crops[1], 3), crop_border=4)
    start = loop.new_run(model, "cpu", vgg=VGG16, init=init)
    before = torch.load(init, weights_only=True)["params"]
    assert all(torch.equal(start.generator.state_dict()[k], v) for k, v in before.items())
    history = loop.train(
        model, read_crops(crops[0]), validation, tmp_path / "checkpoint.pth",
        tmp_path / "history.parquet", vgg=VGG16, init=init,
    )  # fmt: skip
    for column in ("loss_mse+vgg", "loss_adversarial", "loss_discriminator"):
        assert np.isfinite(history[column]).all(), column
    assert history["loss"].iloc[-1] == pytest.approx(
        history["loss_mse+vgg"].iloc[-1] + 1e-3 * history["loss_adversarial"].iloc[-1]
    )
    state = torch.load(tmp_path / "checkpoint.pth", weights_only=True)
    assert "discriminator" in state and "discriminator_optimiser" in state
    net = load_network(tmp_path / "checkpoint.pth", "paper", 4, (-1, 1))
    assert not torch.equal(net.state_dict()["conv_block3.conv_block.0.weight"],
                           before["conv_block3.conv_block.0.weight"])  # fmt: skip


def test_wgan_gp_resumes_after_a_crash_to_the_same_weights(
    gan_modules, crops, tmp_path, monkeypatch, torch_one_thread
):
    """The penalty draws from torch's RNG: the checkpoint's RNG states make it repeat."""
    model = gan_model("wgan-gp", iterations=6, loss="mse", init_from=None)
    validation = loop.Validation(crops=read_crops(crops[1], 3), crop_border=4)
    train = read_crops(crops[0])

    def run(out: Path) -> None:
        loop.train(model, train, validation, out / "checkpoint.pth", out / "h.parquet")

    run(tmp_path / "straight")
    real_step = loop.step

    def crash_at_six(state, *args):
        if state.iteration == 5:
            raise KeyboardInterrupt("crash")
        return real_step(state, *args)

    monkeypatch.setattr(loop, "step", crash_at_six)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "crashed")
    assert torch.load(tmp_path / "crashed/resume.pth", weights_only=True)["iteration"] == 4
    monkeypatch.setattr(loop, "step", real_step)
    run(tmp_path / "crashed")
    straight = torch.load(tmp_path / "straight/checkpoint.pth", weights_only=True)
    resumed = torch.load(tmp_path / "crashed/checkpoint.pth", weights_only=True)
    for part in ("params", "discriminator"):
        for key, value in straight[part].items():
            assert torch.equal(resumed[part][key], value), (part, key)


def test_two_processes_under_ddp_reach_the_weights_of_one(crops, tmp_path, torch_one_thread):
    """gloo on the CPU; BasicSR's layout (no batch normalisation, which DDP
    computes per process on the CPU): the gradients averaged over the two halves
    of each batch are the whole batch's, up to float rounding."""
    from pipeline.train.stage import train_on, train_processes

    model = tiny_model(variant="msrresnet", iterations=4, validate_every=2, checkpoint_every=2)
    job = dict(
        name="ddp", model=model, train_dir=str(crops[0]), val_dir=str(crops[1]),
        crop_border=4, lpips=None, vgg=None, init=None, threads=1,
    )  # fmt: skip
    one = tmp_path / "one"
    train_on("cpu", checkpoint=str(one / "c.pth"), history=str(one / "h.parquet"), **job)
    two = tmp_path / "two"
    train_processes(
        ["cpu", "cpu"],
        "gloo",
        {**job, "checkpoint": str(two / "c.pth"), "history": str(two / "h.parquet")},
    )
    single = torch.load(one / "c.pth", weights_only=True)["params"]
    ddp = torch.load(two / "c.pth", weights_only=True)["params"]
    assert set(single) == set(ddp)  # no `module.` prefix
    for key, value in single.items():
        torch.testing.assert_close(ddp[key], value, rtol=1e-4, atol=1e-5, msg=key)
    history = pd.read_parquet(two / "h.parquet")
    assert list(history["iteration"]) == [2, 4]
    reference = pd.read_parquet(one / "h.parquet")
    assert history["loss"].to_numpy() == pytest.approx(reference["loss"].to_numpy(), rel=1e-4)
    with pytest.raises(ValueError, match="batch_size: 4 does not split evenly over 3"):
        train_processes(["cpu"] * 3, "gloo", {**job, "checkpoint": "x", "history": "y"})


def test_the_report_draws_each_model_s_training_curves(tmp_path):
    from pipeline.report.charts import make_training_charts

    history = loop.history_frame(
        [
            {"iteration": 3, "loss": 0.07, "lr": 1e-3, "images_per_s": 8.0,
             "val_psnr_y": 14.7, "val_ssim_y": 0.13, "val_lpips": 0.68},
            {"iteration": 6, "loss": 0.06, "lr": 1e-3, "images_per_s": 8.0,
             "val_psnr_y": 15.1, "val_ssim_y": 0.14, "val_lpips": 0.67},
        ]
    )  # fmt: skip
    empty = loop.history_frame([{"iteration": 1, "loss": 0.1}]).iloc[:0]
    charts = make_training_charts({"faces": history, "nothing_yet": empty}, tmp_path)
    assert [chart.key for chart in charts] == ["training"]
    (chart,) = charts
    assert (tmp_path / chart.path).read_text().startswith("<?xml")
    assert "iteration 6" in chart.alt and "PSNR-Y 15.10 dB" in chart.alt and "0.670" in chart.alt
