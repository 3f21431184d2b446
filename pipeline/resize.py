"""Declared downscaling kernels.

The kernel that made a low-resolution input is part of every output path, so
results made with different kernels never mix. All kernels take 8-bit RGB arrays
(H, W, 3), values 0..255, and return (size, size, 3) uint8 arrays.

Coordinates: the kernels align pixel *centres*: the centre of output pixel ``i``
(0-based) falls at input coordinate ``(i + 0.5) / scale - 0.5``, where ``scale =
output length / input length``, so the content does not shift (``pulse-bicubic``:
for even factors only; odd factors shift it by half an input pixel).

Kernels:

- ``pil-bicubic``: Pillow's ``Image.resize(..., BICUBIC)``.
- ``pil-area``: Pillow's ``Image.resize(..., BOX)``.
- ``matlab-bicubic``: MATLAB's ``imresize(A, [size size])`` (bicubic, antialiased).
- ``pulse-bicubic``: PULSE's ``BicubicDownSample``, the operator of its loss, with
  ``align_face.py``'s 8-bit truncation (:mod:`pipeline.resize_pulse`).

See each kernel's function for the filter, border handling and rounding.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from PIL import Image

Kernel = Callable[[np.ndarray, int], np.ndarray]

# ---------------------------------------------------------------- Pillow


def _pillow(filter_: Image.Resampling, doc: str) -> Kernel:
    def resize(image: np.ndarray, size: int) -> np.ndarray:
        return np.asarray(Image.fromarray(image).resize((size, size), filter_), dtype=np.uint8)

    resize.__doc__ = doc
    return resize


_PIL_COMMON = """
    Separable, horizontal pass first, then vertical, the intermediate image stored
    as uint8. When reducing, the filter support is widened by the reduction factor
    (antialiasing). Border: taps that fall outside the image are dropped and the
    remaining weights renormalised (no padding). Weights are 22-bit fixed point;
    each pass rounds half up and clips to 0..255 (Pillow's ``Resample.c``).
"""

pil_bicubic = _pillow(
    Image.Resampling.BICUBIC,
    "Pillow bicubic: Keys cubic kernel, a = -0.5, radius 2 input pixels (times the factor).\n"
    + _PIL_COMMON,
)
pil_area = _pillow(
    Image.Resampling.BOX,
    "Pillow box filter: each output pixel is the mean over its source area.\n"
    + _PIL_COMMON
    + "    For an integer factor f this is the f x f block mean, except that the\n"
    "    row means are rounded to uint8 before the column means are taken.\n",
)

# ---------------------------------------------------------------- MATLAB


def _keys_cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's ``cubic`` kernel (Keys, a = -0.5), zero outside |x| <= 2."""
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    near = (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1)
    far = (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * ((absx > 1) & (absx <= 2))
    return near + far


@functools.lru_cache(maxsize=64)
def matlab_bicubic_weights(
    in_length: int, out_length: int, antialiasing: bool = True
) -> np.ndarray:
    """MATLAB ``imresize``'s bicubic weights along one axis: a dense (out, in) float64 matrix.

    Row ``i`` holds the weights of the input samples for output sample ``i``
    (both 0-based); ``weights @ signal`` resizes a 1-D signal. Follows
    ``contributions`` in MATLAB's ``imresize.m``: scale = out / in; when shrinking
    with antialiasing the kernel becomes ``scale * cubic(scale * x)`` with width
    ``4 / scale``; input coordinate (1-based) ``u = x / scale + 0.5 * (1 - 1 / scale)``;
    each row is normalised to sum to 1; indices outside the signal are mirrored
    with the edge sample repeated (symmetric padding: ... 2 1 | 1 2 ... n | n n-1 ...).
    Mirrored taps that land on the same sample are added. Read-only (cached).
    """
    if in_length < 1 or out_length < 1:
        raise ValueError(f"lengths must be >= 1, got {in_length} -> {out_length}")
    scale = out_length / in_length
    width = 4.0
    if scale < 1 and antialiasing:
        width = width / scale

        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * _keys_cubic(scale * x)
    else:
        kernel = _keys_cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)[:, None]
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(np.ceil(width)) + 2
    indices = left + np.arange(taps)  # 1-based, may fall outside 1..in_length
    weights = kernel(u - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # MATLAB: aux = [1:n, n:-1:1]; indices = aux(mod(indices - 1, 2n) + 1), here 0-based.
    period = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    sources = period[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    matrix = np.zeros((out_length, in_length))
    rows = np.broadcast_to(np.arange(out_length)[:, None], sources.shape)
    np.add.at(matrix, (rows, sources), weights)
    matrix.setflags(write=False)
    return matrix


def round_half_away_uint8(values: np.ndarray) -> np.ndarray:
    """Float -> uint8 as MATLAB converts doubles: clip to 0..255, round half away from zero."""
    clipped = np.clip(values, 0.0, 255.0)
    floor = np.floor(clipped)
    # Compare the exact fractional part rather than adding 0.5 (which can round up
    # values just below .5).
    return np.where(clipped - floor >= 0.5, floor + 1, floor).astype(np.uint8)


def _matlab_resize_axis(image: np.ndarray, axis: int, out_length: int) -> np.ndarray:
    if image.shape[axis] == out_length:
        # MATLAB's weights are then exactly the identity (cubic(0) = 1, cubic(+-1) = 0).
        return image
    weights = matlab_bicubic_weights(image.shape[axis], out_length)
    samples = image.astype(np.float64)
    if axis == 0:
        resized = np.tensordot(weights, samples, axes=(1, 0))
    else:
        resized = np.matmul(weights, samples)  # (out, W) @ (H, W, 3), batched over rows
    return round_half_away_uint8(resized)


def matlab_bicubic(image: np.ndarray, size: int) -> np.ndarray:
    """MATLAB ``imresize(image, [size size])`` (default method 'bicubic', antialiasing on).

    Keys cubic kernel, a = -0.5; when shrinking, the kernel is stretched by the
    reduction factor (antialiasing; width 4 / scale input pixels); weights per
    output pixel normalised to sum 1 (:func:`matlab_bicubic_weights`). Border:
    symmetric padding (indices mirrored, edge pixel repeated), as current MATLAB
    does (the 2006 ``imresize.m`` clamped indices instead, replicating the edge).

    Separable: MATLAB first resizes the axis with the smaller scale (the larger
    reduction), rows first on a tie, and since each pass outputs the input's class,
    the intermediate result is rounded to uint8 too. Each pass accumulates in
    float64 and converts like MATLAB's double -> uint8: clip to 0..255, round half
    away from zero. Works for any factor, shrinking or enlarging (no antialiasing
    then), and for non-square inputs.
    """
    scales = np.array([size / image.shape[0], size / image.shape[1]])
    resized = image
    for axis in np.argsort(scales, kind="stable"):
        resized = _matlab_resize_axis(resized, int(axis), size)
    return resized


# ---------------------------------------------------------------- PULSE


def pulse_bicubic(image: np.ndarray, size: int) -> np.ndarray:
    """PULSE's LR recipe (``align_face.py``): :func:`pipeline.resize_pulse.pulse_downscale`.

    The operator through which PULSE's loss compares its generated image with the
    LR input (``BicubicDownSample``), applied to the image as ``align_face.py``
    does: Keys cubic kernel (a = -0.5) stretched by the integer factor f = H / size
    (4 f taps, centred between two input pixels), separable (rows, then columns),
    reflect padding (mirror without repeating the edge pixel), stride f; in float32
    on the CPU on values / 255 (``ToTensor``). Rounding as PULSE's: clip to [0, 1],
    times 255, *truncated* (``ToPILImage``), so PULSE sees the inputs it was
    designed for (truncation lowers pixels by half a level on average).

    Integer factors only: the image must be square with a side that is a multiple
    of ``size`` (``ValueError`` otherwise).
    """
    # Imported here so that importing pipeline.resize does not load torch.
    from pipeline.resize_pulse import pulse_downscale

    return pulse_downscale(image, size)


# ---------------------------------------------------------------- registry

KERNELS: dict[str, Kernel] = {
    "pil-bicubic": pil_bicubic,
    "pil-area": pil_area,
    "matlab-bicubic": matlab_bicubic,
    "pulse-bicubic": pulse_bicubic,
}


# Kernels that only reduce by whole factors (the config check refuses other tasks for them).
WHOLE_FACTOR_KERNELS = ("pulse-bicubic",)


def downscale(image: np.ndarray, size: int, kernel: str) -> np.ndarray:
    """Downscale a uint8 RGB image (H, W, 3) to ``size`` x ``size`` with a declared kernel."""
    if kernel not in KERNELS:
        raise KeyError(f"unknown downscaling kernel {kernel!r}; known: {sorted(KERNELS)}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB (H, W, 3), got {image.dtype} {image.shape}")
    if size < 1:
        raise ValueError(f"output size must be >= 1, got {size}")
    return KERNELS[kernel](image, size)
