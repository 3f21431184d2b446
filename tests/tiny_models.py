"""Tiny, randomly initialised checkpoints of every network, for offline workflow runs.

They test the plumbing (loading, batching, shapes, facts), not image quality.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.upscale.rrdbnet import RRDBNet
from pipeline.upscale.srresnet import SRResNet
from pipeline.upscale.stylegan import StyleGANMapping, StyleGANSynthesis


def write_tiny_checkpoints(folder: Path) -> dict[str, Path]:
    """Write one checkpoint per network under ``folder``; return name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    networks = {
        # The layouts the published checkpoints use (BasicSR params_ema; tutorial SRResNet).
        "esrgan_tiny": {"params_ema": RRDBNet(num_feat=8, num_block=1, num_grow_ch=4).state_dict()},
        "srresnet_tiny": SRResNet(4, 8, 1, tanh=True).state_dict(),
        "srgan_tiny": SRResNet(4, 8, 1, tanh=True).state_dict(),
        "pulse_synthesis_tiny": StyleGANSynthesis(resolution=32, fmap_max=32).state_dict(),
        "pulse_mapping_tiny": StyleGANMapping().state_dict(),
    }
    paths = {}
    for name, state in networks.items():
        paths[name] = folder / f"{name}.pth"
        torch.save(state, paths[name])
    return paths
