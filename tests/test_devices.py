"""GPU claims: concurrent jobs never share a device."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from pipeline.devices import claim_gpu, job_device


def _hold(lock_dir: str, gpus: list[str], hold: float, queue) -> None:
    with claim_gpu(gpus, Path(lock_dir), timeout=30, poll=0.05) as gpu:
        began = time.monotonic()
        time.sleep(hold)
        queue.put((gpu, began, time.monotonic()))


def test_concurrent_jobs_get_distinct_devices(tmp_path):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [
        context.Process(target=_hold, args=(str(tmp_path), ["0", "1"], 1.0, queue))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    spans = [queue.get(timeout=5) for _ in workers]
    assert {gpu for gpu, _, _ in spans} == {"0", "1"}
    for i, (gpu_a, start_a, end_a) in enumerate(spans):
        for gpu_b, start_b, end_b in spans[i + 1 :]:
            if gpu_a == gpu_b:  # the same device was used one job after the other
                assert end_a <= start_b or end_b <= start_a


def test_claim_times_out_when_all_taken(tmp_path):
    with (
        claim_gpu(["0"], tmp_path),
        pytest.raises(TimeoutError, match="no free GPU"),
        claim_gpu(["0"], tmp_path, timeout=0.2, poll=0.05),
    ):
        pass


def test_lock_released_after_crash(tmp_path):
    with pytest.raises(RuntimeError), claim_gpu(["0"], tmp_path):
        raise RuntimeError("job crashed")
    with claim_gpu(["0"], tmp_path, timeout=0.2) as gpu:
        assert gpu == "0"


def test_cpu_when_no_gpu_wanted_or_visible(tmp_path):
    with job_device(False, tmp_path) as device:
        assert device == "cpu"
