"""StyleGAN2's generator (Karras et al., CVPR 2020) in OpenMMLab's key layout, as GLEAN holds it.

GLEAN (``pipeline.upscale.glean``) uses a StyleGAN2 generator as its latent
bank; OpenMMLab's GLEAN checkpoints store it under ``generator.generator.``
with the names of mmediting's ``StyleGANv2Generator`` (0.x, kept by mmagic):

- ``style_mapping.{1..8}``: the mapping MLP (index 0 is the parameter-free
  pixel norm); each ``linear.weight_orig`` (out, in) and ``bias`` (out), with
  a learning-rate multiplier of 0.01 and a bias + LeakyReLU(0.2) x sqrt(2)
  activation. GLEAN computes its latents with its own encoder and never runs
  this MLP; its weights are in the file and are loaded all the same.
- ``constant_input.input`` (1, C4, 4, 4).
- ``conv1`` and ``convs.{2k, 2k+1}`` (k = 0 for 8 px ... log2(size) - 3):
  modulated 3x3 convolutions (``conv.weight_orig`` (1, out, in, 3, 3),
  ``conv.style_modulation.linear.weight_orig`` (in, style), its ``bias``
  initialised to 1), each followed by ``noise_injector.weight`` (1,) and
  ``activate.bias`` (out,) (bias + LeakyReLU(0.2) x sqrt(2)). The even
  ``convs`` double the resolution: a stride-2 transposed convolution, then the
  4x4 blur of taps [1, 3, 3, 1] (``conv.blur.kernel``, a buffer), pad (1, 1).
- ``to_rgb1`` and ``to_rgbs.k``: 1x1 modulated convolutions without
  demodulation to 3 channels, plus ``bias`` (1, 3, 1, 1); the ``to_rgbs``
  add the previous RGB image, upsampled x2 with the same FIR filter
  (``upsample.kernel``, pad (2, 1)).
- ``injected_noise_{i}`` (1, 1, r, r): the fixed noise maps stored with the
  generator (17 for 1024 px: one at 4 px, two per resolution from 8 px).

"Equalised learning rate": every ``weight_orig`` is used multiplied by
``gain * lr_mul / sqrt(fan_in)`` (gain 1; fan_in of a 5-D modulated weight
counts in x k x k). Channels per resolution (``default_channels``): 512 up to
32 px, then ``16 * channel_multiplier * 1024 / r`` (multiplier 2: 512, 256,
128, 64, 32 at 64 ... 1024 px).

The upfirdn2d filtering (FIR upsampling and blur) is written here with plain
PyTorch operations, which is what OpenMMLab's CPU fallback computes; its
CUDA kernel gives the same values up to float rounding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

BLUR_TAPS = (1, 3, 3, 1)
LEAKY_SLOPE = 0.2
# The fused bias + LeakyReLU rescales by sqrt(2) to keep the activations' variance.
ACTIVATION_GAIN = math.sqrt(2.0)
MAPPING_LR_MUL = 0.01


def default_channels(out_size: int, channel_multiplier: int = 2) -> dict[int, int]:
    """Channels per resolution of mmediting's StyleGANv2Generator, 4 px to ``out_size``."""
    table = {}
    resolution = 4
    while resolution <= out_size:
        table[resolution] = min(512, 16 * channel_multiplier * 1024 // resolution)
        resolution *= 2
    return table


def fir_kernel(taps: Sequence[int] = BLUR_TAPS, gain: float = 1.0) -> torch.Tensor:
    """The separable 2-D FIR kernel of ``taps``, normalised to sum ``gain``."""
    line = torch.tensor(taps, dtype=torch.float32)
    kernel = line[:, None] * line[None, :]
    return kernel / kernel.sum() * gain


def upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)
) -> torch.Tensor:
    """Upsample by zero insertion, pad (``pad`` before and after, both axes), filter, decimate.

    The filter is applied as a true convolution (the kernel flipped), per channel.
    """
    n, c, h, w = x.shape
    planes = x.reshape(n * c, 1, h, w)
    if up > 1:
        planes = planes.reshape(n * c, h, 1, w, 1)
        planes = F.pad(planes, (0, up - 1, 0, 0, 0, up - 1))
        planes = planes.reshape(n * c, 1, h * up, w * up)
    before, after = pad
    planes = F.pad(planes, (before, after, before, after))
    weight = torch.flip(kernel, (0, 1)).to(planes)[None, None]
    planes = F.conv2d(planes, weight)
    if down > 1:
        planes = planes[:, :, ::down, ::down]
    return planes.reshape(n, c, planes.shape[-2], planes.shape[-1])


def leaky_with_bias(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Add a per-channel bias, LeakyReLU(0.2), times sqrt(2) (dim 1 is the channel)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), LEAKY_SLOPE) * ACTIVATION_GAIN


class EqualizedWeight(nn.Module):
    """A linear weight stored as ``weight_orig``, used scaled by lr_mul / sqrt(fan_in)."""

    def __init__(self, in_features: int, out_features: int, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight_orig = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.scale = lr_mul / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight_orig * self.scale)


class EqualLinear(nn.Module):
    """Equalised linear layer with its bias beside it (``linear.weight_orig``, ``bias``).

    ``activate``: bias + LeakyReLU(0.2) x sqrt(2) (the mapping MLP); otherwise
    a plain bias (the style modulations, bias initialised to ``bias_init``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        lr_mul: float = 1.0,
        bias_init: float = 0.0,
        activate: bool = False,
    ) -> None:
        super().__init__()
        self.linear = EqualizedWeight(in_features, out_features, lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x.reshape(x.shape[0], -1))
        bias = self.bias * self.lr_mul
        return leaky_with_bias(out, bias) if self.activate else out + bias


class PixelNorm(nn.Module):
    """Each vector divided by its root mean square (eps 1e-6)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, dim=1, keepdim=True) / math.sqrt(x.shape[1])
        return x / (norm + 1e-6)


class FIRFilter(nn.Module):
    """A fixed FIR filter (``kernel`` buffer): the blur after an upsampling convolution
    (``up`` 1), or the x2 upsampling of the RGB skip path (``up`` 2)."""

    def __init__(self, pad: tuple[int, int], up: int = 1, gain: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel(BLUR_TAPS, gain))
        self.pad = pad
        self.up = up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.up, pad=self.pad)


class ModulatedConv2d(nn.Module):
    """A convolution whose weight is scaled per input channel by the style (and demodulated)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_channels: int,
        demodulate: bool = True,
        upsample: bool = False,
    ) -> None:
        super().__init__()
        self.style_modulation = EqualLinear(style_channels, in_channels, bias_init=1.0)
        self.weight_orig = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size)
        )
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.demodulate = demodulate
        self.upsample = upsample
        if upsample:
            # The transposed convolution makes 2h + k - 2 pixels: the blur's
            # padding trims them back to 2h (for k = 3: pad (1, 1)).
            excess = len(BLUR_TAPS) - 2 - (kernel_size - 1)
            self.blur = FIRFilter(((excess + 1) // 2 + 1, excess // 2 + 1), gain=4.0)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        scales = self.style_modulation(style).view(n, 1, c, 1, 1)
        weight = self.weight_orig * self.scale * scales  # (n, out, in, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum((2, 3, 4), keepdim=True) + 1e-8)
        out_channels, k = weight.shape[1], weight.shape[-1]
        grouped = x.reshape(1, n * c, h, w)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(n * c, out_channels, k, k)
            out = F.conv_transpose2d(grouped, weight, stride=2, groups=n)
            return self.blur(out.reshape(n, out_channels, out.shape[-2], out.shape[-1]))
        weight = weight.reshape(n * out_channels, c, k, k)
        out = F.conv2d(grouped, weight, padding=self.padding, groups=n)
        return out.reshape(n, out_channels, h, w)


class NoiseInjection(nn.Module):
    """Adds ``weight`` times a noise map."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + self.weight * noise


class BiasLeakyReLU(nn.Module):
    """The fused bias + LeakyReLU(0.2) x sqrt(2) of a style convolution (``bias``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return leaky_with_bias(x, self.bias)


class StyleConv(nn.Module):
    """Modulated 3x3 convolution, noise, bias and activation."""

    def __init__(
        self, in_channels: int, out_channels: int, style_channels: int, upsample: bool = False
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, style_channels, upsample=upsample)
        self.noise_injector = NoiseInjection()
        self.activate = BiasLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.activate(self.noise_injector(self.conv(x, style), noise))


class ToRGB(nn.Module):
    """1x1 modulated convolution to RGB plus bias, plus the upsampled previous RGB image."""

    def __init__(self, in_channels: int, style_channels: int, upsample: bool = True) -> None:
        super().__init__()
        if upsample:
            self.upsample = FIRFilter((2, 1), up=2, gain=4.0)
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_channels, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None
    ) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        return out if skip is None else out + self.upsample(skip)


class ConstantInput(nn.Module):
    """The learned 4x4 input (``input``), repeated over the batch."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, 4, 4))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)


class StyleGAN2Generator(nn.Module):
    """The generator's modules under mmediting's names (see the module docstring).

    ``channels`` maps each resolution, 4 px to ``out_size``, to its feature
    channels (``default_channels`` for the published networks). It holds the
    parts; the caller runs them (GLEAN interleaves its encoder's features).
    """

    def __init__(
        self,
        out_size: int,
        style_channels: int = 512,
        channels: Mapping[int, int] | None = None,
        num_mlps: int = 8,
    ) -> None:
        super().__init__()
        log_size = int(math.log2(out_size))
        if 2**log_size != out_size or out_size < 8:
            raise ValueError(f"StyleGAN2: out_size must be a power of two >= 8, got {out_size}")
        self.out_size = out_size
        self.style_channels = style_channels
        self.channels = dict(channels or default_channels(out_size))
        self.style_mapping = nn.Sequential(
            PixelNorm(),
            *(
                EqualLinear(style_channels, style_channels, MAPPING_LR_MUL, activate=True)
                for _ in range(num_mlps)
            ),
        )
        self.constant_input = ConstantInput(self.channels[4])
        self.conv1 = StyleConv(self.channels[4], self.channels[4], style_channels)
        self.to_rgb1 = ToRGB(self.channels[4], style_channels, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        previous = self.channels[4]
        for level in range(3, log_size + 1):
            width = self.channels[2**level]
            self.convs.append(StyleConv(previous, width, style_channels, upsample=True))
            self.convs.append(StyleConv(width, width, style_channels))
            self.to_rgbs.append(ToRGB(width, style_channels))
            previous = width
        # One latent per convolution and per RGB layer (shared in pairs): 2 log2(size) - 2.
        self.num_latents = 2 * log_size - 2
        self.num_injected_noises = self.num_latents - 1
        for index in range(self.num_injected_noises):
            side = 2 ** ((index + 5) // 2)
            self.register_buffer(f"injected_noise_{index}", torch.randn(1, 1, side, side))

    def injected_noises(self) -> list[torch.Tensor]:
        """The stored noise maps, in the order the convolutions use them."""
        return [getattr(self, f"injected_noise_{i}") for i in range(self.num_injected_noises)]
