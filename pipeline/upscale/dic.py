"""DIC (Ma et al., CVPR 2020): face super-resolution x8 with iterative landmark attention.

The network is OpenMMLab's ``DICNet`` (mmediting 0.x, kept unchanged by
mmagic), the generator of the published ``dic_x8c48b6_g4_150k_CelebAHQ``
checkpoint (CelebA-HQ, 16 -> 128 px; the DIC-GAN checkpoint has the same
generator). Four steps share one recurrent SR branch and one landmark
hourglass: each step makes an image, the hourglass estimates 68 landmark
heatmaps on it, and the next step attends to the features with them (reduced
to 5 parts: the eyes, nose, mouth and face contour).

Key layout (below the checkpoint's ``generator.``; ``S`` is a
``Sequential`` index, PReLUs hold one slope each):

- ``conv_first.{0,1}``: 3x3 conv to 4 x mid channels, PReLU, PixelShuffle(2).
- ``first_block`` (step 1) and ``block`` (steps 2-4), feedback blocks:
  ``conv_first.{0,1}`` (1x1 conv, PReLU; ``block``'s takes the features and
  its previous output, 2 x mid channels), then per ``i`` of ``num_blocks``
  ``up_blocks.i`` (12x12 transposed conv, stride 8, pad 2, PReLU) and
  ``down_blocks.i`` (12x12 conv, stride 8, pad 2, PReLU), densely connected
  through ``lr_blocks.i-1`` / ``hr_blocks.i-1`` (1x1 conv over the (i + 1)
  previous outputs, PReLU) from the second on, and ``conv_last`` (1x1 conv
  over the ``num_blocks`` low-resolution outputs, PReLU). ``block`` also has
  ``fusion_block``: ``conv_first.0`` (1x1 conv to 5 x mid, LeakyReLU 0.2) and
  ``body.k.res.{0,2}`` (``num_fusion_blocks`` residual blocks of two 3x3
  convs in 5 groups, LeakyReLU 0.2 between); its output is the 5 groups
  weighted by the softmax over the 5 part heatmaps, summed.
- ``hour_glass``: ``pre_conv_block.{0,2,4,5}`` (7x7 stride-2 conv, ReLU,
  residual block, max-pool, two residual blocks), ``first_conv`` (1x1 over
  the features and the previous step's feedback), ``hg`` (a depth-4 hourglass
  of residual blocks ``up1``, ``low1``, ``low2`` (recursing), ``low3``,
  bilinear upsampling with aligned corners), ``last.{0,1,3}`` (residual
  block, 1x1 conv, ReLU, 1x1 conv to the 68 heatmaps). Residual blocks:
  ``conv_block.{0,2,3}`` (1x1, ReLU, 3x3, 1x1) plus ``skip_layer`` (1x1)
  where the channels change.
- ``conv_last.{0,1,2}``: 8x8 transposed conv stride 4 pad 2, PReLU, 3x3 conv
  to RGB, added to a bilinear upsampling (no aligned corners) of the input.

Sizes read off the checkpoint: mid channels (48), feedback depth
(``num_blocks``, 6), fusion depth (7), hourglass channels (256) and landmark
count (68, as 300-W / iBUG's annotation; the 5-part reduction is written for
it). The step count (4) cannot be read off (the steps share weights):
OpenMMLab's value is used. The output is the last step's image.

Input size: OpenMMLab's forward upsamples the input to a fixed 128 x 128 for
its residual, so the published network only runs on 16 px inputs. Here the
residual is 8x the input, the same thing at 16 px; the method still feeds the
network 16 px, the size it was trained on (``INPUT_SIZE``), bringing each
low-resolution image to it with its ``input_kernel``.

Value ranges: OpenMMLab trains DIC on RGB in [0, 1] minus a per-channel mean
(``MEAN`` = (129.795, 108.12, 96.39) / 255, std 1: ``Normalize`` with
std 255 on 8-bit images) and adds the mean back to the output (its
``img_denormalize``); the forward here does both.

The published checkpoint holds, beside the generator, the model's fixed
``img_denormalize`` layer (a 1x1 conv whose bias is that mean: checked
against ``MEAN`` when present, then dropped) and its ``step_counter``; a
DIC-GAN file adds ``discriminator.`` and ``feature_loss.`` (a LightCNN). They
are dropped by name; any other key fails strict loading. spandrel (0.4) has no
DIC architecture.
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
from pipeline.upscale import openmmlab
from pipeline.upscale.rrdbnet import RGB
from pipeline.upscale.torch_runtime import NetworkUpscaler, load_strict, read_state_dict

log = logging.getLogger(__name__)

SCALE = 8
# The low-resolution size the published network was trained on (CelebA-HQ 16 -> 128).
INPUT_SIZE = 16
NUM_STEPS = 4
NUM_PARTS = 5
PRELU_INIT = 0.2
# OpenMMLab's normalisation of DIC's images: RGB mean of CelebA-HQ in [0, 1].
MEAN = (129.795 / 255, 108.12 / 255, 96.39 / 255)
DENORMALIZE = "img_denormalize."
TRAINING_ONLY = (DENORMALIZE, "step_counter", "discriminator.", "feature_loss.")
# 68-point (iBUG 300-W) landmark index ranges of the five parts, in channel order.
PARTS_68 = ((36, 42), (42, 48), (27, 36), (48, 68), (0, 27))


def conv_prelu(conv: nn.Module) -> nn.Sequential:
    return nn.Sequential(conv, nn.PReLU(init=PRELU_INIT))


class FeedbackBlock(nn.Module):
    """DIC's recurrent up/down projection block (``first_block``; ``block`` adds the attention).

    ``in_channels`` is what ``conv_first`` takes: mid for the first step,
    2 x mid (features and the previous output) for the later ones.
    """

    def __init__(self, in_channels: int, mid: int, num_blocks: int) -> None:
        super().__init__()
        kernel, stride, padding = SCALE + 4, SCALE, 2
        self.conv_first = conv_prelu(nn.Conv2d(in_channels, mid, 1))
        self.up_blocks = nn.ModuleList(
            conv_prelu(nn.ConvTranspose2d(mid, mid, kernel, stride, padding))
            for _ in range(num_blocks)
        )
        self.down_blocks = nn.ModuleList(
            conv_prelu(nn.Conv2d(mid, mid, kernel, stride, padding)) for _ in range(num_blocks)
        )
        self.lr_blocks = nn.ModuleList(
            conv_prelu(nn.Conv2d(mid * (i + 1), mid, 1)) for i in range(1, num_blocks)
        )
        self.hr_blocks = nn.ModuleList(
            conv_prelu(nn.Conv2d(mid * (i + 1), mid, 1)) for i in range(1, num_blocks)
        )
        self.conv_last = conv_prelu(nn.Conv2d(num_blocks * mid, mid, 1))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The densely connected up/down projections from ``conv_first``'s output."""
        lows, highs = [x], []
        for i, (up, down) in enumerate(zip(self.up_blocks, self.down_blocks, strict=True)):
            low = torch.cat(lows, 1)
            if i > 0:
                low = self.lr_blocks[i - 1](low)
            highs.append(up(low))
            high = torch.cat(highs, 1)
            if i > 0:
                high = self.hr_blocks[i - 1](high)
            lows.append(down(high))
        return self.conv_last(torch.cat(lows[1:], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.conv_first(x))


class GroupResBlock(nn.Module):
    """Two 3x3 convs in groups, LeakyReLU 0.2 between, plus the input."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.res = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, groups=groups),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, groups=groups),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res(x)


class HeatmapFusion(nn.Module):
    """Per-part features weighted by the softmax over the part heatmaps, summed."""

    def __init__(self, mid: int, num_blocks: int) -> None:
        super().__init__()
        width = mid * NUM_PARTS
        self.conv_first = nn.Sequential(nn.Conv2d(mid, width, 1), nn.LeakyReLU(0.2, inplace=True))
        self.body = nn.Sequential(*(GroupResBlock(width, NUM_PARTS) for _ in range(num_blocks)))

    def forward(self, feature: torch.Tensor, heatmap: torch.Tensor) -> torch.Tensor:
        n, _, h, w = feature.shape
        parts = self.body(self.conv_first(feature)).view(n, NUM_PARTS, -1, h, w)
        attention = torch.softmax(heatmap, dim=1).unsqueeze(2)
        return (parts * attention).sum(1)


class AttentionFeedbackBlock(FeedbackBlock):
    """``block``: the feedback block of steps 2-4, with ``fusion_block`` after ``conv_first``."""

    def __init__(self, mid: int, num_blocks: int, num_fusion_blocks: int) -> None:
        super().__init__(2 * mid, mid, num_blocks)
        self.fusion_block = HeatmapFusion(mid, num_fusion_blocks)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, previous: torch.Tensor, heatmap: torch.Tensor
    ) -> torch.Tensor:
        merged = self.conv_first(torch.cat([x, previous], 1))
        return self.project(self.fusion_block(merged, heatmap))


class HourglassResBlock(nn.Module):
    """1x1 (half width), ReLU, 3x3, 1x1 (full width), plus the input (1x1 ``skip_layer`` if
    the width changes)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        half = cout // 2
        self.conv_block = nn.Sequential(
            nn.Conv2d(cin, half, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 3, 1, 1),
            nn.Conv2d(half, cout, 1),
        )
        self.skip_layer = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.skip_layer is None else self.skip_layer(x)
        return skip + self.conv_block(x)


class Hourglass(nn.Module):
    """A recursive hourglass: a full-resolution branch plus a half-resolution one."""

    def __init__(self, depth: int, channels: int) -> None:
        super().__init__()
        self.up1 = HourglassResBlock(channels, channels)
        self.low1 = HourglassResBlock(channels, channels)
        self.low2: nn.Module = (
            Hourglass(depth - 1, channels) if depth > 1 else HourglassResBlock(channels, channels)
        )
        self.low3 = HourglassResBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2, 2))))
        return self.up1(x) + F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=True)


class FeedbackHourglass(nn.Module):
    """Landmark heatmaps of an image, with a feedback tensor carried to the next step."""

    def __init__(self, mid: int = 256, num_keypoints: int = 68) -> None:
        super().__init__()
        self.mid = mid
        self.pre_conv_block = nn.Sequential(
            nn.Conv2d(RGB, mid // 4, 7, 2, 3),
            nn.ReLU(inplace=True),
            HourglassResBlock(mid // 4, mid // 2),
            nn.MaxPool2d(2, 2),
            HourglassResBlock(mid // 2, mid // 2),
            HourglassResBlock(mid // 2, mid),
        )
        self.first_conv = nn.Conv2d(2 * mid, 2 * mid, 1)
        self.hg = Hourglass(4, 2 * mid)
        self.last = nn.Sequential(
            HourglassResBlock(mid, mid),
            nn.Conv2d(mid, mid, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, num_keypoints, 1),
        )

    def forward(
        self, image: torch.Tensor, feedback: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.pre_conv_block(image)
        previous = feature if feedback is None else feedback
        feature = self.hg(self.first_conv(torch.cat([feature, previous], 1)))
        return self.last(feature[:, : self.mid]), feature[:, self.mid :]


def five_part_heatmaps(heatmaps: torch.Tensor) -> torch.Tensor:
    """The 68 landmark heatmaps as 5 part maps (eyes, nose, mouth, contour).

    Each map is first divided by its maximum (at least 0.05); a part's map is
    the sum of its landmarks' maps (``PARTS_68``).
    """
    peak = heatmaps.amax(dim=(2, 3), keepdim=True).clamp_min(0.05)
    scaled = heatmaps / peak
    if scaled.shape[1] == NUM_PARTS:
        return scaled
    return torch.stack([scaled[:, a:b].sum(1) for a, b in PARTS_68], 1)


class DICNet(nn.Module):
    """DIC's generator (module docstring), on mean-subtracted RGB; returns the last step's image."""

    def __init__(
        self,
        mid_channels: int = 48,
        num_blocks: int = 6,
        hg_mid_channels: int = 256,
        hg_num_keypoints: int = 68,
        num_fusion_blocks: int = 7,
        num_steps: int = NUM_STEPS,
    ) -> None:
        super().__init__()
        if hg_num_keypoints not in (NUM_PARTS, 68):
            raise ValueError(
                f"DIC: {hg_num_keypoints} landmarks; the part reduction knows 68 (or 5)"
            )
        self.num_steps = num_steps
        self.conv_first = nn.Sequential(
            nn.Conv2d(RGB, mid_channels * 4, 3, 1, 1),
            nn.PReLU(init=PRELU_INIT),
            nn.PixelShuffle(2),
        )
        self.first_block = FeedbackBlock(mid_channels, mid_channels, num_blocks)
        self.block = AttentionFeedbackBlock(mid_channels, num_blocks, num_fusion_blocks)
        self.hour_glass = FeedbackHourglass(hg_mid_channels, hg_num_keypoints)
        self.conv_last = nn.Sequential(
            nn.ConvTranspose2d(mid_channels, mid_channels, 8, 4, 2),
            nn.PReLU(init=PRELU_INIT),
            nn.Conv2d(mid_channels, RGB, 3, 1, 1),
        )

    def steps(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Every step's image and landmark heatmaps."""
        h, w = x.shape[-2:]
        base = F.interpolate(x, size=(h * SCALE, w * SCALE), mode="bilinear", align_corners=False)
        feat = self.conv_first(x)
        images, heatmaps = [], []
        hidden = feedback = heatmap = None
        for step in range(self.num_steps):
            if step == 0:
                hidden = self.first_block(feat)
            else:
                hidden = self.block(feat, hidden, five_part_heatmaps(heatmap))
            image = base + self.conv_last(hidden)
            heatmap, feedback = self.hour_glass(image, feedback)
            images.append(image)
            heatmaps.append(heatmap)
        return images, heatmaps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.steps(x)[0][-1]


def _count(state: Mapping[str, Any], pattern: str) -> int:
    compiled = re.compile(pattern)
    indices = {int(m.group(1)) for key in state if (m := compiled.match(key))}
    return max(indices) + 1 if indices else 0


def hyperparameters(state: Mapping[str, torch.Tensor], path: str | Path) -> dict[str, int]:
    """DICNet constructor arguments read off a state dict (``generator.`` removed)."""
    needed = (
        "conv_first.0.weight",
        "first_block.up_blocks.0.0.weight",
        "hour_glass.first_conv.weight",
        "hour_glass.last.3.weight",
    )
    for key in needed:
        if key not in state:
            raise InputError(
                path,
                f"not a DIC (DICNet) checkpoint: no {key}; expected OpenMMLab's layout "
                "([generator.]conv_first.0, first_block.up_blocks..., hour_glass...); "
                f"first keys: {', '.join(list(state)[:5])}",
            )
    kernel = tuple(state["first_block.up_blocks.0.0.weight"].shape[-2:])
    if kernel != (SCALE + 4, SCALE + 4):
        raise InputError(
            path, f"DIC feedback kernels are {kernel}: only the x{SCALE} network is supported"
        )
    return {
        "mid_channels": int(state["conv_first.0.weight"].shape[0]) // 4,
        "num_blocks": _count(state, r"first_block\.up_blocks\.(\d+)\."),
        "hg_mid_channels": int(state["hour_glass.first_conv.weight"].shape[0]) // 2,
        "hg_num_keypoints": int(state["hour_glass.last.3.weight"].shape[0]),
        "num_fusion_blocks": _count(state, r"block\.fusion_block\.body\.(\d+)\."),
    }


def check_denormalize(state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """The file's ``img_denormalize`` layer, when present, must add ``MEAN`` (and scale by 1)."""
    bias = state.get(DENORMALIZE + "bias")
    weight = state.get(DENORMALIZE + "weight")
    if bias is None or weight is None:
        return
    expected = torch.tensor(MEAN)
    identity = torch.eye(RGB).view(RGB, RGB, 1, 1)
    if bias.shape != expected.shape or not torch.allclose(bias.float(), expected, atol=1e-4):
        raise InputError(
            path,
            f"DIC checkpoint denormalises with mean {bias.flatten().tolist()}, not "
            f"{[round(v, 4) for v in MEAN]}: trained with another normalisation",
        )
    if weight.shape != identity.shape or not torch.allclose(weight.float(), identity):
        raise InputError(path, "DIC checkpoint's img_denormalize layer scales: std is not 1")


def load_dic(path: str | Path) -> DICNet:
    """DICNet from an OpenMMLab checkpoint (or a bare generator state), strictly, in eval mode."""
    state = read_state_dict(path)
    prefixed = openmmlab.is_openmmlab_model(state, TRAINING_ONLY)
    if prefixed:
        check_denormalize(state, path)
        state = openmmlab.generator_weights(state, path, TRAINING_ONLY)
    params = hyperparameters(state, path)
    net = DICNet(**params)
    what = "DICNet" + (" (key names below the file's generator. prefix)" if prefixed else "")
    load_strict(net, {key: value.float() for key, value in state.items()}, path, what)
    log.info("loaded DIC %s from %s", params, path)
    return net.eval()


def make_forward(net: DICNet, device: str):
    """RGB in [0, 1] -> DIC's mean-subtracted convention and back."""
    mean = torch.tensor(MEAN, device=device).view(1, RGB, 1, 1)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return net(x - mean) + mean

    return forward


def upscaler(net: DICNet, options: Mapping[str, Any], device: str) -> NetworkUpscaler:
    """The ``Upscaler`` around a DICNet (already on ``device``), options as in ``specs.face_sr``."""
    return NetworkUpscaler.of_method(
        options, make_forward(net, device), net, SCALE, device, input_size=INPUT_SIZE
    )


def build(options: Mapping[str, Any], device: str) -> NetworkUpscaler:
    """The ``dic`` method: options as declared in ``pipeline.upscale.specs.face_sr``."""
    return upscaler(load_dic(options["weights_path"]).to(device), options, device)
