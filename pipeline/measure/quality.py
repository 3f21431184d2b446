"""Full-reference image-quality metrics: PSNR, SSIM and MSE.

Conventions (those of BasicSR's ``calculate_psnr``/``calculate_ssim``, which
reproduce the MATLAB code used in most super-resolution papers):

- Inputs are ``uint8`` arrays of shape ``H x W x 3`` in RGB order, i.e. the
  8-bit quantized images exactly as saved to PNG. Float inputs are refused so
  that an image in [0, 1] can never be scored as if it were in [0, 255].
- All arithmetic is float64.
- ``crop_border`` pixels are removed from every edge before computing (the
  usual choice is the upscaling factor). ``0`` means no crop.
- ``y_channel=True`` scores only the BT.601 limited-range luma of MATLAB's
  ``rgb2ycbcr`` (Y in [16, 235]), kept as an unrounded float as BasicSR does.
  BasicSR converts in float32; doing it in float64 here moves PSNR by far less
  than the 0.01 dB that papers report.

The single-image functions (:func:`psnr`, :func:`ssim`, :func:`mse`) are the
reference; the ``*_batch`` variants score a stack ``N x H x W x 3`` in one
call and give the same values (the tests check this).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "SSIM_C1",
    "SSIM_C2",
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "mse",
    "mse_batch",
    "psnr",
    "psnr_batch",
    "rgb_to_y",
    "ssim",
    "ssim_batch",
]

PIXEL_MAX = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = (0.01 * PIXEL_MAX) ** 2
SSIM_C2 = (0.03 * PIXEL_MAX) ** 2

# MATLAB rgb2ycbcr luma row, scaled for RGB in [0, 255].
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64) / PIXEL_MAX
_Y_OFFSET = 16.0

# Images per chunk in ssim_batch: bounds the float64 temporaries (5 planes per
# image) to a few tens of MB whatever the stack size.
_SSIM_CHUNK = 16


def _gaussian_taps(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    # Same taps as cv2.getGaussianKernel(11, 1.5) and as scipy's gaussian_filter
    # with truncate=3.5: the 2-D window is their outer product.
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    taps = np.exp(-(x**2) / (2.0 * sigma**2))
    return taps / taps.sum()


_TAPS = _gaussian_taps()


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Luma of an RGB image as MATLAB's ``rgb2ycbcr`` (BT.601, limited range).

    ``img`` is ``... x 3`` RGB, uint8 or float with values in [0, 255]. Returns
    float64 ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` with the
    channel axis dropped; values lie in [16, 235]. No rounding is applied.
    """
    arr = np.asarray(img)
    if arr.ndim < 3 or arr.shape[-1] != 3:
        raise ValueError(f"rgb_to_y expects an H x W x 3 RGB array; got shape {arr.shape}")
    return arr.astype(np.float64, copy=False) @ _Y_WEIGHTS + _Y_OFFSET


def _check_pair(img: np.ndarray, ref: np.ndarray, crop_border: int, batched: bool) -> None:
    expected = "N x H x W x 3" if batched else "H x W x 3"
    ndim = 4 if batched else 3
    if not isinstance(img, np.ndarray) or not isinstance(ref, np.ndarray):
        raise TypeError(f"expected numpy arrays; got {type(img).__name__} and {type(ref).__name__}")
    if img.shape != ref.shape:
        raise ValueError(f"image and reference shapes differ: {img.shape} vs {ref.shape}")
    if img.ndim != ndim or img.shape[-1] != 3:
        raise ValueError(f"expected {expected} RGB arrays; got shape {img.shape}")
    for name, arr in (("image", img), ("reference", ref)):
        if arr.dtype != np.uint8:
            raise TypeError(
                f"{name} has dtype {arr.dtype}; metrics expect uint8 in [0, 255] "
                "(quantize first, e.g. np.clip(np.round(x), 0, 255).astype(np.uint8))"
            )
    if isinstance(crop_border, bool) or not isinstance(crop_border, int | np.integer):
        raise TypeError(f"crop_border must be an int; got {crop_border!r}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0; got {crop_border}")
    height, width = img.shape[-3], img.shape[-2]
    if 2 * crop_border >= min(height, width):
        raise ValueError(f"crop_border={crop_border} leaves nothing of a {height} x {width} image")


def _crop(img: np.ndarray, crop_border: int) -> np.ndarray:
    if crop_border:
        return img[..., crop_border:-crop_border, crop_border:-crop_border, :]
    return img


def _pixels(img: np.ndarray, crop_border: int, y_channel: bool) -> np.ndarray:
    """float64 ``... x H' x W' x C`` values after the crop and optional Y conversion (C=1)."""
    img = _crop(img, crop_border)
    if y_channel:
        return rgb_to_y(img)[..., None]
    return img.astype(np.float64)


def _planes(img: np.ndarray, crop_border: int, y_channel: bool) -> np.ndarray:
    """``... x C x H' x W'`` planes (a view where possible) after the crop and optional Y."""
    img = _crop(img, crop_border)
    if y_channel:
        return rgb_to_y(img)[..., None, :, :]
    return np.moveaxis(img, -1, -3)


def _psnr_from_mse(mse_255: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(PIXEL_MAX**2 / mse_255)


def _mse_255(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean squared difference over the last three axes; overwrites ``a``.

    Few large temporaries on purpose: allocation churn, not arithmetic, dominates
    at these image sizes.
    """
    a -= b
    count = a.shape[-3] * a.shape[-2] * a.shape[-1]
    return np.einsum("...ijk,...ijk->...", a, a) / count


def psnr(img: np.ndarray, ref: np.ndarray, crop_border: int, y_channel: bool = False) -> float:
    """Peak signal-to-noise ratio in dB, peak 255.

    ``img`` and ``ref`` are uint8 ``H x W x 3`` RGB. ``crop_border`` pixels are
    cut from each edge first; with ``y_channel`` only the MATLAB luma is scored,
    otherwise the MSE is taken over all three channels together (BasicSR).
    Identical images give ``inf``. Raises ValueError naming the shapes if they
    differ.
    """
    _check_pair(img, ref, crop_border, batched=False)
    a = _pixels(img, crop_border, y_channel)
    b = _pixels(ref, crop_border, y_channel)
    return float(_psnr_from_mse(_mse_255(a, b)))


def psnr_batch(
    imgs: np.ndarray, refs: np.ndarray, crop_border: int, y_channel: bool = False
) -> np.ndarray:
    """:func:`psnr` of each pair in ``N x H x W x 3`` uint8 stacks; float64 array of N."""
    _check_pair(imgs, refs, crop_border, batched=True)
    a = _pixels(imgs, crop_border, y_channel)
    b = _pixels(refs, crop_border, y_channel)
    return _psnr_from_mse(_mse_255(a, b))


def mse(img: np.ndarray, ref: np.ndarray, crop_border: int = 0) -> float:
    """Mean squared error of RGB pixel values scaled to [0, 1] (value / 255).

    This is the unit SR3 reports (so the result lies in [0, 1]); it equals the
    0..255 MSE divided by 255**2. Averaged over all pixels and the three RGB
    channels after cutting ``crop_border`` pixels from each edge (none by
    default). Inputs as for :func:`psnr`.
    """
    _check_pair(img, ref, crop_border, batched=False)
    a = _pixels(img, crop_border, y_channel=False)
    b = _pixels(ref, crop_border, y_channel=False)
    return float(_mse_255(a, b) / PIXEL_MAX**2)


def mse_batch(imgs: np.ndarray, refs: np.ndarray, crop_border: int = 0) -> np.ndarray:
    """:func:`mse` of each pair in ``N x H x W x 3`` uint8 stacks; float64 array of N."""
    _check_pair(imgs, refs, crop_border, batched=True)
    a = _pixels(imgs, crop_border, y_channel=False)
    b = _pixels(refs, crop_border, y_channel=False)
    return _mse_255(a, b) / PIXEL_MAX**2


def _filter_valid(planes: np.ndarray) -> np.ndarray:
    """Correlate the last two axes with the 11 x 11 Gaussian window, 'valid' part only.

    Equivalent to BasicSR's ``cv2.filter2D(x, -1, window)[5:-5, 5:-5]``: the crop
    keeps exactly the positions where the window lies inside the image, so the
    border mode of the filter never matters. The window is separable, so rows
    and then columns are filtered with the 1-D taps.
    """
    if min(planes.shape[-2], planes.shape[-1]) < _TAPS.size:
        raise ValueError(f"planes of shape {planes.shape} are smaller than the SSIM window")
    # A strided window view contracted with the taps: no copies of the windows, and
    # measured 2-3x faster than summing 11 shifted slices or scipy.ndimage.correlate1d.
    rows = sliding_window_view(planes, _TAPS.size, axis=-2) @ _TAPS
    return sliding_window_view(rows, _TAPS.size, axis=-1) @ _TAPS


def _ssim_mean(img: np.ndarray, ref: np.ndarray, crop_border: int, y_channel: bool) -> np.ndarray:
    """Mean SSIM over the valid region and the channels of validated uint8 ``... x H x W x 3``.

    All five filtered moments come from one filtering pass over a single stacked
    buffer, and the formula works in place where it can: at these image sizes
    allocation churn, not arithmetic, dominates the cost.
    """
    a, b = _planes(img, crop_border, y_channel), _planes(ref, crop_border, y_channel)
    if min(a.shape[-2], a.shape[-1]) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels after the crop; "
            f"got {a.shape[-2]} x {a.shape[-1]}"
        )
    stack = np.empty((5, *a.shape), dtype=np.float64)
    stack[0], stack[1] = a, b
    np.multiply(stack[0], stack[0], out=stack[2])
    np.multiply(stack[1], stack[1], out=stack[3])
    np.multiply(stack[0], stack[1], out=stack[4])
    filtered = _filter_valid(stack)
    mu_a, mu_b, var_a, var_b, cov = filtered
    mu_ab = mu_a * mu_b
    # Second moments become population (weighted) variances, as Wang et al. 2004
    # and BasicSR compute them; no clipping of tiny negative round-off.
    np.multiply(mu_a, mu_a, out=mu_a)
    np.multiply(mu_b, mu_b, out=mu_b)
    var_a -= mu_a
    var_b -= mu_b
    cov -= mu_ab
    # num = (2 mu_a mu_b + C1)(2 cov + C2), den = (mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2)
    mu_ab *= 2.0
    mu_ab += SSIM_C1
    cov *= 2.0
    cov += SSIM_C2
    mu_ab *= cov
    mu_a += mu_b
    mu_a += SSIM_C1
    var_a += var_b
    var_a += SSIM_C2
    mu_a *= var_a
    mu_ab /= mu_a
    # Equal-sized maps, so this equals the mean over channels of per-channel means.
    return np.mean(mu_ab, axis=(-3, -2, -1))


def ssim(img: np.ndarray, ref: np.ndarray, crop_border: int, y_channel: bool = True) -> float:
    """Structural similarity (Wang et al. 2004) as BasicSR/MATLAB compute it.

    ``img`` and ``ref`` are uint8 ``H x W x 3`` RGB; ``crop_border`` pixels are cut
    from each edge, then (by default) only the MATLAB luma is scored. The
    window is an 11 x 11 Gaussian with sigma 1.5, ``C1 = (0.01*255)**2``,
    ``C2 = (0.03*255)**2``, and the SSIM map is averaged over the 'valid'
    positions only (the window entirely inside the cropped image, i.e. a
    5-pixel band is dropped on each side). With ``y_channel=False`` the three
    RGB channels are scored separately and their SSIMs averaged. Identical
    images give 1.0. The cropped image must be at least 11 x 11.
    """
    _check_pair(img, ref, crop_border, batched=False)
    return float(_ssim_mean(img, ref, crop_border, y_channel))


def ssim_batch(
    imgs: np.ndarray, refs: np.ndarray, crop_border: int, y_channel: bool = True
) -> np.ndarray:
    """:func:`ssim` of each pair in ``N x H x W x 3`` uint8 stacks; float64 array of N."""
    _check_pair(imgs, refs, crop_border, batched=True)
    out = np.empty(imgs.shape[0], dtype=np.float64)
    for start in range(0, imgs.shape[0], _SSIM_CHUNK):
        stop = start + _SSIM_CHUNK
        out[start:stop] = _ssim_mean(imgs[start:stop], refs[start:stop], crop_border, y_channel)
    return out
