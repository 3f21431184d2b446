"""Tests for pipeline.measure.identity: dlib face descriptors on real faces at 128 px."""

from __future__ import annotations

import functools
import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from pipeline.measure import identity as ID
from pipeline.prepare import dlib_models

SHARED = Path(__file__).resolve().parents[2] / "shared"
FFHQ = SHARED / "data" / "ffhq"
# Two different people (checked by eye): descriptor distance about 1.0 at 128 px.
PERSON_A = FFHQ / "ffhq_00001.png"
PERSON_B = FFHQ / "ffhq_00002.png"
SIZE = 128


def _models_present() -> bool:
    try:
        for name in (dlib_models.FACE_RECOGNITION, dlib_models.SHAPE_5):
            dlib_models.model_path(name)
    except FileNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _models_present(), reason="dlib model files not installed (face-recognition-models)"
)


@functools.cache
def _face(path: Path) -> np.ndarray:
    if not path.is_file():
        pytest.skip(f"{path} not found (../shared is absent)")
    image = Image.open(path).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _noise(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def test_same_image_gives_zero_and_is_detected() -> None:
    face = _face(PERSON_A)
    result = ID.identity_distance(face, face.copy())
    assert result == {"identity_distance": 0.0, "sr_face_detected": True, "hr_face_detected": True}


def test_descriptor_is_128_floats_and_deterministic() -> None:
    face = _face(PERSON_A)
    first, detected = ID.face_descriptor(face)
    second, _ = ID.face_descriptor(face.copy())
    assert detected
    assert first.shape == (128,) and first.dtype == np.float64
    np.testing.assert_array_equal(first, second)


def test_different_people_are_far_apart() -> None:
    result = ID.identity_distance(_face(PERSON_A), _face(PERSON_B))
    assert result["sr_face_detected"] and result["hr_face_detected"]
    assert result["identity_distance"] > ID.SAME_PERSON_THRESHOLD


@pytest.mark.parametrize(
    "degrade",
    [
        pytest.param(
            lambda im: np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(1))),
            id="blur1",
        ),
        pytest.param(lambda im: _jpeg(im, 50), id="jpeg50"),
    ],
)
def test_same_person_mildly_degraded_stays_close(degrade) -> None:
    for path in (PERSON_A, PERSON_B):
        face = _face(path)
        result = ID.identity_distance(degrade(face), face)
        assert result["sr_face_detected"]
        assert 0 < result["identity_distance"] < ID.SAME_PERSON_THRESHOLD


def test_noise_is_not_a_face() -> None:
    noise = _noise()
    descriptor, detected = ID.face_descriptor(noise, fallback="none")
    assert descriptor is None and not detected
    # The default fallback still scores the box where an aligned face would be.
    descriptor, detected = ID.face_descriptor(noise)
    assert descriptor is not None and descriptor.shape == (128,) and not detected


def test_noise_against_a_face() -> None:
    result = ID.identity_distance(_noise(), _face(PERSON_A))
    assert not result["sr_face_detected"] and result["hr_face_detected"]
    assert result["identity_distance"] > ID.SAME_PERSON_THRESHOLD


def test_no_descriptor_gives_nan() -> None:
    result = ID.identity_distance(_noise(1), _noise(2), fallback="none")
    assert math.isnan(result["identity_distance"])
    assert result["sr_face_detected"] is False and result["hr_face_detected"] is False


@pytest.mark.parametrize("path", [PERSON_A, PERSON_B], ids=["A", "B"])
def test_aligned_box_fallback_is_where_hog_finds_aligned_faces(path: Path) -> None:
    face = _face(path)
    found = ID._detect(face, upsample=None)
    template = ID._fallback_box(SIZE, SIZE, "aligned_box")
    sides = ("left", "top", "right", "bottom")
    offsets = [abs(getattr(found, s)() - getattr(template, s)()) for s in sides]
    assert max(offsets) <= 0.08 * SIZE, offsets


def test_a_template_box_replaces_the_ffhq_box_only_when_no_face_is_found() -> None:
    """Prealigned data sets pass their template's box (``aligned_box``) for the fallback."""
    noise, face = _noise(), _face(PERSON_A)
    whole = ID.face_descriptor(noise, fallback="whole_image")[0]
    given = ID.face_descriptor(noise, aligned_box=(0.0, 0.0, 1.0, 1.0))[0]
    np.testing.assert_array_equal(given, whole)
    assert not np.array_equal(given, ID.face_descriptor(noise)[0])
    # A detected face keeps its own box.
    found = ID.face_descriptor(face, aligned_box=(0.0, 0.0, 0.5, 0.5))
    np.testing.assert_array_equal(found[0], ID.face_descriptor(face)[0])
    assert found[1]
    result = ID.identity_distance(noise, face, aligned_box=(0.0, 0.0, 1.0, 1.0))
    expected = ID.descriptor_distance(whole, ID.face_descriptor(face)[0])
    assert result["identity_distance"] == pytest.approx(expected, abs=1e-12)


def test_whole_image_fallback_box() -> None:
    box = ID._fallback_box(SIZE, SIZE + 2, "whole_image")
    assert (box.left(), box.top(), box.right(), box.bottom()) == (0, 0, SIZE + 1, SIZE - 1)


def test_precomputed_hr_face_gives_the_same_result() -> None:
    sr, hr = _jpeg(_face(PERSON_B), 40), _face(PERSON_B)
    direct = ID.identity_distance(sr, hr)
    reused = ID.identity_distance(sr, hr, hr_face=ID.face_descriptor(hr))
    assert direct == reused


def test_68_point_landmarks_also_work() -> None:
    face = _face(PERSON_A)
    five, _ = ID.face_descriptor(face)
    sixty_eight, detected = ID.face_descriptor(face, landmarks=68)
    assert detected
    # Both place the chip on the same face: same person by a wide margin.
    assert 0 < ID.descriptor_distance(five, sixty_eight) < 0.3


def test_descriptor_distance_is_euclidean() -> None:
    a = np.zeros(128)
    b = np.zeros(128)
    b[:4] = 0.5
    assert ID.descriptor_distance(a, b) == pytest.approx(1.0)
    assert math.isnan(ID.descriptor_distance(a, None))


def test_bad_input_is_refused() -> None:
    face = np.zeros((SIZE, SIZE, 3), np.uint8)
    with pytest.raises(TypeError, match="uint8"):
        ID.face_descriptor(face.astype(np.float32) / 255)
    with pytest.raises(ValueError, match="H x W x 3"):
        ID.face_descriptor(face[..., 0])
    with pytest.raises(ValueError, match="fallback"):
        ID.face_descriptor(face, fallback="centre")
    with pytest.raises(ValueError, match="landmarks"):
        ID.face_descriptor(face, landmarks=7)
    with pytest.raises(ValueError, match="upsample"):
        ID.face_descriptor(face, upsample=-1)
