"""Tests for pipeline.prepare (dlib detection, FFHQ quad, alignment) and its dlib models."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.geometry import center_square_quad, map_to_aligned
from pipeline.io import load_rgb, write_parquet
from pipeline.prepare import dlib_models
from pipeline.prepare.align import align_face, eye_centres, ffhq_quad, template_eye_positions
from pipeline.prepare.detect import FaceResult, detect_face

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _models_available() -> bool:
    try:
        dlib_models.model_path(dlib_models.SHAPE_68)
    except FileNotFoundError:
        return False
    return True


needs_models = pytest.mark.skipif(
    not _models_available(), reason="dlib model files not installed (face-recognition-models)"
)
needs_data = pytest.mark.skipif(
    not (SHARED_DATA / "celeba_hq").is_dir() or not (SHARED_DATA / "ffhq").is_dir(),
    reason=f"real face photos not available at {SHARED_DATA} (../shared beside the checkout)",
)


def _rotation(degrees: float) -> np.ndarray:
    t = math.radians(degrees)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def synthetic_landmarks(
    eye_mid: tuple[float, float], eye_dist: float, mouth_ratio: float, degrees: float
) -> np.ndarray:
    """68 landmarks of an idealised face: eyes as rings of 6 points, mouth corners 48/54.

    ``degrees`` rotates the face in the image plane (clockwise on screen, y down).
    Points the FFHQ recipe does not use sit at the face centre.
    """
    rot = _rotation(degrees)
    local = np.zeros((68, 2))
    local[:] = (0.0, 0.5 * mouth_ratio * eye_dist)
    ring = np.array([(math.cos(a), 0.4 * math.sin(a)) for a in np.arange(6) * math.pi / 3])
    local[36:42] = (-eye_dist / 2, 0.0) + 0.15 * eye_dist * ring
    local[42:48] = (eye_dist / 2, 0.0) + 0.15 * eye_dist * ring
    mouth_y = mouth_ratio * eye_dist
    local[48:60] = (0.0, mouth_y) + 0.35 * eye_dist * np.array(
        [(math.cos(a), 0.3 * math.sin(a)) for a in np.arange(12) * math.pi / 6 + math.pi]
    )
    local[48] = (-0.35 * eye_dist, mouth_y)
    local[54] = (0.35 * eye_dist, mouth_y)
    return local @ rot.T + np.asarray(eye_mid)


# --------------------------------------------------------------------------- ffhq_quad


def test_ffhq_quad_upright_face_by_hand() -> None:
    landmarks = synthetic_landmarks((50.0, 50.0), eye_dist=20.0, mouth_ratio=1.1, degrees=0.0)
    quad = ffhq_quad(landmarks)
    # eye_to_eye (20, 0), eye_to_mouth (0, 22): half side max(40, 39.6) = 40,
    # centre (50, 50 + 2.2); corners TL, BL, BR, TR.
    expected = np.array([[10.0, 12.2], [10.0, 92.2], [90.0, 92.2], [90.0, 12.2]])
    np.testing.assert_allclose(quad, expected, atol=1e-9)


def test_ffhq_quad_long_face_scales_with_mouth_distance() -> None:
    landmarks = synthetic_landmarks((0.0, 0.0), eye_dist=10.0, mouth_ratio=2.0, degrees=0.0)
    quad = ffhq_quad(landmarks)
    side = np.hypot(*(quad[3] - quad[0]))
    assert side == pytest.approx(2 * 1.8 * 20.0)


@pytest.mark.parametrize("degrees", [-60.0, -15.0, 30.0, 90.0])
def test_ffhq_quad_rotates_with_the_face(degrees: float) -> None:
    eye_mid = np.array([123.0, 77.0])
    landmarks = synthetic_landmarks(tuple(eye_mid), eye_dist=40.0, mouth_ratio=1.0, degrees=degrees)
    quad = ffhq_quad(landmarks)
    top, left_edge = quad[3] - quad[0], quad[1] - quad[0]
    assert np.hypot(*top) == pytest.approx(160.0)
    assert np.hypot(*left_edge) == pytest.approx(160.0)
    assert float(np.dot(top, left_edge)) == pytest.approx(0.0, abs=1e-9)
    assert math.degrees(math.atan2(top[1], top[0])) == pytest.approx(degrees)
    # Centre: a tenth of the way from the eyes to the mouth.
    down = _rotation(degrees) @ np.array([0.0, 40.0])
    np.testing.assert_allclose(quad.mean(axis=0), eye_mid + 0.1 * down, atol=1e-9)
    # Equivariance: rotating the landmarks rotates the quad.
    upright = ffhq_quad(synthetic_landmarks(tuple(eye_mid), 40.0, 1.0, 0.0))
    np.testing.assert_allclose(quad, (upright - eye_mid) @ _rotation(degrees).T + eye_mid)


def test_ffhq_quad_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match="68"):
        ffhq_quad(np.zeros((5, 2)))


# --------------------------------------------------------------------------- align_face


def _blob_image(width: int, height: int, red: list, green: list, sigma: float) -> Image.Image:
    """Black image with Gaussian dots: red ones at ``red`` points, green at ``green``."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    array = np.zeros((height, width, 3))
    for channel, points in ((0, red), (1, green)):
        for x, y in points:
            array[:, :, channel] += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return Image.fromarray(np.clip(np.rint(array * 255), 0, 255).astype(np.uint8))


def _centroid(array: np.ndarray, near: tuple[float, float], radius: int) -> np.ndarray:
    x0, y0 = round(near[0]), round(near[1])
    window = array[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1].astype(float)
    ys, xs = np.mgrid[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1]
    weight = window.sum()
    assert weight > 0, f"no dot near {near}"
    return np.array([(xs * window).sum() / weight, (ys * window).sum() / weight])


@pytest.mark.parametrize(
    ("canvas", "eye_mid", "eye_dist", "degrees"),
    [
        ((400, 400), (200.0, 180.0), 60.0, 0.0),  # plain crop
        ((1400, 1300), (700.0, 600.0), 200.0, 25.0),  # large face: downscaled first
        ((300, 300), (75.0, 90.0), 60.0, -40.0),  # quad leaves the image: padding
    ],
)
def test_align_face_puts_synthetic_eyes_on_template(
    canvas: tuple[int, int], eye_mid: tuple[float, float], eye_dist: float, degrees: float
) -> None:
    ratio = 1.0
    landmarks = synthetic_landmarks(eye_mid, eye_dist, ratio, degrees)
    eyes = eye_centres(landmarks)
    mouth = (landmarks[48] + landmarks[54]) / 2
    image = _blob_image(*canvas, red=list(eyes), green=[mouth], sigma=eye_dist / 10)
    size = 128
    aligned = np.asarray(align_face(image, ffhq_quad(landmarks), size))
    assert aligned.shape == (size, size, 3)
    for expected in template_eye_positions(size, mouth_ratio=ratio):
        found = _centroid(aligned[:, :, 0], expected, radius=8)
        # Required: within 2 px. Measured: ~0.03 px, so a half-pixel slip in the
        # coordinate conventions would show up; assert well below that.
        np.testing.assert_allclose(found, expected, atol=0.25)
    # The mouth sits straight below the eyes' midpoint.
    mouth_out = map_to_aligned(mouth, ffhq_quad(landmarks), size)[0]
    found = _centroid(aligned[:, :, 1], mouth_out, radius=8)
    np.testing.assert_allclose(found, mouth_out, atol=0.25)
    assert mouth_out[0] == pytest.approx((size - 1) / 2)


def test_align_face_with_center_square_quad_is_the_centre_crop() -> None:
    ys, xs = np.mgrid[0:150, 0:200].astype(np.float64)
    smooth = np.stack([xs * 1.2, ys * 1.5, 128 + 100 * np.sin(xs / 15) * np.cos(ys / 20)], axis=-1)
    image = Image.fromarray(np.clip(smooth, 0, 255).astype(np.uint8))
    quad = center_square_quad(200, 150)
    np.testing.assert_allclose(quad, [[24.5, -0.5], [24.5, 149.5], [174.5, 149.5], [174.5, -0.5]])
    aligned = np.asarray(align_face(image, quad, 64), dtype=float)
    reference = np.asarray(
        image.crop((25, 0, 175, 150)).resize((64, 64), Image.Resampling.LANCZOS), float
    )
    # Measured 0.56 (different resampling paths); shifting the quad by 1 px gives 1.37.
    assert np.abs(aligned - reference).mean() < 0.9


def test_align_face_is_deterministic_and_checks_arguments() -> None:
    landmarks = synthetic_landmarks((60.0, 60.0), 30.0, 1.0, 10.0)
    image = _blob_image(120, 120, red=list(eye_centres(landmarks)), green=[], sigma=3)
    quad = ffhq_quad(landmarks)
    first = np.asarray(align_face(image, quad, 32))
    second = np.asarray(align_face(image, quad, 32))
    np.testing.assert_array_equal(first, second)
    with pytest.raises(ValueError, match="transform_size"):
        align_face(image, quad, 64, transform_size=32)
    with pytest.raises(ValueError, match="quad"):
        align_face(image, np.zeros((3, 2)), 32)


# --------------------------------------------------------------------------- detection


@needs_models
def test_no_face_falls_back_to_centre_crop() -> None:
    noise = np.random.default_rng(0).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    result = detect_face(image)
    assert result.status == "fallback"
    assert result.reason == "no face detected"
    assert result.n_faces == 0
    assert result.box is None and result.landmarks is None
    np.testing.assert_allclose(result.quad, center_square_quad(160, 120))
    np.testing.assert_allclose(result.quad[0], (19.5, -0.5))
    assert align_face(image, result.quad, 32).size == (32, 32)

    strict = detect_face(image, fallback="none")
    assert strict.status == "no_face"
    assert strict.quad is None


def test_detect_face_rejects_unknown_options() -> None:
    image = Image.new("RGB", (8, 8))
    with pytest.raises(ValueError, match="detector"):
        detect_face(image, detector="mtcnn")
    with pytest.raises(ValueError, match="multi_face"):
        detect_face(image, multi_face="all")
    with pytest.raises(ValueError, match="fallback"):
        detect_face(image, fallback="skip")


def test_face_result_record_round_trips_through_parquet(tmp_path: Path) -> None:
    landmarks = synthetic_landmarks((50.0, 50.0), 20.0, 1.0, 5.0)
    results = [
        FaceResult("ok", "", "hog", 2, (1, 2, 30, 40), landmarks, ffhq_quad(landmarks), 1.5),
        FaceResult("fallback", "no face detected", "hog", 0, None, None, center_square_quad(9, 7)),
        FaceResult("no_face", "no face detected", "cnn", 0, None, None, None),
    ]
    path = tmp_path / "faces.parquet"
    write_parquet(path, pd.DataFrame([r.to_record() for r in results]))
    back = [FaceResult.from_record(row) for row in pd.read_parquet(path).to_dict("records")]
    for original, loaded in zip(results, back, strict=True):
        for field in ("status", "reason", "detector", "n_faces", "box", "score"):
            assert getattr(loaded, field) == getattr(original, field)
        for field in ("landmarks", "quad"):
            if getattr(original, field) is None:
                assert getattr(loaded, field) is None
            else:
                np.testing.assert_allclose(getattr(loaded, field), getattr(original, field))


# --------------------------------------------------------------------------- real photos


def _photos(folder: str, stride: int) -> list[Path]:
    files = sorted(p for p in (SHARED_DATA / folder).iterdir() if p.suffix in (".jpg", ".png"))
    return files[::stride]


def _real_photos() -> list[Path]:
    if not SHARED_DATA.is_dir():
        return []
    # A fixed spread over both sets (1024, 512 and 256 px sources).
    return _photos("celeba_hq", 17) + _photos("ffhq", 9)


@needs_models
@needs_data
@pytest.mark.parametrize("path", _real_photos(), ids=lambda p: p.name)
def test_real_photo_detect_and_align(path: Path) -> None:
    image = load_rgb(path)
    result = detect_face(image, detector="hog", upsample=1)
    assert result.status == "ok", f"{path.name}: {result.reason}"
    assert result.n_faces >= 1
    assert result.landmarks.shape == (68, 2)
    left, top, right, bottom = result.box
    assert 0 <= (left + right) / 2 < image.width and 0 <= (top + bottom) / 2 < image.height

    size = 128
    eyes = map_to_aligned(eye_centres(result.landmarks), result.quad, size)
    mouth = (result.landmarks[48] + result.landmarks[54]) / 2
    ratio = np.hypot(*(mouth - eye_centres(result.landmarks).mean(axis=0))) / np.hypot(
        *np.diff(eye_centres(result.landmarks), axis=0)[0]
    )
    # The template assumes a frontal face; its eye height and spacing follow the
    # face's own eye/mouth proportions.
    np.testing.assert_allclose(eyes, template_eye_positions(size, ratio), atol=3.0)

    # The aligned output really shows the face there: dlib finds its eyes again.
    aligned = align_face(image, result.quad, size)
    assert aligned.size == (size, size)
    again = detect_face(aligned, upsample=1, fallback="none")
    assert again.status == "ok", f"{path.name}: no face found in the aligned output"
    np.testing.assert_allclose(eye_centres(again.landmarks), eyes, atol=3.0)


@pytest.fixture(scope="module")
def two_face_canvas() -> tuple[Image.Image, tuple[int, int], tuple[int, int]]:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real face photos not available at {SHARED_DATA}")
    big = load_rgb(_photos("celeba_hq", 17)[0]).resize((320, 320), Image.Resampling.LANCZOS)
    small = load_rgb(_photos("ffhq", 9)[0]).resize((180, 180), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (900, 400), (90, 90, 90))
    canvas.paste(big, (0, 40))
    canvas.paste(small, (450, 110))
    return canvas, (0, 320), (450, 630)


@needs_models
@needs_data
def test_multi_face_policies(two_face_canvas) -> None:
    canvas, big_span, small_span = two_face_canvas

    def centre_x(result: FaceResult) -> float:
        return (result.box[0] + result.box[2]) / 2

    largest = detect_face(canvas, multi_face="largest")
    assert largest.n_faces == 2
    assert big_span[0] < centre_x(largest) < big_span[1]
    central = detect_face(canvas, multi_face="center")
    assert small_span[0] < centre_x(central) < small_span[1]
    first = detect_face(canvas, multi_face="first")
    assert first.score >= max(largest.score, central.score)


@needs_models
@needs_data
@pytest.mark.parametrize("pad_mode", ["edge", "constant"])
def test_padding_maps_coordinates_back(pad_mode: str) -> None:
    image = load_rgb(_photos("celeba_hq", 17)[0])
    plain = detect_face(image)
    padded = detect_face(image, pad=0.25, pad_mode=pad_mode)
    assert plain.status == padded.status == "ok"
    # Same face, same coordinate frame (dlib's pyramid steps shift boxes a little).
    np.testing.assert_allclose(eye_centres(padded.landmarks), eye_centres(plain.landmarks), atol=4)
    assert np.abs(np.subtract(padded.box, plain.box)).max() < 0.15 * (plain.box[2] - plain.box[0])


@needs_models
@needs_data
def test_cnn_detector_finds_the_same_face() -> None:
    image = load_rgb(_photos("celeba_hq", 17)[0]).resize((256, 256), Image.Resampling.LANCZOS)
    hog = detect_face(image)
    cnn = detect_face(image, detector="cnn", upsample=0)
    assert cnn.status == "ok" and cnn.detector == "cnn"
    np.testing.assert_allclose(eye_centres(cnn.landmarks), eye_centres(hog.landmarks), atol=6)


# --------------------------------------------------------------------------- dlib_models


def test_missing_model_lists_searched_places(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(dlib_models, "_package_models_dir", lambda: tmp_path / "pkg" / "models")
    monkeypatch.setattr(dlib_models, "DEBIAN_MODELS_DIR", tmp_path / "debian")
    configured = tmp_path / "configured"
    with pytest.raises(FileNotFoundError) as caught:
        dlib_models.model_path(dlib_models.SHAPE_68, search=[configured])
    message = str(caught.value)
    name = dlib_models.SHAPE_68
    for place in (
        configured / name,
        tmp_path / "pkg" / "models" / name,
        tmp_path / "debian" / name,
    ):
        assert str(place) in message
    assert "pip install face-recognition-models" in message
    assert "config" in message


def test_configured_folder_and_file_take_precedence(tmp_path: Path) -> None:
    name = dlib_models.SHAPE_5
    (tmp_path / name).write_bytes(b"not really a model")
    assert dlib_models.model_path(name, search=[tmp_path]) == tmp_path / name
    assert dlib_models.model_path(name, search=[tmp_path / name]) == tmp_path / name
    renamed = tmp_path / "other.dat"
    renamed.write_bytes(b"x")
    if not _models_available():
        with pytest.raises(FileNotFoundError, match="must be named"):
            dlib_models.model_path(name, search=[renamed])
    else:
        assert dlib_models.model_path(name, search=[renamed]) != renamed
    with pytest.raises(ValueError, match="unknown dlib model"):
        dlib_models.model_path("shape_predictor_194.dat")


@pytest.mark.skipif(
    importlib.util.find_spec("face_recognition_models") is None,
    reason="face_recognition_models not installed",
)
def test_locating_models_does_not_import_the_package() -> None:
    code = (
        "import sys\n"
        "from pipeline.prepare.dlib_models import model_path, SHAPE_68\n"
        "path = model_path(SHAPE_68)\n"
        "assert 'face_recognition_models' in str(path), path\n"
        "assert 'face_recognition_models' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@needs_models
def test_loaded_models_are_cached() -> None:
    first = dlib_models.load_model(dlib_models.SHAPE_68)
    assert dlib_models.load_model(dlib_models.SHAPE_68) is first
    assert dlib_models.hog_detector() is dlib_models.hog_detector()


# --------------------------------------------------------------------------- min_size


def _same_result(first: FaceResult, second: FaceResult) -> None:
    assert (first.status, first.n_faces, first.box, first.score) == (
        second.status,
        second.n_faces,
        second.box,
        second.score,
    )
    np.testing.assert_array_equal(first.landmarks, second.landmarks)
    np.testing.assert_array_equal(first.quad, second.quad)


def test_detect_face_rejects_negative_min_size() -> None:
    with pytest.raises(ValueError, match="min_size"):
        detect_face(Image.new("RGB", (8, 8)), min_size=-1)


@needs_models
@needs_data
def test_min_size_zero_or_already_reached_changes_nothing() -> None:
    image = load_rgb(_photos("ffhq", 9)[0]).resize((200, 200), Image.Resampling.LANCZOS)
    plain = detect_face(image)
    assert plain.status == "ok"
    for min_size in (0, 150, 200):  # 200: the longer side is not below it
        _same_result(detect_face(image, min_size=min_size), plain)


@needs_models
def test_min_size_fallback_quad_refers_to_the_original_image() -> None:
    noise = np.random.default_rng(1).integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    result = detect_face(Image.fromarray(noise), min_size=200)
    assert result.status == "fallback"
    np.testing.assert_allclose(result.quad, center_square_quad(40, 30))


@needs_models
@needs_data
@pytest.mark.parametrize("pad", [0.0, 0.25])
def test_min_size_maps_coordinates_back_exactly(pad: float) -> None:
    # 1024 x 800 -> 90 x 70: an aspect ratio whose enlargement to 400 px rounds the
    # height (311.1 -> 311), so the two axes have different scales.
    photo = load_rgb(_photos("celeba_hq", 17)[0]).crop((0, 100, 1024, 900))
    small = photo.resize((90, 70), Image.Resampling.LANCZOS)
    big = small.resize((400, 311), Image.Resampling.BICUBIC)
    reference = detect_face(big, upsample=0, pad=pad)
    result = detect_face(small, upsample=0, pad=pad, min_size=400)
    assert reference.status == result.status == "ok"
    assert (result.n_faces, result.score) == (reference.n_faces, reference.score)
    scale = np.array([400 / 90, 311 / 70])
    # Half-pixel convention: pixel centres scale about the image's outer edge.
    expected = (reference.landmarks + 0.5) / scale - 0.5
    np.testing.assert_allclose(result.landmarks, expected, atol=1e-9)
    np.testing.assert_allclose(result.quad, ffhq_quad(expected), atol=1e-9)
    corners = (np.reshape(reference.box, (2, 2)) + 0.5) / scale - 0.5
    assert result.box == tuple(int(v) for v in np.rint(corners).ravel())
    assert all(isinstance(v, int) for v in result.box)


@needs_models
@needs_data
@pytest.mark.parametrize("path", _real_photos()[:2] + _real_photos()[-2:], ids=lambda p: p.name)
def test_min_size_finds_the_full_resolution_landmarks(path: Path) -> None:
    image = load_rgb(path)
    full = detect_face(image, upsample=0)
    assert full.status == "ok"
    size = 100
    small = image.resize((size, size), Image.Resampling.LANCZOS)
    result = detect_face(small, upsample=0, min_size=400)
    assert result.status == "ok", f"{path.name}: {result.reason}"
    expected = (full.landmarks + 0.5) * (size / image.width) - 0.5
    # Measured over 23 photos: mean landmark distance 0.2-0.7 px, eyes within 0.55 px
    # (a quarter-pixel slip of the mapping alone would not show, the exact test above
    # covers that).
    assert np.hypot(*(result.landmarks - expected).T).mean() < 1.0
    np.testing.assert_allclose(eye_centres(result.landmarks), eye_centres(expected), atol=1.0)
