"""Reading PyTorch weight files safely, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.io import InputError


def load_weights_file(path: str | Path, what: str = "checkpoint", hint: str = "") -> Any:
    """``torch.load`` with ``weights_only`` (no pickled code runs), onto the CPU.

    A missing file raises ``InputError("<path>: <what> not found")``; one that
    cannot be read raises ``InputError("<path>: cannot be read as a weights-only
    PyTorch <what> (...)")``, with ``hint`` appended to either.
    """
    import torch

    path = Path(path)
    suffix = f"; {hint}" if hint else ""
    if not path.is_file():
        raise InputError(path, f"{what} not found{suffix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        problem = f"{exc.__class__.__name__}: {first_line}"
        raise InputError(
            path, f"cannot be read as a weights-only PyTorch {what} ({problem}){suffix}"
        ) from exc
