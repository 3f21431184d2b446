"""Downscaling kernels: shapes, flat images, determinism, and each kernel against a reference."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, smooth_image
from PIL import Image

from pipeline.io import save_png
from pipeline.resize import (
    KERNELS,
    downscale,
    matlab_bicubic_weights,
    round_half_away_uint8,
)

KERNEL_NAMES = sorted(KERNELS)


@pytest.fixture
def face_like() -> np.ndarray:
    return smooth_image(np.random.default_rng(0), 64, 64)


# ---------------------------------------------------------------- every kernel


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_every_kernel_gives_square_uint8_rgb(kernel, face_like, torch_one_thread):
    for size in (32, 16, 8):
        out = downscale(face_like, size, kernel)
        assert out.dtype == np.uint8
        assert out.shape == (size, size, 3)


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_flat_image_stays_flat(kernel, torch_one_thread):
    for side, size in ((64, 16), (48, 16)):
        for level in range(256):
            image = np.full((side, side, 3), level, np.uint8)
            out = downscale(image, size, kernel)
            # PULSE's recipe truncates: where float32 lands just below the level
            # (taps that sum to 1 within rounding), it becomes one level lower.
            allowed = {level, level - 1} if kernel == "pulse-bicubic" else {level}
            assert len(np.unique(out)) == 1 and int(out.flat[0]) in allowed, (kernel, level)


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_two_runs_give_identical_png_bytes(kernel, face_like, tmp_path, torch_one_thread):
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    save_png(first, downscale(face_like, 16, kernel))
    save_png(second, downscale(face_like.copy(), 16, kernel))
    assert first.read_bytes() == second.read_bytes()


def test_unknown_kernel_names_the_known_ones(face_like):
    with pytest.raises(KeyError) as caught:
        downscale(face_like, 16, "lanczos")
    message = str(caught.value)
    assert "'lanczos'" in message
    assert all(name in message for name in KERNELS)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((16, 16, 3), np.float32),
        np.zeros((16, 16), np.uint8),
        np.zeros((16, 16, 4), np.uint8),
    ],
    ids=["float", "gray", "rgba"],
)
def test_downscale_rejects_anything_but_uint8_rgb(image):
    with pytest.raises(ValueError, match="expected uint8 RGB"):
        downscale(image, 8, "pil-area")


def test_downscale_rejects_an_empty_size(face_like):
    with pytest.raises(ValueError, match="output size"):
        downscale(face_like, 0, "matlab-bicubic")


def test_importing_the_kernels_does_not_load_torch():
    """pipeline.resize sits below pipeline.upscale: the PULSE kernel loads torch on use only."""
    code = (
        "import sys, numpy as np, pipeline.resize as r; "
        "assert 'torch' not in sys.modules, 'torch was loaded'; "
        "r.downscale(np.zeros((16, 16, 3), np.uint8), 4, 'pulse-bicubic'); "
        "assert not [m for m in sys.modules if m.startswith('pipeline.upscale')], 'upward import'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- pil-area


def _round_half_up(values: np.ndarray) -> np.ndarray:
    # Exact here: the block means of these tests are multiples of 1/f, never near-ties.
    return np.floor(values + 0.5)


@pytest.mark.parametrize("factor", [2, 3, 4, 5, 8])
def test_pil_area_is_the_block_mean(factor):
    size = 8
    image = np.random.default_rng(factor).integers(0, 256, (size * factor, size * factor, 3))
    image = image.astype(np.uint8)
    out = downscale(image, size, "pil-area").astype(np.int64)
    blocks = image.reshape(size, factor, size, factor, 3).astype(np.float64)
    # Pillow averages each row of a block first and stores that as uint8 before
    # averaging the rows, so the exact match is the two-pass mean ...
    row_means = _round_half_up(blocks.mean(axis=3))
    assert np.array_equal(out, _round_half_up(row_means.mean(axis=1)))
    # ... which is never more than one level from the rounded f x f mean.
    assert np.abs(out - _round_half_up(blocks.mean(axis=(1, 3)))).max() <= 1


# ---------------------------------------------------------------- matlab-bicubic

# Hand derivation for a 4-sample signal resized to 2 (scale 1/2), 0-based samples s0..s3,
# MATLAB's 1-based output x maps to u = 2x - 0.5: 1.5 and 3.5.
#
# Without antialiasing the taps are cubic(u - k) at distances 1.5, 0.5, -0.5, -1.5:
# -1/16, 9/16, 9/16, -1/16 on 1-based indices 0..3 for x = 1; index 0 mirrors to s0.
NO_ANTIALIAS_4_TO_2 = np.array([[8, 9, -1, 0], [0, -1, 9, 8]]) / 16
# With antialiasing the kernel is cubic(x / 2) / 2 over 8 taps at distances 3.5 .. -3.5:
# (-3, -9, 29, 111, 111, 29, -9, -3) / 256 on 1-based indices -2..5 for x = 1, mirrored
# (aux = 1 2 3 4 4 3 2 1) to s2, s1, s0, s0, s1, s2, s3, s3.
ANTIALIAS_4_TO_2 = np.array([[140, 102, 26, -12], [-12, 26, 102, 140]]) / 256


def test_matlab_weights_match_hand_derivation():
    assert np.array_equal(matlab_bicubic_weights(4, 2, antialiasing=False), NO_ANTIALIAS_4_TO_2)
    assert np.array_equal(matlab_bicubic_weights(4, 2), ANTIALIAS_4_TO_2)


def test_matlab_known_values_of_1234():
    # imresize([1 2 3 4], [1 2], 'bicubic', 'Antialiasing', false) is [1.4375 3.5625];
    # with the default antialiasing it is [1.4609375 3.5390625].
    signal = np.array([1.0, 2.0, 3.0, 4.0])
    no_antialias = matlab_bicubic_weights(4, 2, antialiasing=False) @ signal
    assert np.array_equal(no_antialias, [1.4375, 3.5625])
    assert np.array_equal(matlab_bicubic_weights(4, 2) @ signal, [1.4609375, 3.5390625])


def test_matlab_uint8_rounds_half_away_from_zero():
    # Rows [0 0 64 0] give exactly 6.5 and 25.5 (see ANTIALIAS_4_TO_2): MATLAB's
    # uint8 conversion gives 7 and 26; round-half-to-even would give 6.
    image = np.zeros((4, 4, 3), np.uint8)
    image[:, 2] = 64
    assert np.array_equal(ANTIALIAS_4_TO_2 @ [0, 0, 64, 0], [6.5, 25.5])
    out = downscale(image, 2, "matlab-bicubic")
    assert np.array_equal(out[..., 0], [[7, 26], [7, 26]])
    assert np.array_equal(
        round_half_away_uint8(np.array([-3.0, 0.5, 1.5, 254.5, 300.0])), [0, 1, 2, 255, 255]
    )


def _matlab_reference(image: np.ndarray, size: int, rows_first: bool) -> np.ndarray:
    """Two passes with the tested weights, uint8 rounding after each (MATLAB's imresizemex)."""
    rows = matlab_bicubic_weights(image.shape[0], size)
    columns = matlab_bicubic_weights(image.shape[1], size)
    value = image.astype(np.float64)
    if rows_first:
        value = round_half_away_uint8(np.einsum("oh,hwc->owc", rows, value)).astype(np.float64)
        return round_half_away_uint8(np.einsum("pw,owc->opc", columns, value))
    value = round_half_away_uint8(np.einsum("pw,hwc->hpc", columns, value)).astype(np.float64)
    return round_half_away_uint8(np.einsum("oh,hpc->opc", rows, value))


@pytest.mark.parametrize(
    ("shape", "rows_first"),
    [((40, 40), True), ((40, 20), True), ((20, 40), False), ((37, 23), True)],
    ids=["square-rows-first", "tall", "wide", "odd-sizes"],
)
def test_matlab_resizes_the_larger_reduction_first_rounding_between_passes(shape, rows_first):
    size = 5
    image = np.random.default_rng(1).integers(0, 256, (*shape, 3)).astype(np.uint8)
    expected = _matlab_reference(image, size, rows_first)
    other_order = _matlab_reference(image, size, not rows_first)
    assert not np.array_equal(expected, other_order), "pick an image where the order matters"
    assert np.array_equal(downscale(image, size, "matlab-bicubic"), expected)


def test_matlab_weights_rows_sum_to_one_for_any_factor():
    for in_length, out_length in ((1024, 32), (100, 16), (37, 5), (16, 40), (7, 7), (3, 1)):
        weights = matlab_bicubic_weights(in_length, out_length)
        assert weights.shape == (out_length, in_length)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.array_equal(matlab_bicubic_weights(7, 7), np.eye(7))


@pytest.mark.parametrize(
    ("shape", "size"),
    [((128, 128), 16), ((100, 100), 16), ((12, 8), 4), ((37, 53), 16), ((1024, 1024), 32)],
)
def test_matlab_agrees_with_resize_right(shape, size):
    resize_right = pytest.importorskip("resize_right")
    image = np.random.default_rng(2).integers(0, 256, (*shape, 3)).astype(np.uint8)
    # resize_right (Shocher et al.) follows MATLAB's kernel, antialiasing and coordinates;
    # with symmetric padding it should match MATLAB's weights to float precision.
    theirs = resize_right.resize(
        image.astype(np.float64), out_shape=(size, size), pad_mode="symmetric"
    )
    rows = matlab_bicubic_weights(shape[0], size)
    columns = matlab_bicubic_weights(shape[1], size)
    ours = np.einsum("pw,owc->opc", columns, np.einsum("oh,hwc->owc", rows, image.astype(float)))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
    # It keeps float between the passes; MATLAB (and this kernel) round to uint8 there.
    difference = downscale(image, size, "matlab-bicubic").astype(int) - round_half_away_uint8(
        theirs
    )
    assert np.abs(difference).max() <= 1


# ---------------------------------------------------------------- pulse-bicubic


@pytest.mark.parametrize("factor", [2, 4, 8, 32])
def test_pulse_bicubic_is_align_face_recipe(factor, torch_one_thread):
    """align_face.py: ToTensor, PULSE's downsampler, clamp, ToPILImage (truncation)."""
    import torch
    from torchvision.transforms import ToPILImage, ToTensor

    from pipeline.resize_pulse import bicubic_downsample

    size = 8
    image = np.array(smooth_image(np.random.default_rng(factor), size * factor, size * factor))
    out = downscale(image, size, "pulse-bicubic")
    reduced = bicubic_downsample(ToTensor()(Image.fromarray(image))[None], factor)[0]
    expected = np.asarray(ToPILImage()(reduced.clamp(0, 1)))
    assert out.dtype == np.uint8 and np.array_equal(out, expected)
    # Truncation, not rounding: about half of the pixels sit one level below the rounded value.
    rounded = np.floor(reduced.clamp(0, 1).permute(1, 2, 0).double().numpy() * 255 + 0.5)
    lower = rounded - out
    assert set(np.unique(lower)) <= {0, 1} and 0.3 < lower.mean() < 0.7
    assert torch.is_tensor(reduced)


@pytest.mark.parametrize("shape", [(60, 60), (64, 48), (16, 16)], ids=["60", "64x48", "up"])
def test_pulse_bicubic_needs_an_integer_factor(shape):
    image = np.zeros((*shape, 3), np.uint8)
    with pytest.raises(ValueError, match=rf"{shape[0]}x{shape[1]} -> 32x32"):
        downscale(image, 32, "pulse-bicubic")
