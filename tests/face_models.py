"""Random-weight face restoration checkpoints at the published size, for offline tests.

spandrel's networks at the hyperparameters of the published files
(``pipeline.upscale.face_restoration.PUBLISHED``; spandrel's loader infers
CodeFormer's and RestoreFormer's from the tensors' shapes and fixes GFPGAN's),
saved as BasicSR saves them: the state dict under ``params_ema`` (GFPGAN,
CodeFormer, whose inference scripts read that key) or ``params``
(RestoreFormer here, so that both wrappers are read). About 1 GB in all and
10 s of CPU to make: made once per session (``conftest.face_checkpoints``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.upscale.face_restoration import untrained

# Method architecture -> (file name, wrapper key).
FILES = {
    "gfpgan": ("GFPGANv1.4.pth", "params_ema"),
    "codeformer": ("codeformer.pth", "params_ema"),
    "restoreformer": ("RestoreFormer.pth", "params"),
}


def write_face_checkpoints(folder: Path) -> dict[str, Path]:
    """Write one checkpoint per architecture under ``folder``; return arch -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for index, (arch, (name, wrapper)) in enumerate(FILES.items()):
        torch.manual_seed(index)
        paths[arch] = folder / name
        torch.save({wrapper: untrained(arch).state_dict()}, paths[arch])
    return paths
