"""What machine a benchmark ran on, for the JSON it writes."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    """The GPU's name for a CUDA device, else the CPU's."""
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_name()


def run_facts(load_before: tuple[float, float, float]) -> dict:
    """Machine, software and load facts of a torch benchmark run, taken when it ends.

    ``load_before`` is ``os.getloadavg()`` from the run's start: other processes
    on the machine slow every figure down, so the load is kept with them.
    """
    import torch

    return {
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
