"""Declared downscaling kernels.

The kernel that made a low-resolution input is part of every output path, so
results made with different kernels never mix. All kernels take and return
8-bit RGB arrays (H, W, 3), values 0..255.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image


def _pillow(filter_: Image.Resampling) -> Callable[[np.ndarray, int], np.ndarray]:
    def resize(image: np.ndarray, size: int) -> np.ndarray:
        # Pillow widens the filter support by the scale factor when reducing,
        # which is the antialiased ("area-aware") behaviour.
        return np.asarray(Image.fromarray(image).resize((size, size), filter_), dtype=np.uint8)

    return resize


KERNELS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    # Pillow's bicubic (a = -0.5), antialiased when reducing.
    "pil-bicubic": _pillow(Image.Resampling.BICUBIC),
    # Box filter: the mean over each source area (exact for integer factors).
    "pil-area": _pillow(Image.Resampling.BOX),
}


def downscale(image: np.ndarray, size: int, kernel: str) -> np.ndarray:
    """Downscale a square uint8 RGB image to ``size`` x ``size`` with a declared kernel."""
    if kernel not in KERNELS:
        raise KeyError(f"unknown downscaling kernel {kernel!r}; known: {sorted(KERNELS)}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB (H, W, 3), got {image.dtype} {image.shape}")
    return KERNELS[kernel](image, size)
