"""ArcFace identity: the angle between face embeddings of output and ground truth.

This is how face-restoration papers report identity (the "Deg." column of
GFPGAN and VQFR; VQFR publishes its script, ``metric_paper/calculate_cos_dist.py``):
both faces go through an ArcFace ResNet-18, and the score is the angle between
the two embeddings. It sits beside dlib's descriptor distance
(:mod:`pipeline.measure.identity`), which answers a different question (same
person or not, through dlib's own detection and 150 px chip).

**Network** (:class:`ArcFaceResNet18`): the ResNet-18 of ``arcface-pytorch``
that GFPGAN trains its identity loss with (BasicSR/GFPGAN's ``ResNetArcFace``
with ``block="IRBlock"``, ``layers=(2, 2, 2, 2)``, ``use_se=False``): a
one-channel 128 x 128 input, a 3x3 stem, 2x2 max pooling, four stages of two
improved residual blocks (BN, conv, BN, PReLU, conv, BN; the block's one PReLU
also follows the sum), 64/128/256/512 channels at 64/32/16/8 px, then BN,
a linear layer from the flattened 512 x 8 x 8 map and a 1-d BN. The embedding
is that last BN's 512 outputs, not normalised. Module names follow the
published checkpoint key for key; dropout before the linear layer is a no-op
in evaluation and holds no weights, so it is left out.

**Checkpoint**: ``arcface_resnet18.pth`` of GFPGAN's v0.1.0 release, a state
dict saved through ``DataParallel`` (``module.`` keys; the prefix is removed on
reading, see :func:`pipeline.upscale.torch_runtime.read_state_dict`). VQFR's
script loads ``resnet18_110.pth`` of ``arcface-pytorch`` into the same network;
GFPGAN's file is the one with a direct URL. Loading is strict: a file of
another layout fails naming the file and the keys.

**Protocol** (:func:`embed`), as in VQFR's script:

- colour to gray with ITU-R BT.601 luma weights, ``0.299 R + 0.587 G + 0.114 B``
  (OpenCV's ``imread(path, 0)``), kept in float (the script's gray image is
  rounded to 8 bits, a difference of at most half a level);
- resized to 128 x 128 with bilinear interpolation, half-pixel centres and
  **no antialiasing** (OpenCV's ``INTER_LINEAR``, the script's kernel; torch's
  ``interpolate(mode="bilinear", align_corners=False)`` computes the same).
  Declared because it matters: reducing a 512 px face this way samples two
  pixels of every four per axis (aliasing), which is the published protocol;
  128 px evaluation images (the default tasks) are not resampled at all, and
  smaller ones are enlarged;
- scaled to [-1, 1] by ``(x - 127.5) / 127.5``; one image, no flip;
- cosine similarity of the two embeddings, and the angle
  ``arccos(cosine)`` in degrees.

**Aggregation**: per image, then the summary's mean with a bootstrap CI over
all scored images. VQFR's script instead leaves images under 1 degree out of
its mean ("almost identical to original") and counts them; here they are
scored like every other image (an output identical to its ground truth scores 0,
up to float32 rounding between batches: under 0.001 degrees).
Like dlib's identity, the metric needs an aligned face (catalogue ``needs_face``):
centre crops are not scored. The measure stage scores it in batches
(:class:`pipeline.measure.stage.ArcFaceMetric`); each ground truth is embedded
once per shard (:mod:`pipeline.measure.reference`) and read by every method,
kernel and seed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "COLUMNS",
    "EMBEDDING_SIZE",
    "GRAY_WEIGHTS",
    "INPUT_SIZE",
    "angle_degrees",
    "arcface_network",
    "checkpoint_of",
    "cosine_similarity",
    "embed",
    "load_arcface",
    "to_network_input",
]

INPUT_SIZE = 128
EMBEDDING_SIZE = 512
# ITU-R BT.601 luma, OpenCV's gray conversion (the papers' script reads gray with it).
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
# The per-image columns, as named in the metric catalogue.
COSINE, ANGLE = "arcface_cosine", "arcface_angle"
COLUMNS = (COSINE, ANGLE)

_WIDTHS = (64, 128, 256, 512)
_BLOCKS_PER_STAGE = 2


def arcface_network() -> torch.nn.Module:
    """A randomly initialised :class:`ArcFaceResNet18` (see the module docstring)."""
    return _network_class()()


@functools.cache
def _network_class() -> type:
    # Built on first use so that importing this module does not load torch.
    from torch import nn

    def conv3x3(channels_in: int, channels_out: int, stride: int = 1) -> nn.Conv2d:
        return nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False)

    class IRBlock(nn.Module):
        """Improved residual block; ``downsample`` projects the shortcut when the shape changes."""

        def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
            super().__init__()
            self.bn0 = nn.BatchNorm2d(channels_in)
            self.conv1 = conv3x3(channels_in, channels_in)
            self.bn1 = nn.BatchNorm2d(channels_in)
            self.prelu = nn.PReLU()
            self.conv2 = conv3x3(channels_in, channels_out, stride)
            self.bn2 = nn.BatchNorm2d(channels_out)
            self.downsample = (
                nn.Sequential(
                    nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(channels_out),
                )
                if stride != 1 or channels_in != channels_out
                else None
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            shortcut = x if self.downsample is None else self.downsample(x)
            residual = self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(self.bn0(x))))))
            return self.prelu(residual + shortcut)

    class ArcFaceResNet18(nn.Module):
        """ArcFace ResNet-18 (IRBlock, no SE): ``(N, 1, 128, 128)`` in [-1, 1] -> ``(N, 512)``."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, _WIDTHS[0], 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(_WIDTHS[0])
            self.prelu = nn.PReLU()
            self.maxpool = nn.MaxPool2d(2, 2)
            channels = _WIDTHS[0]
            for index, width in enumerate(_WIDTHS, start=1):
                stride = 1 if index == 1 else 2
                blocks = [IRBlock(channels, width, stride)]
                blocks += [IRBlock(width, width, 1) for _ in range(1, _BLOCKS_PER_STAGE)]
                self.add_module(f"layer{index}", nn.Sequential(*blocks))
                channels = width
            side = INPUT_SIZE // 2 ** len(_WIDTHS)
            self.bn4 = nn.BatchNorm2d(channels)
            self.fc5 = nn.Linear(channels * side * side, EMBEDDING_SIZE)
            self.bn5 = nn.BatchNorm1d(EMBEDDING_SIZE)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.maxpool(self.prelu(self.bn1(self.conv1(x))))
            for index in range(1, len(_WIDTHS) + 1):
                x = getattr(self, f"layer{index}")(x)
            return self.bn5(self.fc5(self.bn4(x).flatten(1)))

    return ArcFaceResNet18


@functools.lru_cache(maxsize=4)
def _load(path: Path, device: str) -> torch.nn.Module:
    # measure may read the upscale floor: the checkpoint helpers are shared, not copied.
    from pipeline.upscale.torch_runtime import load_strict, read_state_dict

    network = arcface_network()
    load_strict(network, read_state_dict(path), path, "ArcFace ResNet-18 (GFPGAN's ResNetArcFace)")
    network.requires_grad_(False)
    return network.eval().to(device)


def load_arcface(path: str | os.PathLike[str], device: str = "cpu") -> torch.nn.Module:
    """The ArcFace network with the weights of ``path``, in eval mode on ``device``.

    Strict: every key and shape of the file must fit (``InputError`` naming the
    file, the missing and unexpected keys and the mis-shaped ones otherwise).
    Cached per (resolved path, device): treat the module as read-only.
    """
    return _load(Path(path).expanduser().resolve(), str(device))


def checkpoint_of(checkpoints: Mapping[str, Any] | None, job: str) -> str:
    """ArcFace's checkpoint among a job's named inputs (``arcface``); a ValueError
    naming ``job`` when it is missing. Takes a dict or Snakemake's named input list
    (whose ``in`` looks at values, not names)."""
    try:
        return str(checkpoints["arcface"])  # type: ignore[index]
    except (TypeError, KeyError, AttributeError):
        raise ValueError(f"{job}: ArcFace is enabled, but its checkpoint was not given") from None


def to_network_input(images: np.ndarray, device: str | torch.device) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` RGB -> ``(N, 1, 128, 128)`` float32 gray in [-1, 1] on ``device``.

    Gray with :data:`GRAY_WEIGHTS`, bilinear without antialiasing to 128 px
    (skipped at 128 px), then ``(x - 127.5) / 127.5``: the conventions of the
    module docstring. The bytes travel as uint8 and are converted on the device.
    """
    import torch
    import torch.nn.functional as F

    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise TypeError(
            "ArcFace takes uint8 RGB images in [0, 255] (N, H, W, 3); got "
            f"{getattr(images, 'dtype', type(images).__name__)}"
        )
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"ArcFace takes (N, H, W, 3) RGB images; got shape {images.shape}")
    pixels = torch.from_numpy(np.require(images, requirements=["C", "W"])).to(device)
    weights = torch.tensor(GRAY_WEIGHTS, dtype=torch.float32, device=pixels.device)
    gray = (pixels.float() @ weights).unsqueeze(1)
    if gray.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        gray = F.interpolate(
            gray, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
            antialias=False,
        )  # fmt: skip
    return gray.sub_(127.5).div_(127.5)


def embed(
    network: torch.nn.Module, images: np.ndarray | Sequence[np.ndarray], batch_size: int = 32
) -> np.ndarray:
    """ArcFace embeddings of uint8 RGB images (an ``(N, H, W, 3)`` array, or a
    sequence of ``(H, W, 3)`` arrays of any sizes): float32 ``(N, 512)``.

    Run ``batch_size`` images at a time under ``torch.no_grad`` on the network's
    device, in true float32 (TF32 off on CUDA, as the upscalers' default
    :func:`pipeline.upscale.torch_runtime.precision`); an image's embedding does
    not depend on its batch (eval mode), up to float32 rounding (1e-5 of the
    values' scale). A sequence of mixed sizes (never within one task) is
    embedded one image at a time.
    """
    import torch

    from pipeline.upscale.torch_runtime import precision

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if not isinstance(images, np.ndarray):
        if len({image.shape for image in images}) > 1:
            return np.concatenate([embed(network, image[None], 1) for image in images])
        images = np.stack(images) if len(images) else np.empty((0, 1, 1, 3), np.uint8)
    device = next(network.parameters()).device
    out = np.empty((len(images), EMBEDDING_SIZE), dtype=np.float32)
    with torch.no_grad(), precision(str(device)):
        for start in range(0, len(images), batch_size):
            batch = to_network_input(images[start : start + batch_size], device)
            out[start : start + len(batch)] = network(batch).float().cpu().numpy()
    return out


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    rows = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, rows / norms, np.nan)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b``, in float64.

    In [-1, 1]: 1 for the same direction, 0 for orthogonal embeddings; NaN where
    either vector is zero. Vectors ``(D,)`` count as one row.
    """
    unit_a, unit_b = _unit_rows(a), _unit_rows(b)
    return np.clip(np.sum(unit_a * unit_b, axis=-1), -1.0, 1.0)


def angle_degrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between each row of ``a`` and the same row of ``b``, in degrees (float64).

    ``arccos(cosine_similarity(a, b))`` in [0, 180]: 0 for the same direction
    (identical images), 90 for orthogonal embeddings; NaN where either vector
    is zero. Computed as ``2 atan2(|u - v|, |u + v|)`` of the unit vectors,
    which equals the arccos but stays exact near 0, where arccos loses digits.
    """
    unit_a, unit_b = _unit_rows(a), _unit_rows(b)
    apart = np.linalg.norm(unit_a - unit_b, axis=-1)
    together = np.linalg.norm(unit_a + unit_b, axis=-1)
    return np.degrees(2.0 * np.arctan2(apart, together))
