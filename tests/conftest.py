"""Shared fixtures: a tiny, offline benchmark project made on the fly."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from emoji_packages import raster_package
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

# Real photos used when ../shared is present, so that detection and alignment
# run on actual faces; without it the set is synthetic (centre-crop fallback).
SHARED_FACES = ("celeba_hq/stargan-v2_src_male_016387.jpg", "ffhq/ffhq_00001.png")


def smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random RGB image: upscaled noise, so that resampling is not trivial."""
    small = rng.integers(
        0, 256, size=(max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8
    )
    return np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))


def make_image_folder(folder: Path, seed: int = 0) -> dict[str, str]:
    """Images in several formats and modes, plus two broken files; returns id -> expected status."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    Image.fromarray(smooth_image(rng, 120, 100)).save(folder / "rgb_portrait.png")
    Image.fromarray(smooth_image(rng, 96, 96)).save(folder / "square.jpg", quality=95)
    Image.fromarray(smooth_image(rng, 80, 120)[..., 0]).save(folder / "gray_landscape.png")
    Image.fromarray(smooth_image(rng, 64, 64)).convert("P").save(folder / "palette.gif")
    rgba = np.dstack([smooth_image(rng, 72, 72), np.full((72, 72), 200, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(folder / "with_alpha.png")
    # Yale ships extension-less GIFs: the catalog must sniff content.
    Image.fromarray(smooth_image(rng, 70, 60)[..., 1]).save(
        folder / "subject01.happy", format="GIF"
    )
    decodable = [
        "rgb_portrait",
        "square",
        "gray_landscape",
        "palette",
        "with_alpha",
        "subject01.happy",
    ]
    expected.update(dict.fromkeys(decodable, "ok"))
    (folder / "empty.png").write_bytes(b"")
    buffer = io.BytesIO()
    Image.fromarray(smooth_image(rng, 64, 64)).save(buffer, format="JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    expected.update({"empty": "error", "truncated": "error"})
    (folder / "README.txt").write_text("not an image\n")
    for index, relative in enumerate(SHARED_FACES):
        if (SHARED / "data" / relative).is_file():
            shutil.copyfile(
                SHARED / "data" / relative, folder / f"real_{index}{Path(relative).suffix}"
            )
            expected[f"real_{index}"] = "ok"
    return expected


def zip_folder(folder: Path, archive: Path) -> str:
    """Zip ``folder`` under a top-level directory (as upstream archives are); return sha256."""
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.iterdir()):
            bundle.write(path, f"{folder.name}/{path.name}")
    return hashlib.sha256(archive.read_bytes()).hexdigest()


def tiny_config(
    data: Path, archive: Path, archive_sha: str, emoji: Path, arcface: Path | None = None
) -> dict:
    config = {
        "run_name": "tiny",
        "shard_size": 4,
        "datasets": {
            "folder": {"source": {"path": str(data)}},
            # One task for the sets beside the folder keeps the shared run's jobs few.
            "zipped": {
                "source": {"url": archive.as_uri(), "sha256": archive_sha},
                "limit": 5,
                "tasks": [{"lr": 16, "hr": 64}],
            },
        },
        "tasks": [{"lr": 8, "hr": 32}, {"lr": 16, "hr": 64}],
        "kernels": ["pil-bicubic"],
        "methods": {
            "bicubic": {"arch": "interpolate", "filter": "bicubic"},
            "tiny_trained": {"arch": "srresnet", "trained": "tiny_srresnet"},
        },
        # A few iterations of a tiny SRResNet, end to end (train -> upscale ->
        # measure -> report). The tiny sets have test images only: it trains and
        # validates on the folder's, which checks the plumbing, not the model.
        "models": {
            "tiny_srresnet": {
                "dataset": "folder",
                "split": "test",
                "val_split": "test",
                "task": {"lr": 8, "hr": 32},
                "num_feat": 8,
                "num_block": 1,
                "iterations": 6,
                "batch_size": 4,
                "checkpoint_every": 3,
                "validate_every": 3,
                "optimiser": {"lr": 0.001},
                "gpus": 0,
            }
        },
        "summary": {"bootstrap_samples": 200, "seed": 0},
        "report": {"page_size": 6},
    }
    weights = SHARED / "weights"
    if (weights / "alexnet_features.pth").is_file():
        config["weights"] = {
            "lpips_alex_features": {"path": str(weights / "alexnet_features.pth")},
            "lpips_alex_linear": {"path": str(weights / "lpips_v0.1_alex_lin.pth")},
        }
    else:
        config["measure"] = {"lpips": {"enabled": False}}
    if arcface is not None:  # a random-weight file: there is no internet
        config.setdefault("weights", {})["arcface_resnet18"] = {"path": str(arcface)}
        config.setdefault("measure", {})["arcface"] = {"enabled": True}
    config["datasets"]["emoji"] = {
        "kind": "emoji",
        "platform": "apple",
        "source": {"path": str(emoji)},
        "tasks": [{"lr": 16, "hr": 64}],
        "detector": {"kind": "hog", "upsample": 0, "pad": 0.25, "min_size": 160},
        "limit": 8,
    }
    yale = SHARED / "mirror" / "yalefaces.zip"
    if yale.is_file():  # the real upstream layout, through its own catalog kind
        config["datasets"]["yale"] = {
            "kind": "yale",
            "source": {"path": str(yale)},
            "limit": 4,
            "tasks": [{"lr": 16, "hr": 64}],
        }
    cropped = SHARED / "mirror" / "CroppedYale.zip"
    if cropped.is_file():  # pre-aligned crops (the kind's default policy), one lit too steeply
        config["datasets"]["croppedyale"] = {
            "kind": "croppedyale",
            "source": {"path": str(cropped)},
            "limit": 4,
            "tasks": [{"lr": 16, "hr": 64}],  # one task keeps its cost to a few jobs
        }
    return config


@pytest.fixture
def torch_one_thread():
    """Small convolutions on a busy 2-core machine run far faster single-threaded."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_tiny_project(folder: Path, arcface: Path | None = None) -> Path:
    """Write a working folder with ``config.yaml`` describing a tiny offline benchmark.

    Data sets: a folder (with broken files), a zip archive fetched through a
    ``file://`` URL with its sha256, a fake Apple emoji package (drawn discs, so
    no face is found: centre crops) and, with ../shared, the real Yale archive
    and the first four images of the cropped Extended Yale B (``prealigned``).
    Two methods (bicubic and a tiny trained SRResNet), two tasks for the folder and
    one for the other sets, shards of 4 images. ArcFace scores with the checkpoint
    ``arcface`` (random weights in the published layout), or is off without one.
    ``expected_status.yaml`` gives the catalog status each image of the folder must get.
    """
    data = folder / "data" / "faces"
    expected = make_image_folder(data)
    archive = folder / "data" / "faces.zip"
    sha = zip_folder(data, archive)
    emoji = raster_package(folder / "data" / "emoji", "apple")
    config = tiny_config(data, archive, sha, emoji, arcface)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (folder / "expected_status.yaml").write_text(yaml.safe_dump(expected))
    return folder


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    return make_tiny_project(tmp_path)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The tiny project run end to end once per session: (working folder, seconds).

    With ArcFace, on random weights in the layout of GFPGAN's ``arcface_resnet18.pth``.
    """
    from tiny_models import write_arcface_checkpoint

    workdir = tmp_path_factory.mktemp("e2e")
    arcface = write_arcface_checkpoint(workdir / "checkpoints" / "arcface_random.pth")
    make_tiny_project(workdir, arcface)
    began = time.perf_counter()
    run_snakemake(workdir, "--cores", "2", "--resources", "gpu=2")
    return workdir, time.perf_counter() - began


def run_snakemake(
    workdir: Path, *args: str, check: bool = True, repo: Path = REPO
) -> subprocess.CompletedProcess:
    """Run the workflow of ``repo`` (this repository) in ``workdir`` with its ``config.yaml``."""
    command = [
        *SNAKEMAKE,
        "--snakefile", str(repo / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(workdir / "config.yaml"),
        *args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(repo)}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
        )
    return result


@pytest.fixture(scope="session")
def face_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """GFPGAN v1.4, CodeFormer and RestoreFormer with random weights in their published
    layouts (``tests/face_models.py``; about 1 GB), made once per session: arch -> file."""
    pytest.importorskip("spandrel_extra_arches")
    from face_models import write_face_checkpoints

    return write_face_checkpoints(tmp_path_factory.mktemp("face_checkpoints"))
