"""The train stage as a job runs it: devices (one, or several through DDP), threads,
the cached pairs, the LPIPS model."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from pipeline.devices import claim_gpu, job_device, visible_gpus
from pipeline.measure.perceptual import load_lpips
from pipeline.train.crops import read_crops
from pipeline.train.loop import Validation, train

log = logging.getLogger(__name__)


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
    checkpoints) to add LPIPS to the validation, or ``None``; ``vgg`` the VGG
    weights of a vgg loss, ``init`` the checkpoint of ``init_from``
    (:func:`pipeline.train.loop.new_run`). The job uses ``threads`` CPU
    threads and, with ``gpus`` > 0, a GPU of its own when one is visible
    (:func:`pipeline.devices.job_device`); with ``gpus`` > 1 and as many GPUs
    visible, one process per GPU under DDP (each GPU locked for the job).
    """
    job = dict(
        name=name, model=dict(model), train_dir=str(train_dir), val_dir=str(val_dir),
        checkpoint=str(checkpoint), history=str(history), crop_border=int(crop_border),
        lpips=dict(lpips) if lpips else None, vgg=vgg and str(vgg), init=init and str(init),
        threads=max(1, int(threads)),
    )  # fmt: skip
    visible = visible_gpus() if int(gpus) > 1 else []
    if len(visible) > 1:
        wanted = min(int(gpus), len(visible))
        if wanted < int(gpus):
            log.warning("%d GPUs asked, %d visible: training on %d", gpus, len(visible), wanted)
        with contextlib.ExitStack() as held:
            claimed = [held.enter_context(claim_gpu(visible, gpu_lock_dir)) for _ in range(wanted)]
            devices = [f"cuda:{visible.index(gpu)}" for gpu in claimed]
            train_processes(devices, "nccl", job)
        return pd.read_parquet(history)
    with job_device(int(gpus) > 0, gpu_lock_dir) as device:
        return train_on(device, **job)


def train_on(
    device: str,
    *,
    name: str,
    model: Mapping[str, Any],
    train_dir: str,
    val_dir: str,
    checkpoint: str,
    history: str,
    crop_border: int,
    lpips: Mapping[str, Any] | None,
    vgg: str | None,
    init: str | None,
    threads: int,
) -> pd.DataFrame:
    """One process's part of :func:`train_model` on ``device``."""
    torch.set_num_threads(threads)
    lpips_model = None
    if lpips is not None:
        lpips_model = load_lpips(lpips["net"], lpips["features"], lpips["linear"], device)
    validation = Validation(
        crops=read_crops(val_dir, model["val_limit"]), crop_border=crop_border, lpips=lpips_model
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


def train_processes(devices: Sequence[str], backend: str, job: Mapping[str, Any]) -> None:
    """Run :func:`train_on` in one process per device under DDP (``backend``: ``nccl``
    on GPUs, ``gloo`` on the CPU), rendezvous on a free local port.

    The model's batch is split evenly: ``batch_size`` must be a multiple of the
    number of devices. Raises when a process fails.
    """
    world = len(devices)
    if int(job["model"]["batch_size"]) % world:
        raise ValueError(
            f"models.{job['name']}.batch_size: {job['model']['batch_size']} does not split "
            f"evenly over {world} processes"
        )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torch.multiprocessing.spawn(
        _process, args=(list(devices), backend, port, dict(job)), nprocs=world, join=True
    )


def _process(rank: int, devices: list[str], backend: str, port: int, job: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.INFO)
    device = devices[rank]
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    torch.distributed.init_process_group(
        backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=len(devices)
    )
    try:
        train_on(device, **job)
    finally:
        torch.distributed.destroy_process_group()
