"""The SRGAN discriminator (Ledig et al., "Photo-Realistic Single Image Super-Resolution
Using a Generative Adversarial Network", CVPR 2017, figure 4).

Layers, as the paper describes them: a 3x3 convolution to 64 channels and
LeakyReLU(0.2); seven blocks of 3x3 convolution, batch normalisation and
LeakyReLU(0.2) with 64, 128, 128, 256, 256, 512, 512 channels and strides
2, 1, 2, 1, 2, 1, 2; then a dense layer of 1024 units, LeakyReLU(0.2) and a
dense layer of one unit. The paper ends with a sigmoid; here the network
returns the logit, so that the losses (``pipeline.train.losses``) use the
numerically stable BCE-with-logits, and WGAN critics use the raw score.

Conventions: input NCHW float RGB in [0, 1] (the range the generators of this
package produce and the data loader gives), square crops of side ``size``;
the network maps it to [-1, 1] itself (``2 x - 1``), the range the paper
normalises HR images to, so callers never rescale. Output: ``(N, 1)`` logits.
Module names follow torchvision's VGG (``features.N``, ``classifier.N``).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BLOCKS", "SRGANDiscriminator"]

# (output channels, stride) of the seven conv-BN-LeakyReLU blocks.
BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 2),
    (128, 1),
    (128, 2),
    (256, 1),
    (256, 2),
    (512, 1),
    (512, 2),
)
_NEGATIVE_SLOPE = 0.2
# Four stride-2 blocks halve the side four times.
_REDUCTION = 2 ** sum(stride == 2 for _, stride in BLOCKS)


class SRGANDiscriminator(nn.Module):
    """The SRGAN paper's discriminator for ``size`` x ``size`` crops; returns logits ``(N, 1)``.

    ``in_channels``: colour channels of the input (3 for RGB). ``size``: side of
    the square HR crops it judges (96 in the paper, 128 for 32->128 faces); the
    first dense layer has ``512 * (size / 16) ** 2`` inputs, so ``size`` must be a
    positive multiple of 16 and every input must have exactly that side.
    ``batch_norm``: the paper's batch normalisation after each block's convolution
    (True). Gulrajani et al. advise against batch normalisation in a WGAN-GP
    critic, because it makes each sample's gradient depend on the rest of the
    batch; pass False to drop it there (the convolutions then get biases).
    Input: float RGB in [0, 1], NCHW (mapped to [-1, 1] inside).
    """

    def __init__(self, in_channels: int = 3, size: int = 96, *, batch_norm: bool = True) -> None:
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f"SRGANDiscriminator: size must be a positive integer, got {size!r}")
        if size % _REDUCTION:
            raise ValueError(
                f"SRGANDiscriminator: size {size} is not a multiple of {_REDUCTION} (its four "
                f"stride-2 convolutions halve the crop four times); use HR crops of a side "
                f"divisible by {_REDUCTION}, e.g. {max(1, size // _REDUCTION) * _REDUCTION}"
            )
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels <= 0:
            raise ValueError(
                f"SRGANDiscriminator: in_channels must be a positive integer, got {in_channels!r}"
            )
        self.in_channels = in_channels
        self.size = size
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1),
            nn.LeakyReLU(_NEGATIVE_SLOPE, inplace=True),
        ]
        channels = 64
        for out_channels, stride in BLOCKS:
            # A bias before batch normalisation is cancelled by its mean subtraction.
            layers.append(
                nn.Conv2d(channels, out_channels, 3, stride=stride, padding=1, bias=not batch_norm)
            )
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.LeakyReLU(_NEGATIVE_SLOPE, inplace=True))
            channels = out_channels
        self.features = nn.Sequential(*layers)
        side = size // _REDUCTION
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * side * side, 1024),
            nn.LeakyReLU(_NEGATIVE_SLOPE, inplace=True),
            nn.Linear(1024, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1)`` (higher: judged real) of RGB ``images`` in [0, 1], NCHW."""
        expected = (self.in_channels, self.size, self.size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"SRGANDiscriminator: expected input of shape (N, {self.in_channels}, "
                f"{self.size}, {self.size}), got {tuple(images.shape)}"
            )
        return self.classifier(self.features(images * 2 - 1))
