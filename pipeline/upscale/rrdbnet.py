"""ESRGAN's RRDBNet generator (x4) and its published checkpoint layouts.

The network follows BasicSR's ``RRDBNet`` (the one Real-ESRGAN uses): a 3x3
head, ``num_block`` residual-in-residual dense blocks (three dense blocks of
five 3x3 convolutions each, LeakyReLU 0.2, residuals scaled by 0.2), a 3x3
trunk convolution with a long skip, two nearest-neighbour x2 upsamplings each
followed by a 3x3 convolution and LeakyReLU, then ``conv_hr`` and
``conv_last``. Input: RGB NCHW in [0, 1]; output: RGB, four times larger,
nominally in [0, 1] (clamped by the caller).

Three key layouts of the same network load (all converted to BasicSR's names,
then loaded strictly):

- ``basicsr``: BasicSR / Real-ESRGAN (``conv_first``, ``body.N.rdb1.conv1``,
  ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``),
  usually wrapped in ``params_ema`` or ``params``.
- ``esrgan``: the ESRGAN repository since 2019 and BSRGAN (``RRDB_trunk.N.RDB1.conv1``,
  ``trunk_conv``, ``upconv1``, ``upconv2``, ``HRconv``).
- ``esrgan-2018``: the original ESRGAN release (``model.0``,
  ``model.1.sub.N.RDB1.conv1.0``, ``model.1.sub.<num_block>``, ``model.3``,
  ``model.6``, ``model.8``, ``model.10``).

Not supported, with a clear error: BasicSR's pixel-unshuffle variants for
scale 2 and 1 (e.g. Real-ESRGAN x2plus), x8 variants with a third upsampling
stage, and ESRGAN+ (extra 1x1 convolutions).

Written here rather than taken from spandrel (which also reads these
layouts): spandrel renames BasicSR keys into the 2018 layout and silently drops
keys it does not know, so a foreign or damaged checkpoint could load; here
every layout must match the network exactly, and errors name the file and the
keys in the layout of the file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.io import InputError
from pipeline.upscale.torch_runtime import (
    NetworkUpscaler,
    identify,
    load_strict,
    read_state_dict,
)

log = logging.getLogger(__name__)

SCALE = 4


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convolutions; output scaled by 0.2 plus the input."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        for index in range(1, 5):
            width = num_feat + (index - 1) * num_grow_ch
            self.add_module(f"conv{index}", nn.Conv2d(width, num_grow_ch, 3, 1, 1))
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            features.append(self.lrelu(conv(torch.cat(features, 1))))
        return self.conv5(torch.cat(features, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks, residual scaled by 0.2."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


# Channels of the images every network here takes and makes.
RGB = 3


class RRDBNet(nn.Module):
    """ESRGAN generator, x4, with BasicSR's parameter names (see the module docstring)."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        scale: int = SCALE,
    ) -> None:
        super().__init__()
        if scale != SCALE:
            raise ValueError(
                f"RRDBNet: scale {scale} is not supported (only x4; the pixel-unshuffle "
                "x1/x2 variants are not implemented)"
            )
        self.scale = scale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


# The 2019 ESRGAN names -> BasicSR names (prefix replacements).
_ESRGAN_2019 = {
    "RRDB_trunk.": "body.",
    "trunk_conv.": "conv_body.",
    "upconv1.": "conv_up1.",
    "upconv2.": "conv_up2.",
    "HRconv.": "conv_hr.",
}
# Indices of the 2018 layout's top-level sequential (x4): head, shortcut
# (RRDBs + trunk conv), upsample/conv/lrelu twice, HR conv, lrelu, last conv.
_ESRGAN_2018 = {
    "0": "conv_first",
    "3": "conv_up1",
    "6": "conv_up2",
    "8": "conv_hr",
    "10": "conv_last",
}
_OLD_RDB = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_OLD_TRUNK = re.compile(r"model\.1\.sub\.(\d+)\.(weight|bias)$")
_OLD_TOP = re.compile(r"model\.(\d+)\.(weight|bias)$")


def checkpoint_layout(state: Mapping[str, Any]) -> str | None:
    """``basicsr``, ``esrgan``, ``esrgan-2018``, or ``None`` for none of the RRDBNet layouts."""
    if "conv_first.weight" in state and any(
        key.startswith("body.") and ".rdb1." in key for key in state
    ):
        return "basicsr"
    if "conv_first.weight" in state and any(key.startswith("RRDB_trunk.") for key in state):
        return "esrgan"
    if "model.0.weight" in state and any(_OLD_RDB.match(key) for key in state):
        return "esrgan-2018"
    return None


def foreign_hint(state: Mapping[str, Any]) -> str:
    """`` (it holds ...)`` naming what a non-RRDBNet checkpoint looks like, or ``""``."""
    if "conv_block1.conv_block.0.weight" in state or "net.conv_block1.conv_block.0.weight" in state:
        return " (it holds an SRResNet: use arch srresnet or srgan)"
    if {"conv_first.weight", "body.0.conv1.weight", "upconv1.weight"} <= set(state):
        return " (it holds a BasicSR MSRResNet: use arch srresnet, variant msrresnet)"
    names = {key.removeprefix("generator.") for key in state}
    if {"trunk_net.0.conv1.weight", "upsample1.upsample_conv.weight"} <= names:
        return " (it holds an OpenMMLab MSRResNet: use arch srresnet or srgan, variant mmedit)"
    if state and all(key.startswith("discriminator.") for key in state):
        return " (it holds only a GAN discriminator, no generator)"
    found = identify(state)
    return f" (spandrel identifies it as {found!r})" if found else ""


def from_esrgan_2018(state: Mapping[str, torch.Tensor], path: str | Path) -> dict[str, Any]:
    """Rename the original (2018) ESRGAN keys to BasicSR's; unknown keys are kept as they are.

    Only the x4 layout is accepted (top-level indices 0, 1, 3, 6, 8, 10);
    anything else (x8, ESRGAN+) raises ``InputError`` naming the file.
    """
    if any(".conv1x1." in key for key in state):
        raise InputError(path, "ESRGAN+ checkpoint (conv1x1 layers) is not supported")
    tops = sorted({int(m.group(1)) for key in state if (m := _OLD_TOP.match(key))})
    if tops != [0, 3, 6, 8, 10]:
        raise InputError(
            path,
            f"original-ESRGAN layout with top-level layers {tops}: only the x4 layout "
            "(model.0, model.3, model.6, model.8, model.10) is supported",
        )
    # The trunk convolution follows the blocks in the same sequential.
    trunks = {int(m.group(1)) for key in state if (m := _OLD_TRUNK.match(key))}
    trunk = trunks.pop() if len(trunks) == 1 else -1
    out: dict[str, Any] = {}
    for key, value in state.items():
        if m := _OLD_RDB.match(key):
            out[f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"] = value
        elif (m := _OLD_TRUNK.match(key)) and int(m.group(1)) == trunk:
            out[f"conv_body.{m.group(2)}"] = value
        elif (m := _OLD_TOP.match(key)) and m.group(1) in _ESRGAN_2018:
            out[f"{_ESRGAN_2018[m.group(1)]}.{m.group(2)}"] = value
        else:
            out[key] = value
    return out


def to_basicsr(state: Mapping[str, torch.Tensor], path: str | Path) -> tuple[dict[str, Any], str]:
    """The state dict under BasicSR names, and the layout it came in. Errors name the file."""
    layout = checkpoint_layout(state)
    if layout is None:
        some = ", ".join(list(state)[:5])
        raise InputError(
            path,
            f"not an ESRGAN (RRDBNet) checkpoint{foreign_hint(state)}: none of the BasicSR "
            "(conv_first, body.N.rdb1...), ESRGAN (RRDB_trunk...) or original ESRGAN "
            f"(model.N...) layouts; first keys: {some}",
        )
    if layout == "basicsr":
        return dict(state), layout
    if layout == "esrgan":
        renamed = {}
        for key, value in state.items():
            prefix = next((p for p in _ESRGAN_2019 if key.startswith(p)), None)
            new = _ESRGAN_2019[prefix] + key[len(prefix) :] if prefix else key
            renamed[new.replace(".RDB", ".rdb")] = value
        return renamed, layout
    return from_esrgan_2018(state, path), layout


def hyperparameters(state: Mapping[str, torch.Tensor], path: str | Path) -> dict[str, int]:
    """RRDBNet constructor arguments read off a BasicSR-named state dict (any scale check here).

    The sizes inside the network (features, blocks, growth) come from the file;
    its input and output channels do not: the network takes and makes RGB
    images, so a checkpoint of another channel count (4 input channels, say)
    fails the strict load with its file, key, and shapes found and expected,
    rather than loading and failing at the first image.
    """
    for key in ("conv_first.weight", "conv_last.weight", "body.0.rdb1.conv1.weight"):
        if key not in state:
            raise InputError(path, f"RRDBNet checkpoint without {key}")
    if any(key.startswith(("conv_up3.", "upconv3.")) for key in state):
        raise InputError(path, "x8 RRDBNet (a third upsampling convolution) is not supported")
    num_in_ch = int(state["conv_first.weight"].shape[1])
    num_out_ch = int(state["conv_last.weight"].shape[0])
    if num_in_ch in (4 * num_out_ch, 16 * num_out_ch):
        native = 2 if num_in_ch == 4 * num_out_ch else 1
        raise InputError(
            path,
            f"pixel-unshuffle RRDBNet (x{native}, {num_in_ch} input channels, as Real-ESRGAN "
            "x2plus) is not supported; only x4 networks are",
        )
    blocks = {int(key.split(".")[1]) for key in state if key.startswith("body.")}
    return {
        "num_in_ch": RGB,
        "num_out_ch": RGB,
        "num_feat": int(state["conv_first.weight"].shape[0]),
        "num_block": max(blocks) + 1,
        "num_grow_ch": int(state["body.0.rdb1.conv1.weight"].shape[0]),
    }


def load_rrdbnet(path: str | Path, scale: int = SCALE) -> RRDBNet:
    """Build an RRDBNet from a checkpoint file in any supported layout, in eval mode (CPU, fp32).

    ``scale`` is the configured scale; a checkpoint of another scale raises
    ``InputError`` naming the file, as does any key or shape mismatch.
    """
    raw = read_state_dict(path)
    state, layout = to_basicsr(raw, path)
    params = hyperparameters(state, path)
    if scale != SCALE:
        raise InputError(path, f"scale {scale} was configured, but this is an x{SCALE} network")
    net = RRDBNet(**params, scale=SCALE)
    # Stored fp16 weights (e.g. the ncnn-converted RealESRGAN file) become fp32 here.
    load_strict(net, {key: value.float() for key, value in state.items()}, path, "RRDBNet")
    log.info("loaded RRDBNet %s from %s (%s layout)", params, path, layout)
    return net.eval()


def build(options: Mapping[str, Any], device: str) -> NetworkUpscaler:
    """The ``esrgan`` method: options as declared in ``pipeline.upscale.specs.cnn``."""
    net = load_rrdbnet(options["weights_path"], int(options["scale"])).to(device)
    return NetworkUpscaler.of_method(options, net, net, SCALE, device)
