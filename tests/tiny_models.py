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


# GFPGAN's ResNetArcFace(block="IRBlock", layers=(2, 2, 2, 2), use_se=False):
# (stage, channels in, channels out, stride) of each stage's first block.
ARCFACE_STAGES = ((1, 64, 64, 1), (2, 64, 128, 2), (3, 128, 256, 2), (4, 256, 512, 2))


def arcface_resnet18_state(seed: int, dtype: torch.dtype = torch.float32) -> dict:
    """Random weights under the names of GFPGAN's ``arcface_resnet18.pth``, written out
    from the upstream module names (``gfpgan/archs/arcface_arch.py``), not through
    ``pipeline``'s network: saved through ``DataParallel`` (``module.`` keys) and, as a
    file of PyTorch before 0.4.1, without BN's ``num_batches_tracked``."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, cout: int, cin: int, k: int) -> None:
        scale = (cin * k * k) ** -0.5
        state[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=generator) * scale

    def norm(name: str, channels: int) -> None:
        state[f"{name}.weight"] = 1 + 0.1 * torch.randn(channels, generator=generator)
        state[f"{name}.bias"] = 0.1 * torch.randn(channels, generator=generator)
        state[f"{name}.running_mean"] = 0.1 * torch.randn(channels, generator=generator)
        state[f"{name}.running_var"] = 0.5 + torch.rand(channels, generator=generator)

    def prelu(name: str) -> None:
        state[f"{name}.weight"] = torch.full((1,), 0.25) + 0.01 * torch.rand(1, generator=generator)

    conv("conv1", 64, 1, 3)
    norm("bn1", 64)
    prelu("prelu")
    for stage, cin, cout, stride in ARCFACE_STAGES:
        for block, channels in enumerate((cin, cout)):
            name = f"layer{stage}.{block}"
            norm(f"{name}.bn0", channels)
            conv(f"{name}.conv1", channels, channels, 3)
            norm(f"{name}.bn1", channels)
            prelu(f"{name}.prelu")
            conv(f"{name}.conv2", cout, channels, 3)
            norm(f"{name}.bn2", cout)
            if block == 0 and (stride != 1 or cin != cout):
                conv(f"{name}.downsample.0", cout, cin, 1)
                norm(f"{name}.downsample.1", cout)
    norm("bn4", 512)
    state["fc5.weight"] = torch.randn(512, 512 * 8 * 8, generator=generator) * (512 * 64) ** -0.5
    state["fc5.bias"] = 0.01 * torch.randn(512, generator=generator)
    norm("bn5", 512)
    return {f"module.{key}": value.to(dtype) for key, value in state.items()}


def write_arcface_checkpoint(path: Path, seed: int = 0, dtype: torch.dtype = torch.float16) -> Path:
    """:func:`arcface_resnet18_state` saved at ``path`` (float16 by default: 51 MB, not 102)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(arcface_resnet18_state(seed, dtype), path)
    return path
