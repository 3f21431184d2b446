"""Giving each GPU job its own device.

Snakemake counts GPUs (``--resources gpu=2``) but does not say which device a
job should use. Each job that asks for a GPU takes an exclusive, node-local
lock on one visible device and restricts itself to it through
``CUDA_VISIBLE_DEVICES``; the lock is released when the job ends, even when it
crashes (the kernel drops ``flock`` locks of dead processes). Under SLURM the
scheduler already exposes only the job's own GPUs, and the same code simply
takes the first of them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def visible_gpus() -> list[str]:
    """Identifiers of the CUDA devices this process may use (empty without CUDA).

    Without torch there is no CUDA code to run, so there are no usable GPUs.
    """
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    count = torch.cuda.device_count()
    declared = os.environ.get("CUDA_VISIBLE_DEVICES")
    if declared:
        ids = [item.strip() for item in declared.split(",") if item.strip()]
        return ids[:count]
    return [str(index) for index in range(count)]


def host_has_cuda() -> bool:
    """Whether this host shows an NVIDIA GPU, without importing torch (it takes seconds).

    Reads the driver's list of GPUs (``/proc/driver/nvidia/gpus``) and honours
    a ``CUDA_VISIBLE_DEVICES`` that hides every device. The workflow asks this
    when it builds the DAG, so that a GPU-only method skipped on a machine
    without CUDA runs again on one that has it; the jobs themselves ask torch.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def default_lock_dir() -> Path:
    user = os.environ.get("USER") or str(os.getuid())
    return Path(tempfile.gettempdir()) / f"facebench-gpu-locks-{user}"


@contextlib.contextmanager
def claim_gpu(
    gpus: Sequence[str],
    lock_dir: Path | None = None,
    timeout: float = 3600.0,
    poll: float = 0.5,
) -> Iterator[str]:
    """Hold an exclusive lock on one of ``gpus`` for the duration of the block.

    Yields the device identifier (as listed in ``gpus``). Waits while all are
    taken, up to ``timeout`` seconds, then raises ``TimeoutError``.
    """
    if not gpus:
        raise ValueError("claim_gpu needs at least one GPU identifier")
    lock_dir = Path(lock_dir) if lock_dir else default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        for gpu in gpus:
            handle = open(lock_dir / f"gpu-{gpu}.lock", "a+")  # noqa: SIM115 (held across yield)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                handle.seek(0)
                handle.truncate()
                handle.write(f"{os.getpid()}\n")
                handle.flush()
                yield gpu
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no free GPU among {list(gpus)} after {timeout:.0f} s (locks in {lock_dir})"
            )
        time.sleep(poll)


@contextlib.contextmanager
def job_device(wants_gpu: bool, lock_dir: Path | None = None) -> Iterator[str]:
    """The torch device string a job should use: ``cuda:N`` on its own GPU, else ``cpu``.

    ``N`` indexes the devices visible to the process. ``CUDA_VISIBLE_DEVICES`` is
    not narrowed here: once CUDA has been queried, changing it has no effect.
    """
    gpus = visible_gpus() if wants_gpu else []
    if not gpus:
        if wants_gpu:
            log.info("no CUDA device visible: running on the CPU")
        yield "cpu"
        return
    with claim_gpu(gpus, lock_dir) as gpu:
        log.info("running on GPU %s (of %s)", gpu, ",".join(gpus))
        yield f"cuda:{gpus.index(gpu)}"


def limit_cpu_threads(device: str, threads: int | None) -> None:
    """Give torch ``threads`` CPU threads when it computes on the CPU (the job's
    ``threads``); None leaves torch's default, every core, whose idle threads spin
    and cost CPU time when jobs share the cores."""
    if threads and str(device) == "cpu":
        import torch

        torch.set_num_threads(int(threads))
