"""GPU-only methods (PULSE) on a machine without CUDA: skipped with the reason, counted.

The upscale stage writes no images but one facts row per (image, seed) with the
status ``skipped_no_cuda``; the measure stage carries it into the per-image
table and the summary counts it among the rows left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.io import save_png
from pipeline.measure.aggregate import summarize
from pipeline.measure.stage import measure
from pipeline.upscale.stage import upscale
from pipeline.vocabulary import SKIPPED_NO_CUDA

PULSE = {"arch": "pulse", "seeds": [1, 2], "batch_size": 4, "synthesis_path": "/nonexistent"}


def make_shard(root, ids=("a", "b")):
    rng = np.random.default_rng(0)
    for folder, size in (("lr", 8), ("hr", 32)):
        (root / folder).mkdir()
        for image_id in ids:
            image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            save_png(root / folder / f"{image_id}.png", image)
    faces = pd.DataFrame({"image_id": list(ids), "status": "ok", "reason": ""})
    faces.to_parquet(root / "faces.parquet")


def test_skipped_without_cuda_then_measured_and_counted(tmp_path):
    make_shard(tmp_path)
    # The checkpoint paths are never opened: nothing is built.
    facts = upscale(tmp_path / "lr", 32, PULSE, tmp_path / "sr", device="cpu", without_cuda="skip")
    assert sorted(p.name for p in (tmp_path / "sr").iterdir()) == ["facts.parquet"]
    assert len(facts) == 4 and (facts["status"] == SKIPPED_NO_CUDA).all()
    assert facts["reason"].str.contains("without_cuda: run").all()

    table = measure(
        tmp_path / "faces.parquet",
        tmp_path / "hr",
        tmp_path / "lr",
        tmp_path / "sr",
        tmp_path / "table.parquet",
        dataset="d",
        method="pulse",
        kernel="pil-bicubic",
        lr=8,
        hr=32,
        seeds=[1, 2],
        crop_border=4,
        device="cpu",
    )
    assert (table["status"] == SKIPPED_NO_CUDA).all()
    assert table["psnr_y"].isna().all()
    summary = summarize(table, ["psnr_y"], n_boot=10)
    assert summary.loc[0, "n"] == 0
    assert summary.loc[0, "excluded_reasons"] == f"{SKIPPED_NO_CUDA}:4"


def test_a_cuda_device_is_not_skipped(tmp_path):
    make_shard(tmp_path, ids=("a",))
    # On "cuda" the method is built: here that fails on the missing checkpoint,
    # which shows that nothing was skipped.
    try:
        upscale(tmp_path / "lr", 32, PULSE, tmp_path / "sr", device="cuda:0", without_cuda="skip")
    except Exception as exc:  # the build's own error, whatever the machine
        assert "skipped" not in str(exc)
    else:
        raise AssertionError("a job on a CUDA device must build and run the method")
    assert not (tmp_path / "sr").exists()
