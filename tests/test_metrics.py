"""Tests for pipeline.measure.quality: closed-form cases, independent SSIM, skimage agreement."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import structural_similarity

from pipeline.measure import quality as M

SHARED = Path(__file__).resolve().parents[2] / "shared"
FACE = SHARED / "data" / "other_faces" / "public_domain" / "astronaut_eileen_collins.png"


def _random_image(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _noisy(rng: np.random.Generator, img: np.ndarray, sigma: float) -> np.ndarray:
    noisy = img.astype(np.float64) + rng.normal(0.0, sigma, size=img.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def _smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A natural-looking (spatially correlated) image: smoothed noise plus a ramp."""
    base = rng.normal(size=(height // 4 + 1, width // 4 + 1, 3))
    up = np.kron(base, np.ones((4, 4, 1)))[:height, :width]
    ramp = np.linspace(0, 1, width)[None, :, None]
    img = 128 + 50 * up + 60 * ramp
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- rgb_to_y


@pytest.mark.parametrize(
    ("rgb", "expected"),
    [
        ((0, 0, 0), 16.0),
        ((255, 255, 255), 235.0),
        ((255, 0, 0), 16.0 + 65.481),
        ((0, 255, 0), 16.0 + 128.553),
        ((0, 0, 255), 16.0 + 24.966),
        ((255, 255, 0), 16.0 + 65.481 + 128.553),
    ],
)
def test_rgb_to_y_pure_colours(rgb: tuple[int, int, int], expected: float) -> None:
    img = np.empty((2, 3, 3), dtype=np.uint8)
    img[...] = rgb
    y = M.rgb_to_y(img)
    assert y.shape == (2, 3)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-9)


def test_rgb_to_y_formula_and_float_input() -> None:
    rng = np.random.default_rng(3)
    img = _random_image(rng, (5, 7, 3))
    r, g, b = (img[..., i].astype(np.float64) for i in range(3))
    expected = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    np.testing.assert_allclose(M.rgb_to_y(img), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(M.rgb_to_y(img.astype(np.float32)), expected, rtol=0, atol=1e-9)
    assert M.rgb_to_y(img).min() >= 16.0
    assert M.rgb_to_y(img).max() <= 235.0


def test_rgb_to_y_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        M.rgb_to_y(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="4, 4, 4"):
        M.rgb_to_y(np.zeros((4, 4, 4), dtype=np.uint8))


# ---------------------------------------------------------------- PSNR / MSE


def test_psnr_constant_difference_closed_form() -> None:
    ref = np.full((4, 4, 3), 100, dtype=np.uint8)
    img = ref + np.uint8(10)
    # MSE = 100 on every channel.
    assert M.psnr(img, ref, crop_border=0) == pytest.approx(20 * math.log10(255 / 10), abs=1e-12)
    assert M.psnr(img, ref, crop_border=0) == pytest.approx(28.130803608679106, abs=1e-12)
    # Equal RGB steps move Y by 10 * 219 / 255.
    dy = 10 * (65.481 + 128.553 + 24.966) / 255
    assert M.psnr(img, ref, crop_border=0, y_channel=True) == pytest.approx(
        20 * math.log10(255 / dy), abs=1e-9
    )


def test_psnr_partial_difference_closed_form() -> None:
    ref = np.zeros((4, 4, 3), dtype=np.uint8)
    img = ref.copy()
    img[:2, :, 0] = 20  # 8 of the 48 values differ by 20.
    mse_255 = 8 * 20**2 / 48
    assert M.psnr(img, ref, 0) == pytest.approx(10 * math.log10(255**2 / mse_255), abs=1e-12)
    # Only the red channel differs: Y differs by 20 * 65.481 / 255 on 8 of 16 pixels.
    dy = 20 * 65.481 / 255
    assert M.psnr(img, ref, 0, y_channel=True) == pytest.approx(
        10 * math.log10(255**2 / (dy**2 * 8 / 16)), abs=1e-9
    )


def test_crop_border_removes_border_error() -> None:
    rng = np.random.default_rng(0)
    ref = _random_image(rng, (8, 8, 3))
    img = ref.copy()
    img[0, :, :] ^= 0x10  # flip one bit: every value on the 1-pixel ring moves by exactly 16
    img[-1, :, :] ^= 0x10
    img[:, 0, :] ^= 0x10
    img[:, -1, :] ^= 0x10
    # The corners were flipped twice, so they are back to the reference.
    ring_pixels = 4 * 8 - 4 - 4
    assert math.isinf(M.psnr(img, ref, crop_border=1))
    assert math.isinf(M.psnr(img, ref, crop_border=2, y_channel=True))
    mse_255 = ring_pixels * 16**2 / 64
    assert M.psnr(img, ref, crop_border=0) == pytest.approx(
        10 * math.log10(255**2 / mse_255), abs=1e-12
    )
    assert M.mse(img, ref) == pytest.approx(mse_255 / 255**2, abs=1e-15)
    assert M.mse(img, ref, crop_border=1) == 0.0


def test_identical_images() -> None:
    rng = np.random.default_rng(1)
    img = _random_image(rng, (32, 24, 3))
    assert M.psnr(img, img.copy(), 0) == math.inf
    assert M.psnr(img, img.copy(), 4, y_channel=True) == math.inf
    assert M.mse(img, img.copy()) == 0.0
    assert M.ssim(img, img.copy(), 0) == pytest.approx(1.0, abs=1e-12)
    assert M.ssim(img, img.copy(), 2, y_channel=False) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
def test_psnr_of_gaussian_noise(sigma: float) -> None:
    rng = np.random.default_rng(int(sigma))
    # Mid-grey keeps the noise away from the clipping limits.
    ref = np.full((256, 256, 3), 128, dtype=np.uint8)
    img = _noisy(rng, ref, sigma)
    value = M.psnr(img, ref, 0)
    assert value == pytest.approx(20 * math.log10(255 / sigma), abs=0.15)
    # Quantizing to integers adds variance ~1/12 (Sheppard); with ~2e5 samples the
    # sampling error of the MSE is ~0.3 %, i.e. ~0.015 dB.
    assert value == pytest.approx(10 * math.log10(255**2 / (sigma**2 + 1 / 12)), abs=0.05)


def test_mse_scaling_matches_psnr() -> None:
    ref = np.zeros((6, 6, 3), dtype=np.uint8)
    img = np.full_like(ref, 51)
    assert M.mse(img, ref) == pytest.approx((51 / 255) ** 2, abs=1e-15)
    assert M.mse(img, ref) == pytest.approx(0.04, abs=1e-15)
    rng = np.random.default_rng(7)
    a, b = _random_image(rng, (16, 16, 3)), _random_image(rng, (16, 16, 3))
    assert 0.0 <= M.mse(a, b) <= 1.0
    assert M.psnr(a, b, 0) == pytest.approx(-10 * math.log10(M.mse(a, b)), abs=1e-9)


# ---------------------------------------------------------------- input checks


def test_shape_mismatch_names_shapes() -> None:
    a = np.zeros((16, 16, 3), dtype=np.uint8)
    b = np.zeros((16, 12, 3), dtype=np.uint8)
    for fn in (M.psnr, M.ssim):
        with pytest.raises(ValueError, match=r"\(16, 16, 3\) vs \(16, 12, 3\)"):
            fn(a, b, 0)
    with pytest.raises(ValueError, match=r"\(16, 16, 3\) vs \(16, 12, 3\)"):
        M.mse(a, b)


def test_rejects_float_and_bad_crop() -> None:
    a = np.zeros((16, 16, 3), dtype=np.uint8)
    with pytest.raises(TypeError, match="float64"):
        M.psnr(a.astype(np.float64), a.astype(np.float64), 0)
    with pytest.raises(ValueError, match="crop_border"):
        M.psnr(a, a, 8)
    with pytest.raises(ValueError, match="crop_border"):
        M.psnr(a, a, -1)
    with pytest.raises(ValueError, match="at least 11 x 11"):
        M.ssim(a, a, 3)  # 10 x 10 left
    with pytest.raises(ValueError, match="H x W x 3"):
        M.psnr(a[..., 0], a[..., 0], 0)


# ---------------------------------------------------------------- SSIM


def _loop_ssim_plane(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of two float planes, written directly from the definition.

    Every valid 11 x 11 window is taken explicitly; weighted means and centred
    (population) variances/covariance are computed per window.
    """
    offsets = np.arange(11) - 5.0
    g = np.exp(-(offsets**2) / (2 * 1.5**2))
    window = np.outer(g, g)
    window /= window.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (window * px).sum(), (window * py).sum()
            vx = (window * (px - mx) ** 2).sum()
            vy = (window * (py - my) ** 2).sum()
            cxy = (window * (px - mx) * (py - my)).sum()
            values.append(
                ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
            )
    return float(np.mean(values))


def _loop_ssim(img: np.ndarray, ref: np.ndarray, crop: int, y_channel: bool) -> float:
    if crop:
        img, ref = img[crop:-crop, crop:-crop], ref[crop:-crop, crop:-crop]
    img, ref = img.astype(np.float64), ref.astype(np.float64)
    if y_channel:
        w = np.array([65.481, 128.553, 24.966]) / 255.0
        return _loop_ssim_plane(img @ w + 16.0, ref @ w + 16.0)
    return float(np.mean([_loop_ssim_plane(img[..., c], ref[..., c]) for c in range(3)]))


@pytest.mark.parametrize(("crop", "y_channel"), [(0, True), (0, False), (2, True), (3, False)])
def test_ssim_matches_loop_implementation(crop: int, y_channel: bool) -> None:
    rng = np.random.default_rng(11)
    ref = _smooth_image(rng, 20, 23)
    img = _noisy(rng, ref, 12.0)
    expected = _loop_ssim(img, ref, crop, y_channel)
    assert M.ssim(img, ref, crop, y_channel=y_channel) == pytest.approx(expected, abs=1e-6)
    assert 0.0 < expected < 1.0


def test_ssim_is_symmetric_and_decreases_with_noise() -> None:
    rng = np.random.default_rng(5)
    ref = _smooth_image(rng, 48, 48)
    a, b = _noisy(rng, ref, 5.0), _noisy(rng, ref, 25.0)
    assert M.ssim(a, ref, 0) == pytest.approx(M.ssim(ref, a, 0), abs=1e-12)
    assert M.ssim(ref, ref, 0) > M.ssim(a, ref, 0) > M.ssim(b, ref, 0)


def _skimage_ssim(img: np.ndarray, ref: np.ndarray, channel_axis: int | None) -> float:
    return float(
        structural_similarity(
            img,
            ref,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=channel_axis,
        )
    )


def test_ssim_agrees_with_skimage_on_valid_region() -> None:
    # skimage filters with reflected borders but then averages the SSIM map only
    # after dropping a (win_size - 1) / 2 = 5 pixel band (win_size 11 for sigma 1.5,
    # truncate 3.5): the same 'valid' positions BasicSR keeps. So the full-image
    # values are directly comparable, with the same crop applied to both inputs.
    rng = np.random.default_rng(21)
    ref = _smooth_image(rng, 40, 36)
    img = _noisy(rng, ref, 15.0)
    ours = M.ssim(img, ref, 0, y_channel=False)
    assert ours == pytest.approx(_skimage_ssim(img, ref, channel_axis=-1), abs=5e-4)
    crop = 4
    y_img = M.rgb_to_y(img[crop:-crop, crop:-crop])
    y_ref = M.rgb_to_y(ref[crop:-crop, crop:-crop])
    ours_y = M.ssim(img, ref, crop, y_channel=True)
    assert ours_y == pytest.approx(_skimage_ssim(y_img, y_ref, channel_axis=None), abs=5e-4)


@pytest.mark.skipif(not FACE.is_file(), reason=f"shared face image absent: {FACE}")
def test_metrics_on_real_face_bicubic_round_trip() -> None:
    from pipeline.io import load_array

    hr = np.asarray(Image.fromarray(load_array(FACE)).resize((128, 128), Image.BICUBIC))
    lr = Image.fromarray(hr).resize((32, 32), Image.BICUBIC)
    sr = np.asarray(lr.resize((128, 128), Image.BICUBIC))
    value = M.ssim(sr, hr, crop_border=4, y_channel=False)
    assert 0.3 < value < 0.99
    assert value == pytest.approx(
        _skimage_ssim(sr[4:-4, 4:-4], hr[4:-4, 4:-4], channel_axis=-1), abs=5e-4
    )
    psnr_y = M.psnr(sr, hr, crop_border=4, y_channel=True)
    assert 15.0 < psnr_y < 45.0


# ---------------------------------------------------------------- batched variants


@pytest.mark.parametrize(("crop", "y_channel"), [(0, False), (4, True)])
def test_batched_variants_match_single(
    crop: int, y_channel: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A chunk smaller than the stack exercises the chunk boundaries of ssim_batch.
    monkeypatch.setattr(M, "_SSIM_CHUNK", 2)
    rng = np.random.default_rng(8)
    refs = np.stack([_smooth_image(rng, 24, 28) for _ in range(5)])
    imgs = np.stack([_noisy(rng, r, s) for r, s in zip(refs, [0, 3, 6, 9, 12], strict=True)])
    psnrs = M.psnr_batch(imgs, refs, crop, y_channel=y_channel)
    ssims = M.ssim_batch(imgs, refs, crop, y_channel=y_channel)
    mses = M.mse_batch(imgs, refs, crop)
    assert psnrs.shape == ssims.shape == mses.shape == (5,)
    assert math.isinf(psnrs[0])
    for i in range(5):
        assert psnrs[i] == pytest.approx(M.psnr(imgs[i], refs[i], crop, y_channel), abs=1e-9)
        assert ssims[i] == pytest.approx(M.ssim(imgs[i], refs[i], crop, y_channel), abs=1e-12)
        assert mses[i] == pytest.approx(M.mse(imgs[i], refs[i], crop), abs=1e-15)
    with pytest.raises(ValueError, match="N x H x W x 3"):
        M.psnr_batch(imgs[0], refs[0], 0)
