"""The ground truth's identity descriptors and ArcFace embeddings, computed once per shard
(pipeline.measure.reference), give the measure stage the values it computes itself, on real
photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.io import InputError, save_png
from pipeline.measure import identity as ID
from pipeline.measure.arcface import ANGLE, COSINE, angle_degrees, embed, load_arcface
from pipeline.measure.arcface import COLUMNS as ARCFACE_COLUMNS
from pipeline.measure.reference import (
    read_arcface_references,
    read_reference_features,
    reference_features,
)
from pipeline.measure.stage import measure
from pipeline.vocabulary import ALIGNED, CENTRE_CROP, FALLBACK, NO_FACE, OK

FFHQ = Path(__file__).resolve().parents[2] / "shared" / "data" / "ffhq"
SIZE, LR = 128, 32
IDENTITY = {"enabled": True, "upsample": None, "fallback": "aligned_box", "landmarks": 5}
ARCFACE = {"enabled": True, "batch_size": 2}  # batches of 2: a batch split across images


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Five FFHQ photos at 128 px as one shard: three aligned, one centre crop, one
    without a face; two seeds of a bicubic 32 -> 128 output each."""
    photos = sorted(FFHQ.glob("*.png"))[:5]
    if len(photos) < 5:
        pytest.skip(f"{FFHQ} not found (../shared is absent)")
    root = tmp_path_factory.mktemp("shard")
    paths = {name: root / name for name in ("hr", "lr", "sr")}
    for folder in paths.values():
        folder.mkdir()
    framing = [(OK, ALIGNED)] * 3 + [(FALLBACK, CENTRE_CROP), (NO_FACE, None)]
    rows = []
    for photo, (status, alignment) in zip(photos, framing, strict=True):
        image_id = photo.stem
        hr = _resize(np.asarray(Image.open(photo).convert("RGB")), SIZE)
        lr = _resize(hr, LR)
        save_png(paths["hr"] / f"{image_id}.png", hr)
        save_png(paths["lr"] / f"{image_id}.png", lr)
        for seed in (0, 1):
            save_png(paths["sr"] / f"{image_id}_s{seed}.png", _resize(np.roll(lr, seed, 0), SIZE))
        rows.append({"image_id": image_id, "status": status, "reason": "", "alignment": alignment})
    paths["faces"] = root / "faces.parquet"
    pd.DataFrame(rows).to_parquet(paths["faces"])
    from tiny_models import write_arcface_checkpoint

    paths["arcface"] = write_arcface_checkpoint(root / "arcface.pth", seed=5)
    paths["references"] = root / "reference.parquet"
    reference_features(
        paths["faces"], paths["hr"], paths["references"], identity=IDENTITY, arcface=ARCFACE,
        checkpoints={"arcface": paths["arcface"]}, threads=1,
    )  # fmt: skip
    return paths


def _measure(shard: dict[str, Path], out: Path, references: Path | None) -> pd.DataFrame:
    return measure(
        shard["faces"], shard["hr"], shard["lr"], shard["sr"], out,
        dataset="ffhq", method="bicubic", kernel="pil-bicubic", lr=LR, hr=SIZE, seeds=[0, 1],
        crop_border=4, identity=IDENTITY, arcface=ARCFACE, references=references,
        checkpoints={"arcface": shard["arcface"]}, device="cpu", threads=1,
    )  # fmt: skip


def test_the_table_holds_the_faces_to_compare_only(shard):
    table = pd.read_parquet(shard["references"])
    faces = pd.read_parquet(shard["faces"])
    assert list(table["image_id"]) == list(faces["image_id"][:3])
    found = read_reference_features(shard["references"])
    for image_id, (descriptor, detected) in found.items():
        expected, expected_detected = ID.face_descriptor(
            np.asarray(Image.open(shard["hr"] / f"{image_id}.png"))
        )
        assert detected == expected_detected
        np.testing.assert_array_equal(descriptor, expected)  # float64 stored losslessly
    embeddings = read_arcface_references(shard["references"])
    assert list(embeddings) == list(found)
    images = [np.asarray(Image.open(shard["hr"] / f"{image_id}.png")) for image_id in embeddings]
    alone = embed(load_arcface(shard["arcface"]), np.stack(images), batch_size=1)
    np.testing.assert_allclose(np.stack(list(embeddings.values())), alone, rtol=1e-5, atol=1e-5)


def test_a_table_without_arcface_embeddings_is_named(shard, tmp_path):
    bare = tmp_path / "identity_only.parquet"
    reference_features(shard["faces"], shard["hr"], bare, identity=IDENTITY, arcface=None)
    assert "hr_arcface" not in pd.read_parquet(bare).columns
    with pytest.raises(InputError, match=r"identity_only.parquet.*\['hr_arcface'\]"):
        _measure(shard, tmp_path / "out.parquet", bare)


def test_measure_with_the_table_gives_the_values_it_computes_itself(shard, tmp_path):
    alone = _measure(shard, tmp_path / "alone.parquet", None)
    shared = _measure(shard, tmp_path / "shared.parquet", shard["references"])
    arcface = list(ARCFACE_COLUMNS)
    pd.testing.assert_frame_equal(alone.drop(columns=arcface), shared.drop(columns=arcface))
    # ArcFace: the same up to float32 rounding between batches of other compositions.
    np.testing.assert_allclose(alone[arcface], shared[arcface], atol=1e-3, equal_nan=True)
    scored = alone["identity_distance"].notna()
    assert scored.sum() == 6  # three faces x two seeds; the crop and the no-face row are NaN
    assert (alone[ANGLE].notna() == scored).all() and (alone[COSINE].notna() == scored).all()
    network = load_arcface(shard["arcface"])
    for row in alone[scored].itertuples():
        sr, hr = (np.asarray(Image.open(path)) for path in (row.sr_path, row.hr_path))
        pair = embed(network, np.stack([sr, hr]), batch_size=1)
        assert angle_degrees(pair[:1], pair[1:])[0] == pytest.approx(getattr(row, ANGLE), abs=1e-3)
    # And both are the metric as computed pair by pair, without any reuse.
    for row in alone[scored].itertuples():
        direct = ID.identity_distance(
            np.asarray(Image.open(row.sr_path)), np.asarray(Image.open(row.hr_path))
        )
        assert abs(direct["identity_distance"] - row.identity_distance) < 1e-6


def test_an_image_missing_from_the_table_is_named(shard, tmp_path):
    table = pd.read_parquet(shard["references"]).iloc[1:]
    partial = tmp_path / "partial.parquet"
    table.to_parquet(partial)
    with pytest.raises(InputError, match="no ground-truth descriptor of ffhq_00000"):
        _measure(shard, tmp_path / "out.parquet", partial)
