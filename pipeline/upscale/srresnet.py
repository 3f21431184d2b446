"""SRResNet / SRGAN generators (Ledig et al., CVPR 2017) and the "modified SRResNet" (MSRResNet).

Three networks, chosen with the ``variant`` option:

``paper`` (default): the generator of the SRGAN paper. A 9x9 convolution and
PReLU; 16 residual blocks (3x3 conv, BN, PReLU, 3x3 conv, BN, skip); a 3x3
conv and BN with a long skip from the head; two (x4) or three (x8) stages of
3x3 conv -> PixelShuffle(2) -> PReLU (one at x2, as the tutorial builds it); a
9x9 convolution to RGB. The parameter
names are those of the widely used ``a-PyTorch-Tutorial-to-Super-Resolution``
(sgrvinod) ``SRResNet`` (``conv_block1.conv_block.0``,
``residual_blocks.N.conv_block1.conv_block.{0,1,2}``, ``conv_block2``,
``subpixel_convolutional_blocks.N.{conv,prelu}``, ``conv_block3``); its SRGAN
``Generator`` wraps the same network as ``net.``, which is stripped. BN runs
with its stored running statistics (eval mode).

``msrresnet``: BasicSR's ``MSRResNet`` (the "modified SRResNet" of BasicSR's
model zoo, e.g. ``MSRResNet_x4``; MSRGAN uses the same generator): no BN, a
3x3 head with LeakyReLU 0.1, 16 blocks conv-ReLU-conv with identity skip, two
conv -> PixelShuffle(2) -> LeakyReLU stages, ``conv_hr``, ``conv_last``, plus a
bilinear x4 upsampling of the input added to the output. Keys ``conv_first``,
``body.N.conv{1,2}``, ``upconv1``, ``upconv2``, ``conv_hr``, ``conv_last``.
x4 only (BasicSR has no x8 MSRResNet).

``mmedit``: OpenMMLab's ``MSRResNet`` (mmediting, now mmagic; the generator of
its ``msrresnet_x4c64b16`` and ``srgan_x4c64b16`` checkpoints). The same
design as BasicSR's with other names and one difference in the forward pass:
its upsampling stages (``PixelShufflePack``: conv to 4x the channels, then
PixelShuffle(2)) have no activation after them. A 3x3 head with LeakyReLU 0.1,
``trunk_net.N.conv{1,2}`` blocks (conv-ReLU-conv plus identity), no long skip,
``upsample1.upsample_conv``, ``upsample2.upsample_conv``, ``conv_hr`` with
LeakyReLU 0.1, ``conv_last``, plus a bilinear x4 upsampling of the input
(``align_corners=False``). x4 only (the x2/x3 networks have one upsampling
stage and are not supported). OpenMMLab saves the whole training model under
``state_dict``: the generator's keys carry a ``generator.`` prefix, which is
removed; an SRGAN checkpoint also holds the discriminator (``discriminator.``)
and the perceptual loss's VGG (``perceptual_loss.``), which inference does not
use and which are dropped by name. Any other key fails strict loading.

Value ranges. Inputs are RGB in [0, 1] (``input_norm: unit``), as in the
paper; the tutorial's own trained checkpoints expect ImageNet mean/std
normalised inputs instead (``input_norm: imagenet``). Outputs
(``output_range``): the paper trains against HR images scaled to [-1, 1] and
the tutorial network ends in ``tanh``, so ``paper`` defaults to ``[-1, 1]``
(tanh, then mapped by (y + 1) / 2); checkpoints trained to output [0, 1]
directly (no tanh) take ``[0, 1]``. ``msrresnet`` and ``mmedit`` output
[0, 1] and accept only that (OpenMMLab trains on RGB in [0, 1]: ``Normalize``
with mean 0, std 1, ``to_rgb``). The option cannot be read off a checkpoint
(tanh has no parameters): a wrong value gives washed-out or clipped images,
not an error.

spandrel (0.4) has none of these three layouts.

Other published SRResNet implementations (leftthomas/SRGAN with 5 blocks,
Lornatang/SRGAN-PyTorch, whose layout changed across versions) use other
names and are not supported.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.io import InputError
from pipeline.upscale import openmmlab, rrdbnet
from pipeline.upscale.torch_runtime import (
    NetworkUpscaler,
    identify,
    load_strict,
    read_state_dict,
)

log = logging.getLogger(__name__)

VARIANTS = ("paper", "msrresnet", "mmedit")
SCALES = {"paper": (2, 4, 8), "msrresnet": (4,), "mmedit": (4,)}
NATIVE_RANGE = {"paper": (-1, 1), "msrresnet": (0, 1), "mmedit": (0, 1)}
# Keys by which each variant is recognised (after any generator. prefix is removed).
SIGNATURES = {
    "msrresnet": frozenset({"conv_first.weight", "body.0.conv1.weight", "upconv1.weight"}),
    "mmedit": frozenset(
        {"conv_first.weight", "trunk_net.0.conv1.weight", "upsample1.upsample_conv.weight"}
    ),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConvBlock(nn.Module):
    """Convolution, optional BN, optional activation, in a ``conv_block`` sequential."""

    def __init__(
        self, cin: int, cout: int, kernel: int, batch_norm: bool, activation: str | None
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, padding=kernel // 2)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        if activation == "prelu":
            layers.append(nn.PReLU())
        elif activation == "tanh":
            layers.append(nn.Tanh())
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_block(x)


class ResidualBlock(nn.Module):
    """conv-BN-PReLU, conv-BN, plus the input."""

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.conv_block1 = ConvBlock(num_feat, num_feat, 3, True, "prelu")
        self.conv_block2 = ConvBlock(num_feat, num_feat, 3, True, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block2(self.conv_block1(x))


class SubPixelBlock(nn.Module):
    """x2 upsampling: conv to 4x the channels, PixelShuffle(2), PReLU."""

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(num_feat, num_feat * 4, 3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.prelu = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.pixel_shuffle(self.conv(x)))


class SRResNet(nn.Module):
    """The SRGAN paper's generator (x2, x4 or x8); ``tanh`` ends it with tanh ([-1, 1] outputs)."""

    def __init__(
        self, scale: int = 4, num_feat: int = 64, num_block: int = 16, tanh: bool = True
    ) -> None:
        super().__init__()
        if scale not in SCALES["paper"]:
            raise ValueError(f"SRResNet: scale must be one of {SCALES['paper']}, got {scale}")
        self.scale = scale
        self.conv_block1 = ConvBlock(3, num_feat, 9, False, "prelu")
        self.residual_blocks = nn.Sequential(*(ResidualBlock(num_feat) for _ in range(num_block)))
        self.conv_block2 = ConvBlock(num_feat, num_feat, 3, True, None)
        self.subpixel_convolutional_blocks = nn.Sequential(
            *(SubPixelBlock(num_feat) for _ in range(int(math.log2(scale))))
        )
        self.conv_block3 = ConvBlock(num_feat, 3, 9, False, "tanh" if tanh else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.conv_block1(x)
        feat = head + self.conv_block2(self.residual_blocks(head))
        return self.conv_block3(self.subpixel_convolutional_blocks(feat))


class ResidualBlockNoBN(nn.Module):
    """conv-ReLU-conv plus the input (BasicSR's ``ResidualBlockNoBN``, residual scale 1)."""

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


class MSRResNet(nn.Module):
    """BasicSR's MSRResNet, x4 (outputs in [0, 1]; adds a bilinear upsampling of the input)."""

    def __init__(self, num_feat: int = 64, num_block: int = 16) -> None:
        super().__init__()
        self.scale = 4
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(ResidualBlockNoBN(num_feat) for _ in range(num_block)))
        self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
        self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(self.lrelu(self.conv_first(x)))
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        return out + F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)


class PixelShufflePack(nn.Module):
    """OpenMMLab's x2 upsampling: a 3x3 conv to 4x the channels, then PixelShuffle(2).

    No activation follows (BasicSR's MSRResNet applies LeakyReLU here).
    """

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.upsample_conv = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.upsample_conv(x), 2)


class OpenMMLabMSRResNet(nn.Module):
    """OpenMMLab's MSRResNet, x4 (outputs in [0, 1]; adds a bilinear upsampling of the input)."""

    def __init__(self, num_feat: int = 64, num_block: int = 16) -> None:
        super().__init__()
        self.scale = 4
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.trunk_net = nn.Sequential(*(ResidualBlockNoBN(num_feat) for _ in range(num_block)))
        self.upsample1 = PixelShufflePack(num_feat)
        self.upsample2 = PixelShufflePack(num_feat)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.trunk_net(self.lrelu(self.conv_first(x)))
        out = self.upsample2(self.upsample1(out))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        return out + F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)


def checkpoint_variant(state: Mapping[str, Any]) -> str | None:
    """``paper``, ``msrresnet``, ``mmedit``, or ``None`` when the keys fit no layout."""
    if "conv_block1.conv_block.0.weight" in state:
        return "paper"
    for variant, keys in SIGNATURES.items():
        if keys <= set(state):
            return variant
    return None


def resolve_range(variant: str, output_range: Sequence[float] | None) -> tuple[int, int]:
    """The output range in effect: the option, or the variant's native range when unset."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown SRResNet variant {variant!r}; known: {list(VARIANTS)}")
    if output_range is None:
        return NATIVE_RANGE[variant]
    value = (int(output_range[0]), int(output_range[1]))
    if value not in ((-1, 1), (0, 1)):
        raise ValueError(f"output_range must be [-1, 1] or [0, 1], got {list(output_range)}")
    if variant in ("msrresnet", "mmedit") and value != (0, 1):
        raise ValueError(f"output_range: {variant} outputs [0, 1]; [-1, 1] does not apply")
    return value


def _blocks(state: Mapping[str, Any], prefix: str) -> int:
    indices = {int(key[len(prefix) :].split(".")[0]) for key in state if key.startswith(prefix)}
    return max(indices) + 1 if indices else 0


def new_network(
    variant: str, scale: int, output_range: tuple[int, int], num_feat: int = 64, num_block: int = 16
) -> nn.Module:
    """A freshly initialised network of ``variant`` (see the module docstring)."""
    if scale not in SCALES.get(variant, ()):
        raise ValueError(
            f"SRResNet variant {variant!r} supports scales {SCALES.get(variant)}, not {scale}"
        )
    if variant == "paper":
        return SRResNet(scale, num_feat, num_block, tanh=output_range == (-1, 1))
    if variant == "mmedit":
        return OpenMMLabMSRResNet(num_feat, num_block)
    return MSRResNet(num_feat, num_block)


def load_network(
    path: str | Path, variant: str, scale: int, output_range: tuple[int, int]
) -> nn.Module:
    """Load a checkpoint of ``variant`` strictly, in eval mode (CPU, fp32).

    Width and depth are read off the checkpoint; its scale (number of
    upsampling stages) must equal ``scale``. Errors name the file: another
    variant's or architecture's keys, a scale mismatch, missing, unexpected or
    mis-shaped keys.
    """
    state = read_state_dict(path)
    # The tutorial's SRGAN Generator holds the SRResNet as ``net``.
    if all(key.startswith("net.") for key in state):
        state = {key.removeprefix("net."): value for key, value in state.items()}
    from_openmmlab = openmmlab.is_openmmlab_model(state, openmmlab.GAN_TRAINING_ONLY)
    if from_openmmlab:
        state = openmmlab.generator_weights(state, path, openmmlab.GAN_TRAINING_ONLY)
    found = checkpoint_variant(state)
    if found is None:
        if rrdbnet.checkpoint_layout(state):
            hint = " (it holds an ESRGAN RRDBNet: use arch esrgan)"
        else:
            found = identify(state)
            hint = f" (spandrel identifies it as {found!r})" if found else ""
        raise InputError(
            path,
            f"not an SRResNet checkpoint{hint}: expected the tutorial layout "
            "(conv_block1.conv_block.0...), BasicSR MSRResNet (conv_first, body.N.conv1, "
            "upconv1) or OpenMMLab MSRResNet ([generator.]conv_first, trunk_net.N.conv1, "
            f"upsample1.upsample_conv); first keys: {', '.join(list(state)[:5])}",
        )
    if found != variant:
        raise InputError(
            path,
            f"holds an SRResNet of variant {found!r}, but variant {variant!r} was configured "
            f"(set methods.<name>.variant: {found})",
        )
    if variant == "paper":
        head = "conv_block1.conv_block.0.weight"
        native = 2 ** _blocks(state, "subpixel_convolutional_blocks.")
        num_block = _blocks(state, "residual_blocks.")
    elif variant == "msrresnet":
        head = "conv_first.weight"
        native = 4 if "upconv2.weight" in state else 0
        num_block = _blocks(state, "body.")
    else:
        head = "conv_first.weight"
        native = 4 if "upsample2.upsample_conv.weight" in state else 0
        num_block = _blocks(state, "trunk_net.")
    if native != scale:
        shown = f"an x{native} network" if native else "an x2/x3 MSRResNet (not supported)"
        raise InputError(path, f"scale {scale} was configured, but this is {shown}")
    net = new_network(variant, scale, output_range, int(state[head].shape[0]), num_block)
    what = {
        "paper": "SRResNet (paper)",
        "msrresnet": "MSRResNet",
        "mmedit": "OpenMMLab MSRResNet",
    }[variant]
    if from_openmmlab:
        what += f" (key names below the file's {openmmlab.GENERATOR} prefix)"
    load_strict(net, {key: value.float() for key, value in state.items()}, path, what)
    log.info("loaded %s x%d, %d blocks, from %s", what, scale, num_block, path)
    return net.eval()


def make_forward(
    net: nn.Module, output_range: tuple[int, int], input_norm: str, device: str
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Wrap ``net`` to map RGB in [0, 1] to RGB in [0, 1] (before clamping)."""
    if input_norm not in ("unit", "imagenet"):
        raise ValueError(f"input_norm must be 'unit' or 'imagenet', got {input_norm!r}")
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def forward(x: torch.Tensor) -> torch.Tensor:
        if input_norm == "imagenet":
            x = (x - mean) / std
        y = net(x)
        return (y + 1.0) / 2.0 if output_range == (-1, 1) else y

    return forward


def build(options: Mapping[str, Any], device: str) -> NetworkUpscaler:
    """The ``srresnet`` and ``srgan`` methods: options as declared in ``specs.cnn``."""
    variant = options["variant"]
    scale = int(options["scale"])
    output_range = resolve_range(variant, options.get("output_range"))
    net = load_network(options["weights_path"], variant, scale, output_range).to(device)
    forward = make_forward(net, output_range, options["input_norm"], device)
    return NetworkUpscaler.of_method(options, forward, net, scale, device)
