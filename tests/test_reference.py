"""The ground truth's identity descriptors, computed once per shard (pipeline.measure.reference),
give the measure stage exactly the values it computes itself, on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.io import InputError, save_png
from pipeline.measure import identity as ID
from pipeline.measure.reference import read_reference_features, reference_features
from pipeline.measure.stage import measure
from pipeline.vocabulary import ALIGNED, CENTRE_CROP, FALLBACK, NO_FACE, OK

FFHQ = Path(__file__).resolve().parents[2] / "shared" / "data" / "ffhq"
SIZE, LR = 128, 32
IDENTITY = {"enabled": True, "upsample": None, "fallback": "aligned_box", "landmarks": 5}


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
    paths["references"] = root / "reference.parquet"
    reference_features(paths["faces"], paths["hr"], paths["references"], identity=IDENTITY)
    return paths


def _measure(shard: dict[str, Path], out: Path, references: Path | None) -> pd.DataFrame:
    return measure(
        shard["faces"], shard["hr"], shard["lr"], shard["sr"], out,
        dataset="ffhq", method="bicubic", kernel="pil-bicubic", lr=LR, hr=SIZE, seeds=[0, 1],
        crop_border=4, identity=IDENTITY, references=references, device="cpu",
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


def test_measure_with_the_table_gives_the_values_it_computes_itself(shard, tmp_path):
    alone = _measure(shard, tmp_path / "alone.parquet", None)
    shared = _measure(shard, tmp_path / "shared.parquet", shard["references"])
    pd.testing.assert_frame_equal(alone, shared)
    scored = alone["identity_distance"].notna()
    assert scored.sum() == 6  # three faces x two seeds; the crop and the no-face row are NaN
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
