"""GLEAN (Chan et al., CVPR 2021): large-factor super-resolution with a StyleGAN2 latent bank.

The network is OpenMMLab's ``GLEANStyleGANv2`` (mmediting 0.x, kept unchanged
by mmagic), the generator of the published ``glean_ffhq_16x`` checkpoint
(FFHQ, 64 -> 1024 px). Key layout (below the checkpoint's ``generator.``):

- ``generator.*``: a StyleGAN2 generator (``pipeline.upscale.stylegan2``),
  pretrained on FFHQ and fine-tuned with the rest.
- ``encoder.0``: ``0`` an RRDB feature extractor (``conv_first``,
  ``body.N.rdb{1,2,3}.conv{1..5}``: ESRGAN's blocks, ``conv_body`` with a long
  skip), ``1`` a 3x3 conv to the latent bank's channels at the input size
  (LeakyReLU 0.2 after it). Then one block per halving of the resolution down
  to 4 px: ``encoder.i.{0,2}`` a stride-2 3x3 conv and a 3x3 conv (LeakyReLU
  after each); the last block (at 4 px) is ``encoder.i.0`` a 3x3 conv and
  ``encoder.i.3`` a linear layer from the flattened 4x4 features to all
  ``2 log2(out) - 2`` latents of the generator (18 x 512 for 1024 px).
- ``fusion_out.k`` / ``fusion_skip.k`` (k for 4 px ... the input size): 3x3
  convs that merge the encoder's features at that size into the generator's
  features (2C -> C) and into its RGB skip image (C + 3 -> 3) before each
  upsampling.
- ``decoder.j``: from the input size up, ``upsample_conv`` (3x3 conv to 4x the
  output channels, then PixelShuffle(2)) on the concatenation of the previous
  output and the generator's features at that size; at the output size a 3x3
  conv to 64, LeakyReLU 0.2, a 3x3 conv to RGB (``decoder.j.{0,2}``).

The generator's latents come from the encoder and its noise maps are the
stored ``injected_noise_*``, so the output is deterministic. Two parts of the
file are loaded but never run, as in OpenMMLab's forward pass: the mapping MLP
(``generator.style_mapping``) and the generator's RGB layers above the input
size (their image is not used; this forward skips them).

Sizes are read off the checkpoint: the input size (``in_size``, from the
number of fusion layers), the output size (from the number of RGB layers),
the channels per resolution, the style width, the encoder's RRDB width, growth
and depth. The input must be exactly ``in_size`` pixels: the method brings
each low-resolution image to it with its ``input_kernel`` (``NetworkUpscaler``
``input_size``).

Value ranges: OpenMMLab trains GLEAN on RGB images normalised to [-1, 1]
(``(x - 0.5) / 0.5``; mmediting 0.x ``Normalize`` with ``to_rgb=True``, mmagic
``DataPreprocessor`` mean = std = 127.5) and maps its outputs back with
``(y + 1) / 2``; the forward here does both.

The published checkpoint also holds the StyleGAN2 discriminator
(``discriminator.``) and the perceptual loss's VGG16 (``perceptual_loss.``),
dropped by name; any other key fails strict loading. spandrel (0.4) has no
GLEAN architecture.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.io import InputError
from pipeline.upscale import openmmlab
from pipeline.upscale.rrdbnet import RGB, RRDB
from pipeline.upscale.stylegan2 import StyleGAN2Generator
from pipeline.upscale.torch_runtime import NetworkUpscaler, load_strict, read_state_dict

log = logging.getLogger(__name__)

# Training-only parts of OpenMMLab's GLEAN model (an SRGAN): discriminator and VGG loss.
TRAINING_ONLY = openmmlab.GAN_TRAINING_ONLY
# The width of the decoder's last hidden layer (fixed in OpenMMLab's GLEAN).
DECODER_WIDTH = 64


def lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


class RRDBFeatureExtractor(nn.Module):
    """ESRGAN's trunk without its upsampling: head conv, RRDBs, trunk conv with a long skip."""

    def __init__(self, width: int = 64, num_blocks: int = 23, growth: int = 32) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(RGB, width, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(width, growth) for _ in range(num_blocks)))
        self.conv_body = nn.Conv2d(width, width, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        return feat + self.conv_body(self.body(feat))


class PixelShuffleUp(nn.Module):
    """3x3 conv to 4x ``cout`` channels, then PixelShuffle(2) (no activation)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.upsample_conv = nn.Conv2d(cin, cout * 4, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.upsample_conv(x), 2)


def _levels(low: int, high: int) -> list[int]:
    """Resolutions low, 2 low, ..., high."""
    return [2**level for level in range(int(math.log2(low)), int(math.log2(high)) + 1)]


class GLEANStyleGANv2(nn.Module):
    """GLEAN's encoder, StyleGAN2 latent bank and decoder (module docstring); [-1, 1] in and out."""

    def __init__(
        self,
        in_size: int = 64,
        out_size: int = 1024,
        style_channels: int = 512,
        channels: Mapping[int, int] | None = None,
        num_mlps: int = 8,
        rrdb_channels: int = 64,
        num_rrdbs: int = 23,
        rrdb_growth: int = 32,
    ) -> None:
        super().__init__()
        if not 4 < in_size < out_size or 2 ** int(math.log2(in_size)) != in_size:
            raise ValueError(
                f"GLEAN: in_size must be a power of two above 4 and below out_size "
                f"({out_size}), got {in_size}"
            )
        self.in_size = in_size
        self.style_channels = style_channels
        self.generator = StyleGAN2Generator(out_size, style_channels, channels, num_mlps)
        width = self.generator.channels
        num_latents = self.generator.num_latents

        self.encoder = nn.ModuleList(
            [
                nn.Sequential(
                    RRDBFeatureExtractor(rrdb_channels, num_rrdbs, rrdb_growth),
                    nn.Conv2d(rrdb_channels, width[in_size], 3, 1, 1),
                    lrelu(),
                )
            ]
        )
        for res in reversed(_levels(4, in_size)):
            if res > 4:
                block = nn.Sequential(
                    nn.Conv2d(width[res], width[res // 2], 3, 2, 1),
                    lrelu(),
                    nn.Conv2d(width[res // 2], width[res // 2], 3, 1, 1),
                    lrelu(),
                )
            else:
                block = nn.Sequential(
                    nn.Conv2d(width[4], width[4], 3, 1, 1),
                    lrelu(),
                    nn.Flatten(),
                    nn.Linear(16 * width[4], num_latents * style_channels),
                )
            self.encoder.append(block)

        self.fusion_out = nn.ModuleList(
            nn.Conv2d(2 * width[res], width[res], 3, 1, 1) for res in _levels(4, in_size)
        )
        self.fusion_skip = nn.ModuleList(
            nn.Conv2d(width[res] + RGB, RGB, 3, 1, 1) for res in _levels(4, in_size)
        )
        self.decoder = nn.ModuleList()
        for res in _levels(in_size, out_size):
            cin = width[res] if res == in_size else 2 * width[res]
            if res < out_size:
                self.decoder.append(PixelShuffleUp(cin, width[res * 2]))
            else:
                self.decoder.append(
                    nn.Sequential(
                        nn.Conv2d(cin, DECODER_WIDTH, 3, 1, 1),
                        lrelu(),
                        nn.Conv2d(DECODER_WIDTH, RGB, 3, 1, 1),
                    )
                )

    @property
    def scale(self) -> int:
        return self.generator.out_size // self.in_size

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        if lq.shape[-2:] != (self.in_size, self.in_size):
            raise ValueError(
                f"GLEAN takes {self.in_size} x {self.in_size} inputs, got {tuple(lq.shape[-2:])}"
            )
        features = []
        feat = lq
        for block in self.encoder:
            feat = block(feat)
            features.append(feat)
        # Deepest first: the latents, then the features at 4, 8, ..., in_size px.
        latent = features[-1].view(lq.shape[0], -1, self.style_channels)
        encoded = features[-2::-1]

        bank = self.generator
        noises = bank.injected_noises()
        out = bank.conv1(bank.constant_input(lq.shape[0]), latent[:, 0], noises[0])
        skip = bank.to_rgb1(out, latent[:, 1])
        generated = []
        for level, (up_conv, conv, to_rgb) in enumerate(
            zip(bank.convs[::2], bank.convs[1::2], bank.to_rgbs, strict=True)
        ):
            index = 1 + 2 * level
            if out.shape[-1] <= self.in_size:
                out = self.fusion_out[level](torch.cat([out, encoded[level]], 1))
                skip = self.fusion_skip[level](torch.cat([skip, encoded[level]], 1))
            out = up_conv(out, latent[:, index], noises[index])
            out = conv(out, latent[:, index + 1], noises[index + 1])
            if out.shape[-1] > self.in_size:
                # Above the input size the RGB image feeds nothing.
                generated.append(out)
            else:
                skip = to_rgb(out, latent[:, index + 2], skip)

        hr = encoded[-1]
        for step, block in enumerate(self.decoder):
            if step > 0:
                hr = torch.cat([hr, generated[step - 1]], 1)
            hr = block(hr)
        return hr


def _count(state: Mapping[str, Any], pattern: str) -> int:
    compiled = re.compile(pattern)
    indices = {int(m.group(1)) for key in state if (m := compiled.match(key))}
    return max(indices) + 1 if indices else 0


def hyperparameters(state: Mapping[str, torch.Tensor], path: str | Path) -> dict[str, Any]:
    """GLEANStyleGANv2 constructor arguments read off a state dict (``generator.`` removed)."""
    needed = (
        "generator.constant_input.input",
        "generator.style_mapping.1.linear.weight_orig",
        "encoder.0.0.conv_first.weight",
        "encoder.0.0.body.0.rdb1.conv1.weight",
    )
    for key in needed:
        if key not in state:
            first = ", ".join(list(state)[:5])
            raise InputError(
                path,
                f"not a GLEAN (GLEANStyleGANv2) checkpoint: no {key}; expected OpenMMLab's "
                f"layout ([generator.]generator.style_mapping..., encoder.0.0.body...); "
                f"first keys: {first}",
            )
    num_rgbs = _count(state, r"generator\.to_rgbs\.(\d+)\.")
    out_size = 2 ** (num_rgbs + 2)
    num_fusions = _count(state, r"fusion_out\.(\d+)\.")
    in_size = 2 ** (num_fusions + 1)
    channels = {4: int(state["generator.constant_input.input"].shape[1])}
    for level in range(num_rgbs):
        key = f"generator.convs.{2 * level}.conv.weight_orig"
        if key not in state:
            raise InputError(path, f"GLEAN checkpoint without {key}")
        channels[2 ** (level + 3)] = int(state[key].shape[1])
    return {
        "in_size": in_size,
        "out_size": out_size,
        "style_channels": int(state["generator.style_mapping.1.linear.weight_orig"].shape[1]),
        "channels": channels,
        "num_mlps": _count(state, r"generator\.style_mapping\.(\d+)\.") - 1,
        "rrdb_channels": int(state["encoder.0.0.conv_first.weight"].shape[0]),
        "num_rrdbs": _count(state, r"encoder\.0\.0\.body\.(\d+)\."),
        "rrdb_growth": int(state["encoder.0.0.body.0.rdb1.conv1.weight"].shape[0]),
    }


def load_glean(path: str | Path) -> GLEANStyleGANv2:
    """GLEAN from an OpenMMLab checkpoint (or a bare generator state), strictly, in eval mode."""
    state = read_state_dict(path)
    prefixed = openmmlab.is_openmmlab_model(state, TRAINING_ONLY)
    if prefixed:
        state = openmmlab.generator_weights(state, path, TRAINING_ONLY)
    params = hyperparameters(state, path)
    net = GLEANStyleGANv2(**params)
    what = "GLEANStyleGANv2" + (
        " (key names below the file's generator. prefix)" if prefixed else ""
    )
    load_strict(net, {key: value.float() for key, value in state.items()}, path, what)
    shown = {k: v for k, v in params.items() if k != "channels"}
    log.info("loaded GLEAN %s from %s", shown, path)
    return net.eval()


def make_forward(net: GLEANStyleGANv2):
    """RGB in [0, 1] -> GLEAN's [-1, 1] convention and back."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        return (net(x * 2.0 - 1.0) + 1.0) / 2.0

    return forward


def upscaler(net: GLEANStyleGANv2, options: Mapping[str, Any], device: str) -> NetworkUpscaler:
    """The ``Upscaler`` around a GLEAN network (already on ``device``), options as in
    ``specs.face_sr``: its input size and scale are the network's."""
    return NetworkUpscaler.of_method(
        options, make_forward(net), net, net.scale, device, input_size=net.in_size
    )


def build(options: Mapping[str, Any], device: str) -> NetworkUpscaler:
    """The ``glean`` method: options as declared in ``pipeline.upscale.specs.face_sr``."""
    return upscaler(load_glean(options["weights_path"]).to(device), options, device)
