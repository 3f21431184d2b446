"""The train stage as a job runs it: devices, threads, the cached pairs, the LPIPS model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from pipeline.devices import job_device
from pipeline.measure.perceptual import load_lpips
from pipeline.train.crops import read_crops
from pipeline.train.loop import Validation, train


def train_model(
    name: str,
    model: Mapping[str, Any],
    train_dir: str | Path,
    val_dir: str | Path,
    checkpoint: str | Path,
    history: str | Path,
    *,
    crop_border: int,
    lpips: Mapping[str, Any] | None = None,
    vgg: str | Path | None = None,
    init: str | Path | None = None,
    threads: int = 1,
    gpus: int = 0,
    gpu_lock_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Train model ``name`` on the pairs cached in ``train_dir``, validating on ``val_dir``.

    ``lpips``: ``{"net", "features", "linear"}`` (the measure stage's
    checkpoints) to add LPIPS to the validation, or ``None``. The job uses
    ``threads`` CPU threads and, with ``gpus`` > 0, a GPU of its own when one is
    visible (:func:`pipeline.devices.job_device`).
    """
    torch.set_num_threads(max(1, int(threads)))
    with job_device(int(gpus) > 0, gpu_lock_dir) as device:
        lpips_model = None
        if lpips is not None:
            lpips_model = load_lpips(lpips["net"], lpips["features"], lpips["linear"], device)
        validation = Validation(
            crops=read_crops(val_dir, model["val_limit"]),
            crop_border=int(crop_border),
            lpips=lpips_model,
        )
        return train(
            model,
            read_crops(train_dir),
            validation,
            checkpoint,
            history,
            device=device,
            name=name,
            vgg=vgg,
            init=init,
        )
