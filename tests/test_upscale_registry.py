from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.resize import downscale
from pipeline.upscale import build_method, check_method


def test_interpolate_matches_pillow_and_any_scale():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, size=(3, 12, 12, 3), dtype=np.uint8)
    model = build_method({"arch": "interpolate", "filter": "bicubic"}, "cpu")
    result = model(batch, 40, seeds=[0, 0, 0])
    out = result.images
    assert result.facts == [{}, {}, {}]
    assert out.shape == (3, 40, 40, 3) and out.dtype == np.uint8
    expected = np.asarray(Image.fromarray(batch[1]).resize((40, 40), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(out[1], expected)


def test_method_options_are_checked():
    with pytest.raises(ValueError, match=r"methods\.m\.filter"):
        check_method("m", {"arch": "interpolate", "filter": "sinc"})
    with pytest.raises(ValueError, match=r"methods\.m\.arch"):
        check_method("m", {"arch": "nope"})


def test_area_kernel_is_the_block_mean():
    image = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    out = downscale(image, 4, "pil-area")
    block = image[:4, :4].reshape(-1, 3).astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(out[0, 0], block, atol=0.5)


def test_downscale_is_deterministic_and_rejects_unknown_kernel():
    image = np.random.default_rng(1).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        downscale(image, 16, "pil-bicubic"), downscale(image, 16, "pil-bicubic")
    )
    with pytest.raises(KeyError, match="unknown downscaling kernel"):
        downscale(image, 16, "matlab")
