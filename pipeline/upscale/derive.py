"""The derive stage: a file an architecture computes once from one of its checkpoints.

See :class:`pipeline.upscale.arch.DerivedWeights` (PULSE's Gaussian fit of its
mapping network).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.upscale import DERIVED


def derive_weights(
    slot: str, source: str | Path, out: str | Path, options: Mapping[str, Any], threads: int = 1
) -> None:
    """Make the derived file of weight slot ``slot`` from checkpoint ``source`` at ``out``.

    ``options`` is the config section the declaration names (``config_key``).
    """
    if slot not in DERIVED:
        raise KeyError(
            f"no architecture derives weights for slot {slot!r}; known: {sorted(DERIVED)}"
        )
    DERIVED[slot].make(str(source), str(out), options, int(threads))
