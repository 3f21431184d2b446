"""StyleGAN v1 mapping and synthesis networks, as PULSE uses them.

Written from the StyleGAN v1 architecture (Karras et al. 2019) so that PULSE's
published ``synthesis.pt`` and ``mapping.pt`` load with a strict
``load_state_dict``: module names, parameter shapes and the one buffer per
up-sampling block (the blur kernel) follow PULSE's PyTorch port, whose key
layout is recorded in ``shared/fixtures/stylegan/keys_1024.json``.

Conventions:

- Equalised learning rate: the state dict holds *unscaled* parameters; every
  forward pass multiplies the weight by ``gain * fan_in ** -0.5 * lrmul`` and
  the bias by ``lrmul`` (lrmul 0.01 in the mapping, 1 elsewhere; gain sqrt(2),
  or 1 for the style and toRGB layers).
- ``StyleGANMapping()(z)``: z (B, 512) float -> w (B, 512). No truncation.
- ``StyleGANSynthesis()(dlatents, noise)``: dlatents (B, L, 512) with
  L = 2 * log2(resolution) - 2 (18 at 1024 px), layer ``l`` uses ``dlatents[:, l]``;
  ``noise`` is a list of per-layer tensors (B, 1, s, s) with s = 2 ** (l // 2 + 2),
  extra entries are ignored. Returns (B, 3, R, R) float, nominally [-1, 1],
  NOT clamped. Inputs are never modified in place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

DLATENT_SIZE = 512
SQRT2 = math.sqrt(2.0)


class EqualizedLinear(nn.Module):
    """Dense layer with the equalised learning rate (run-time weight scaling)."""

    def __init__(self, in_features: int, out_features: int, gain: float, lrmul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lrmul)
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.w_mul = gain * in_features**-0.5 * lrmul
        self.b_mul = lrmul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.w_mul, self.bias * self.b_mul)


class Blur(nn.Module):
    """Depthwise 3x3 low-pass filter [1, 2, 1] x [1, 2, 1] / 16 (zero padding)."""

    def __init__(self) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("kernel", (kernel / kernel.sum())[None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        return F.conv2d(x, self.kernel.expand(channels, -1, -1, -1), padding=1, groups=channels)


class EqualizedConv2d(nn.Module):
    """Square conv with the equalised learning rate, 'same' padding, bias added last."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.w_mul = gain * (in_channels * kernel_size**2) ** -0.5
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.w_mul, self.bias, padding=self.padding)


class UpConv2d(EqualizedConv2d):
    """x2 up-sampling, 3x3 conv, blur, then bias (the first conv of a synthesis block).

    Blocks whose input is at least 64 px (outputs of 128 px and up) use StyleGAN's
    "fused" variant: one stride-2 transposed conv whose 4x4 kernel is the 3x3
    kernel summed over its four 1-pixel shifts. Smaller blocks use nearest
    up-sampling followed by the 3x3 conv. The two are not numerically equal, and
    the published weights were trained with this split, so it is kept as is.
    """

    FUSED_MIN_INPUT = 64

    def __init__(self, in_channels: int, out_channels: int, gain: float):
        super().__init__(in_channels, out_channels, 3, gain)
        self.intermediate = Blur()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.w_mul
        if min(x.shape[2:]) >= self.FUSED_MIN_INPUT:
            kernel = F.pad(weight.permute(1, 0, 2, 3), (1, 1, 1, 1))
            kernel = (
                kernel[:, :, 1:, 1:]
                + kernel[:, :, :-1, 1:]
                + kernel[:, :, 1:, :-1]
                + kernel[:, :, :-1, :-1]
            )
            x = F.conv_transpose2d(x, kernel, stride=2, padding=1)
        else:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = F.conv2d(x, weight, None, padding=1)
        return self.intermediate(x) + self.bias.view(1, -1, 1, 1)


class NoiseInjection(nn.Module):
    """Adds per-pixel noise (shared over channels) scaled by a learned per-channel weight."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        if noise is None:
            # Same as PULSE's port: a missing noise tensor means fresh noise each call.
            noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        return x + self.weight.view(1, -1, 1, 1) * noise


class StyleModulation(nn.Module):
    """Adaptive instance norm's affine part: x * (1 + scale(w)) + shift(w)."""

    def __init__(self, channels: int):
        super().__init__()
        self.lin = EqualizedLinear(DLATENT_SIZE, 2 * channels, gain=1.0)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = self.lin(w).view(-1, 2, x.shape[1], 1, 1)
        return x * (style[:, 0] + 1.0) + style[:, 1]


class LayerEpilogue(nn.Module):
    """After each conv: add noise, LeakyReLU(0.2), instance norm (eps 1e-5), style."""

    def __init__(self, channels: int):
        super().__init__()
        self.noise = NoiseInjection(channels)
        self.style_mod = StyleModulation(channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None):
        x = self.noise(x, noise)
        x = F.leaky_relu(x, 0.2)
        x = F.instance_norm(x, eps=1e-5)
        return self.style_mod(x, w)


class InputBlock(nn.Module):
    """4x4 block: learned constant + bias, epilogue, 3x3 conv, epilogue (layers 0, 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.const = nn.Parameter(torch.ones(1, channels, 4, 4))
        self.bias = nn.Parameter(torch.ones(channels))
        self.epi1 = LayerEpilogue(channels)
        self.conv = EqualizedConv2d(channels, channels, 3, SQRT2)
        self.epi2 = LayerEpilogue(channels)

    def forward(self, dlatents: torch.Tensor, noise: Sequence[torch.Tensor | None]):
        x = self.const.expand(dlatents.shape[0], -1, -1, -1) + self.bias.view(1, -1, 1, 1)
        x = self.epi1(x, dlatents[:, 0], noise[0])
        x = self.conv(x)
        return self.epi2(x, dlatents[:, 1], noise[1])


class SynthesisBlock(nn.Module):
    """Doubling block: up-conv + blur, epilogue, 3x3 conv, epilogue."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0_up = UpConv2d(in_channels, out_channels, SQRT2)
        self.epi1 = LayerEpilogue(out_channels)
        self.conv1 = EqualizedConv2d(out_channels, out_channels, 3, SQRT2)
        self.epi2 = LayerEpilogue(out_channels)

    def forward(self, x, dlatents: torch.Tensor, noise: Sequence[torch.Tensor | None]):
        x = self.conv0_up(x)
        x = self.epi1(x, dlatents[:, 0], noise[0])
        x = self.conv1(x)
        return self.epi2(x, dlatents[:, 1], noise[1])


def block_channels(
    resolution: int, fmap_base: int = 8192, fmap_decay: float = 1.0, fmap_max: int = 512
) -> dict[int, int]:
    """Feature maps of each block, by block resolution (StyleGAN's ``nf(log2(R) - 1)``)."""
    log2 = int(math.log2(resolution))
    if resolution < 4 or 2**log2 != resolution:
        raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
    return {
        2**res: min(int(fmap_base / 2.0 ** ((res - 1) * fmap_decay)), fmap_max)
        for res in range(2, log2 + 1)
    }


class StyleGANSynthesis(nn.Module):
    """StyleGAN v1 synthesis network (constant input, 2 layers per resolution, toRGB at the end)."""

    def __init__(
        self,
        resolution: int = 1024,
        fmap_base: int = 8192,
        fmap_decay: float = 1.0,
        fmap_max: int = 512,
    ):
        super().__init__()
        channels = block_channels(resolution, fmap_base, fmap_decay, fmap_max)
        self.resolution = resolution
        self.num_layers = 2 * int(math.log2(resolution)) - 2
        # torgb is assigned before blocks so that the state dict order is PULSE's.
        self.torgb = EqualizedConv2d(channels[resolution], 3, 1, gain=1.0)
        blocks: dict[str, nn.Module] = {}
        previous = 0
        for size, width in channels.items():
            name = f"{size}x{size}"
            blocks[name] = InputBlock(width) if size == 4 else SynthesisBlock(previous, width)
            previous = width
        self.blocks = nn.ModuleDict(blocks)

    def forward(self, dlatents: torch.Tensor, noise: Sequence[torch.Tensor | None]) -> torch.Tensor:
        if dlatents.ndim != 3 or dlatents.shape[1] < self.num_layers:
            raise ValueError(
                f"dlatents must be (B, {self.num_layers}, {DLATENT_SIZE}), "
                f"got {tuple(dlatents.shape)}"
            )
        if len(noise) < self.num_layers:
            raise ValueError(f"need {self.num_layers} noise tensors, got {len(noise)}")
        x = None
        for index, block in enumerate(self.blocks.values()):
            layers = slice(2 * index, 2 * index + 2)
            if index == 0:
                x = block(dlatents[:, layers], noise[layers])
            else:
                x = block(x, dlatents[:, layers], noise[layers])
        return self.torgb(x)


class StyleGANMapping(nn.Module):
    """StyleGAN v1 mapping: PixelNorm, then 8 x (dense 512 -> 512, lrmul 0.01, LeakyReLU 0.2)."""

    def __init__(self, num_layers: int = 8):
        super().__init__()
        self.num_layers = num_layers
        for index in range(num_layers):
            layer = EqualizedLinear(DLATENT_SIZE, DLATENT_SIZE, gain=SQRT2, lrmul=0.01)
            self.add_module(f"dense{index}", layer)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z * torch.rsqrt(torch.mean(z**2, dim=1, keepdim=True) + 1e-8)
        for index in range(self.num_layers):
            x = F.leaky_relu(getattr(self, f"dense{index}")(x), 0.2)
        return x


def synthesis_kwargs_of(state_dict: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Constructor arguments of the synthesis network a state dict was saved from.

    The resolution is the largest block; ``fmap_max`` is read from the 4x4 block
    (with the default ``fmap_base`` 8192 it has min(4096, fmap_max) channels).
    """
    sizes = {
        int(key.split(".")[1].split("x")[0]) for key in state_dict if key.startswith("blocks.")
    }
    if not sizes or "blocks.4x4.const" not in state_dict:
        raise ValueError("not a StyleGAN v1 synthesis state dict (no blocks.4x4.const)")
    kwargs = {"resolution": max(sizes)}
    first = int(state_dict["blocks.4x4.const"].shape[1])
    if first != 512:
        kwargs["fmap_max"] = first
    return kwargs


def load_synthesis(state_dict: Mapping[str, torch.Tensor]) -> StyleGANSynthesis:
    """Build the matching synthesis network and load ``state_dict`` strictly; frozen, eval mode."""
    network = StyleGANSynthesis(**synthesis_kwargs_of(state_dict))
    network.load_state_dict(state_dict, strict=True)
    return network.eval().requires_grad_(False)


def load_mapping(state_dict: Mapping[str, torch.Tensor]) -> StyleGANMapping:
    """Build the mapping network and load ``state_dict`` strictly; frozen, eval mode."""
    network = StyleGANMapping()
    network.load_state_dict(state_dict, strict=True)
    return network.eval().requires_grad_(False)
