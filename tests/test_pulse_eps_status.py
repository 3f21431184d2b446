"""Searches that missed eps: scored, but left out of the summary and counted, unless configured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.io import save_png, write_parquet
from pipeline.measure.aggregate import summarize
from pipeline.measure.stage import measure as measure_shard
from pipeline.vocabulary import EPS_NOT_REACHED

IMAGES = ("a", "b", "c")


@pytest.fixture
def shard(tmp_path: Path) -> dict[str, Path]:
    """Three images: a reached eps, b missed it, c has no face (a scored centre crop) and
    missed it too."""
    rng = np.random.default_rng(0)
    folders = {name: tmp_path / name for name in ("hr", "lr", "sr")}
    for folder in folders.values():
        folder.mkdir()
    for image_id in IMAGES:
        hr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        save_png(folders["hr"] / f"{image_id}.png", hr)
        save_png(folders["lr"] / f"{image_id}.png", hr[::4, ::4])
        save_png(
            folders["sr"] / f"{image_id}_s0.png",
            np.clip(hr.astype(int) + 3, 0, 255).astype(np.uint8),
        )
    facts = pd.DataFrame(
        {
            "image_id": list(IMAGES),
            "seed": [0, 0, 0],
            "converged": [True, False, False],
            "min_l2": [1e-3, 0.0123, 0.02],
            "eps": [2e-3] * 3,
        }
    )
    write_parquet(folders["sr"] / "facts.parquet", facts)
    faces = pd.DataFrame(
        {
            "image_id": list(IMAGES),
            "path": [""] * 3,
            "status": ["ok", "ok", "fallback"],
            "reason": ["", "", ""],
            "alignment": ["aligned", "aligned", "centre_crop"],
        }
    )
    write_parquet(tmp_path / "faces.parquet", faces)
    return {**folders, "faces": tmp_path / "faces.parquet", "out": tmp_path / "table.parquet"}


def measure(shard: dict[str, Path], policy: str) -> pd.DataFrame:
    return measure_shard(
        shard["faces"], shard["hr"], shard["lr"], shard["sr"], shard["out"],
        dataset="d", method="pulse", kernel="pil-bicubic", lr=8, hr=32, seeds=[0],
        crop_border=0, eps_not_reached=policy, device="cpu",
    )  # fmt: skip


def test_missed_eps_is_scored_but_left_out_and_counted(shard):
    table = measure(shard, "exclude").set_index("image_id")
    assert table.loc["a", "status"] == "ok"
    assert table.loc["b", "status"] == EPS_NOT_REACHED
    assert table.loc["b", "reason"] == "eps not reached (lowest L2 0.0123 > eps 0.002)"
    assert table.loc["c", "status"] == EPS_NOT_REACHED
    assert table.loc["c", "alignment"] == "centre_crop"
    assert table[["psnr_y", "lr_psnr"]].notna().all().all()  # scored for the failures page
    summary = summarize(table.reset_index(), ["psnr_y"])
    row = summary.iloc[0]
    assert row["n"] == 1 and row["excluded_reasons"] == "eps_not_reached:2"


def test_scoring_missed_eps_is_a_switch(shard):
    table = measure(shard, "score").set_index("image_id")
    assert list(table["status"]) == ["ok", "ok", "ok"]
    with pytest.raises(ValueError, match="eps_not_reached must be one of"):
        measure(shard, "drop")
