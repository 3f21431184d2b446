"""Tiny, randomly initialised checkpoints in the published key layouts, for offline tests.

They test the plumbing (loading, batching, shapes, facts), not image quality.
The OpenMMLab layout is written out here from the upstream names (mmagic's
``sr_resnet.py``, ``upsample.py``, ``sr_backbone.py``), not through
``pipeline``'s own network, so that a wrong name there is caught.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.upscale.rrdbnet import RRDBNet
from pipeline.upscale.stylegan import StyleGANMapping, StyleGANSynthesis


def mmedit_generator(num_feat: int, num_block: int, seed: int, in_ch: int = 3) -> dict:
    """Random weights under the names of OpenMMLab's MSRResNet (x4)."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {"conv_first": (num_feat, in_ch)}
    for index in range(num_block):
        shapes[f"trunk_net.{index}.conv1"] = (num_feat, num_feat)
        shapes[f"trunk_net.{index}.conv2"] = (num_feat, num_feat)
    shapes["upsample1.upsample_conv"] = (4 * num_feat, num_feat)
    shapes["upsample2.upsample_conv"] = (4 * num_feat, num_feat)
    shapes["conv_hr"] = (num_feat, num_feat)
    shapes["conv_last"] = (3, num_feat)
    state = {}
    for module, (cout, cin) in shapes.items():
        state[f"{module}.weight"] = (torch.rand(cout, cin, 3, 3, generator=generator) - 0.5) * 0.3
        state[f"{module}.bias"] = (torch.rand(cout, generator=generator) - 0.5) * 0.1
    return state


def srgan_training_keys(seed: int) -> dict:
    """Discriminator (ModifiedVGG) and perceptual-loss VGG keys, as an SRGAN model holds them."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "discriminator.conv0_0.weight": torch.rand(4, 3, 3, 3, generator=generator),
        "discriminator.linear2.bias": torch.rand(1, generator=generator),
        "perceptual_loss.vgg.vgg_layers.0.weight": torch.rand(4, 3, 3, 3, generator=generator),
        "perceptual_loss.vgg.mean": torch.rand(1, 3, 1, 1, generator=generator),
    }


def openmmlab_checkpoint(generator: dict, extra: dict | None = None) -> dict:
    """A checkpoint as OpenMMLab saves one: ``meta`` (numpy scalars included) and the
    model's ``state_dict``, the generator's keys under ``generator.``."""
    state = {f"generator.{key}": value for key, value in generator.items()}
    meta = {"iter": np.int64(300000), "epoch": 1, "best_psnr": np.float64(30.2), "time": "x"}
    return {"meta": meta, "state_dict": {**state, **(extra or {})}}


def save_legacy_numpy1(content: object, path: Path) -> None:
    """Save as PyTorch < 1.6 did (the 2020 OpenMMLab files), numpy scalars named as numpy 1 does.

    The legacy format is a plain pickle stream, so the module path of numpy's
    scalar constructor can be rewritten in place.
    """
    torch.save(content, path, _use_new_zipfile_serialization=False)
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))


def write_tiny_checkpoints(folder: Path) -> dict[str, Path]:
    """Write one checkpoint per network under ``folder``; return name -> path.

    The layouts of the default methods' files: OpenMMLab MSRResNet and SRGAN
    (the latter in the legacy format, with the discriminator and loss network
    beside the generator), BasicSR ``params`` for ESRGAN, PULSE's state dicts.
    """
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    networks = {
        "esrgan_tiny": {"params": RRDBNet(num_feat=8, num_block=1, num_grow_ch=4).state_dict()},
        "srresnet_tiny": openmmlab_checkpoint(mmedit_generator(8, 1, seed=1)),
        "pulse_synthesis_tiny": StyleGANSynthesis(resolution=32, fmap_max=32).state_dict(),
        "pulse_mapping_tiny": StyleGANMapping().state_dict(),
    }
    paths = {}
    for name, state in networks.items():
        paths[name] = folder / f"{name}.pth"
        torch.save(state, paths[name])
    paths["srgan_tiny"] = folder / "srgan_tiny.pth"
    srgan = openmmlab_checkpoint(mmedit_generator(8, 1, seed=2), srgan_training_keys(3))
    save_legacy_numpy1(srgan, paths["srgan_tiny"])
    return paths
