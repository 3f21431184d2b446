"""PULSE's bicubic downsampler (torch), beside the other kernels of :mod:`pipeline.resize`.

The operator of PULSE's loss (``bicubic.py``'s ``BicubicDownSample``) and the recipe
with which PULSE's ``align_face.py`` makes its low-resolution inputs. Kept apart from
:mod:`pipeline.resize` only because it needs torch, which that module must not import
(the workflow imports it whenever it loads the config); ``resize.pulse_bicubic``
imports this module when the kernel is used, and the PULSE search imports it too.

Conventions (as PULSE):

- Images are float RGB, NCHW; uint8 images become ``values / 255`` in float32
  (torchvision's ``ToTensor``).
- Taps: the Keys cubic kernel (a = -0.5) sampled at ``(i - 2 f + 0.5) / f`` for
  ``i = 0 .. 4 f - 1`` (f the integer factor), evaluated in float32 as PULSE does
  (exact for power-of-two factors, the only ones PULSE uses), then normalised to
  sum 1 in the dtype of the images (PULSE: float32; its float64 fixture: float64).
- Separable: rows first, then columns, each a strided depthwise convolution after
  reflect padding (mirror without repeating the edge) of ``3 f`` pixels, ``3 f // 2``
  before. No clamping or rounding inside.
- 8-bit output (``align_face.py``): clamp to [0, 1], multiply by 255 in float32 and
  *truncate* (torchvision's ``ToPILImage`` on a float tensor: ``mul(255).byte()``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

KEYS_A = -0.5


def bicubic_taps(factor: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """PULSE's 1-D reduction filter: ``4 * factor`` taps summing to 1, in ``dtype``.

    Tap ``i`` sits at ``(i - 2 * factor + 0.5) / factor`` source pixels: the kernel is
    centred between two input pixels and stretched by the factor, so it low-passes
    as it reduces. Values are computed in float32, then normalised in ``dtype``.
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    size = 4 * factor
    x = ((torch.arange(size, dtype=torch.float32) - size // 2 + 0.5) / factor).abs()
    a = KEYS_A
    inner = (a + 2.0) * x.pow(3.0) - (a + 3.0) * x.pow(2.0) + 1
    outer = a * x.pow(3) - 5.0 * a * x.pow(2.0) + 8.0 * a * x - 4.0 * a
    raw = torch.where(x <= 1, inner, torch.where(x < 2, outer, torch.zeros_like(x)))
    taps = raw.to(dtype)
    return taps / taps.sum()


def bicubic_downsample(images: torch.Tensor, factor: int, padding: str = "reflect") -> torch.Tensor:
    """Downscale (N, C, H, W) float images by an integer ``factor`` as PULSE's loss does.

    See the module docstring. The negative lobes can overshoot [0, 1]; nothing is
    clamped. H and W must be multiples of ``factor`` (``ValueError`` otherwise).
    """
    if images.ndim != 4:
        raise ValueError(f"expected (N, C, H, W), got {tuple(images.shape)}")
    height, width = images.shape[2:]
    if height % factor or width % factor:
        raise ValueError(f"image size {height}x{width} is not a multiple of {factor}")
    channels = images.shape[1]
    taps = bicubic_taps(factor, images.dtype).to(images.device)
    pad = 3 * factor
    before, after = pad // 2, pad - pad // 2
    x = F.pad(images, (0, 0, before, after), mode=padding)
    rows = taps.view(1, 1, -1, 1).expand(channels, -1, -1, -1)
    x = F.conv2d(x, rows, stride=(factor, 1), groups=channels)
    x = F.pad(x, (before, after, 0, 0), mode=padding)
    columns = taps.view(1, 1, 1, -1).expand(channels, -1, -1, -1)
    return F.conv2d(x, columns, stride=(1, factor), groups=channels)


def truncate_to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float [0, 1] -> (N, H, W, 3) uint8 as PULSE saves images.

    Clamped to [0, 1], multiplied by 255 in float32 and *truncated*: torchvision's
    ``ToPILImage`` on float tensors, which PULSE uses for its outputs and its LR inputs.
    """
    values = images.detach().float().clamp(0, 1).mul(255).byte()
    return values.permute(0, 2, 3, 1).cpu().numpy()


def pulse_reduce(image: np.ndarray, size: int) -> torch.Tensor:
    """PULSE's reduction of a uint8 (H, W, 3) image to a (1, 3, size, size) float32 tensor.

    ``values / 255`` in float32, :func:`bicubic_downsample` by ``H // size``, on the
    CPU; not clamped or rounded. The image must be square and ``size`` must divide
    its side (``ValueError`` naming both sizes otherwise).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB (H, W, 3), got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    if height != width or height % size:
        raise ValueError(
            f"PULSE's bicubic downsampler reduces by a whole factor only: it needs a square "
            f"image whose side is a multiple of {size}, got {height}x{width} -> {size}x{size}"
        )
    tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        return bicubic_downsample(tensor, height // size)


def pulse_downscale(image: np.ndarray, size: int) -> np.ndarray:
    """Make an LR input exactly as PULSE's ``align_face.py``: uint8 (H, W, 3) -> (size, size, 3).

    :func:`pulse_reduce`, then clamp to [0, 1] and truncation to 8 bits
    (:func:`truncate_to_uint8`). PULSE ran the filter on CUDA and this runs it on the CPU:
    float32 kernels may differ in the last bit, which changes a pixel by one level
    only where ``255 * value`` lands within that bit of an integer.
    """
    return truncate_to_uint8(pulse_reduce(image, size))[0]
