"""Small random-weight DIC and GLEAN checkpoints in OpenMMLab's published wrapper (offline tests).

The networks are ``pipeline``'s own at reduced sizes (their loaders read the
sizes off the file); the wrapper is OpenMMLab's: ``meta`` and the model's
``state_dict`` with the generator under ``generator.`` beside the parts the
published files hold for training only (DIC: ``img_denormalize``,
``step_counter``; GLEAN: discriminator and perceptual-loss VGG keys).
Each takes well under a second of CPU per 16 px image.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tiny_models import openmmlab_checkpoint

from pipeline.upscale.dic import MEAN, DICNet
from pipeline.upscale.glean import GLEANStyleGANv2

TINY_DIC = {
    "mid_channels": 8,
    "num_blocks": 2,
    "hg_mid_channels": 16,
    "hg_num_keypoints": 68,
    "num_fusion_blocks": 1,
}
TINY_GLEAN = {
    "in_size": 8,
    "out_size": 32,
    "style_channels": 8,
    "channels": {4: 16, 8: 16, 16: 8, 32: 4},
    "num_mlps": 2,
    "rrdb_channels": 8,
    "num_rrdbs": 1,
    "rrdb_growth": 4,
}


def randomized(net: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """The state dict with small random values (FIR kernels kept: they are constants)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in net.state_dict().items():
        if key.endswith("kernel"):
            state[key] = value.clone()
        else:
            state[key] = (torch.rand(value.shape, generator=generator) - 0.5) * 0.4
    return state


def dic_checkpoint(seed: int, extra: dict | None = None) -> dict:
    """A small DIC in the layout of ``dic_x8c48b6_g4_150k_CelebAHQ``."""
    wrapper = {
        "img_denormalize.weight": torch.eye(3).view(3, 3, 1, 1),
        "img_denormalize.bias": torch.tensor(MEAN),
        "step_counter": torch.tensor([150000.0]),
    }
    return openmmlab_checkpoint(randomized(DICNet(**TINY_DIC), seed), {**wrapper, **(extra or {})})


def glean_checkpoint(seed: int, extra: dict | None = None) -> dict:
    """A small GLEAN (8 -> 32 px) in the layout of ``glean_ffhq_16x``."""
    training = {
        "discriminator.convs.0.0.weight_orig": torch.zeros(4, 3, 1, 1),
        "perceptual_loss.vgg.vgg_layers.0.weight": torch.zeros(4, 3, 3, 3),
        "perceptual_loss.vgg.mean": torch.zeros(1, 3, 1, 1),
    }
    state = randomized(GLEANStyleGANv2(**TINY_GLEAN), seed)
    return openmmlab_checkpoint(state, {**training, **(extra or {})})


def write_face_sr_checkpoints(folder: Path) -> dict[str, Path]:
    """Write a small DIC and GLEAN under ``folder``; return arch -> path.

    The names carry no hash suffix: the weights stage would check a
    ``-<8 hex>.pth`` name against the file's sha256.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"dic": folder / "dic_random.pth", "glean": folder / "glean_random.pth"}
    torch.save(dic_checkpoint(1), paths["dic"])
    torch.save(glean_checkpoint(2), paths["glean"])
    return paths
