"""Reading PyTorch weight files safely, with errors that name the file.

Only ``torch.load(weights_only=True)`` is used: its unpickler builds tensors,
containers and plain Python values and refuses every other global, so no code
stored in a file runs. Training checkpoints (OpenMMLab's, BasicSR's training
states) add a ``meta`` entry beside the weights that may hold numpy scalars
(an iteration count, a best score), which the plain weights-only loader
refuses; ``NUMPY_SAFE_GLOBALS`` lets exactly those data types through: numpy's
scalar constructor and its dtypes, which build numbers, never call code.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pipeline.io import InputError


@cache
def numpy_safe_globals() -> list[Any]:
    """The numpy globals a weights-only load may meet in a checkpoint's metadata.

    ``numpy.core.multiarray.scalar`` (the name pickles written with numpy 1
    use; ``numpy._core`` under numpy 2) rebuilds a numpy scalar from its dtype
    and raw bytes; ``numpy.dtype`` and the concrete dtype classes describe it.
    Entries are ``(object, "module.name")`` pairs where a pickle may spell the
    name differently from the object's own module.
    """
    import numpy as np

    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    allowed: list[Any] = [
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
    ]
    names = ("Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64")
    names += ("Float16", "Float32", "Float64", "LongDouble")
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25
    if dtypes is not None:
        allowed += [getattr(dtypes, f"{name}DType") for name in names]
    return allowed


def load_weights_file(path: str | Path, what: str = "checkpoint", hint: str = "") -> Any:
    """``torch.load`` with ``weights_only`` (no pickled code runs), onto the CPU.

    numpy scalars and dtypes (``numpy_safe_globals``) are accepted; any other
    non-tensor object is refused. A missing file raises ``InputError("<path>:
    <what> not found")``; one that cannot be read raises ``InputError("<path>:
    cannot be read as a weights-only PyTorch <what> (...)")``, with ``hint``
    appended to either.
    """
    import torch

    path = Path(path)
    suffix = f"; {hint}" if hint else ""
    if not path.is_file():
        raise InputError(path, f"{what} not found{suffix}")
    try:
        with torch.serialization.safe_globals(numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        problem = f"{exc.__class__.__name__}: {_first_line(exc)}"
        refused = _refused_globals(path)
        if refused:
            problem = (
                f"it holds pickled objects of {', '.join(refused)}, which a weights-only load "
                "refuses because unpickling them could run code; save the state dict alone "
                "(torch.save(model.state_dict(), ...)) from a trusted environment"
            )
        raise InputError(
            path, f"cannot be read as a weights-only PyTorch {what} ({problem}){suffix}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    """The message's first line that says something (torch's start with generic advice)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "Unsupported global" in line or "Weights only load failed" not in line:
            return line
    return lines[0] if lines else ""


def _refused_globals(path: Path) -> list[str]:
    """Globals in the file a weights-only load refuses (none for a truncated or foreign file)."""
    import torch

    allowed = {
        entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__name__}"
        for entry in numpy_safe_globals()
    }
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint, or unreadable: nothing to name
        return []
    return sorted(name for name in found if name not in allowed)
