"""Face detection (dlib) and FFHQ-style face alignment.

Coordinate convention (everywhere in this module): points are ``(x, y)`` in
*pixel-index* coordinates of the image they refer to, i.e. the centre of
pixel ``(column i, row j)`` is ``(i, j)`` and the image spans
``[-0.5, width - 0.5]`` horizontally. dlib's boxes and landmarks use the same
convention. Pillow's geometric transforms put pixel centres at ``i + 0.5``,
hence the ``+ 0.5`` before ``Image.transform``.

The alignment follows the recipe of the FFHQ dataset script (also used by
PULSE): an oriented square ("quad") is derived from the eye and mouth
landmarks, and the image content inside that square is resampled to the
output size. Corners of a quad are ordered top-left, bottom-left,
bottom-right, top-right as seen in the aligned output.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from pipeline import dlib_models

DETECTORS = ("hog", "cnn")
MULTI_FACE_POLICIES = ("largest", "first", "center")
FALLBACKS = ("center_crop", "none")
PAD_MODES = ("edge", "constant")

# |eye-to-mouth| / |eye-to-eye| of a typical face: median over the 136 photos of
# shared/data (celeba_hq + ffhq) with dlib's 68-point landmarks (inter-quartile range
# 0.95-1.11). Only moves the template's eye height (by 0.4 px at 128 px over that range).
TYPICAL_MOUTH_RATIO = 1.03


@dataclass
class FaceResult:
    """Outcome of face detection on one image.

    status: "ok" (face found), "fallback" (no face, centre-crop quad) or "no_face".
    reason: why the status is not "ok"; "" when it is.
    detector: "hog" or "cnn".
    n_faces: number of faces the detector found (before choosing one).
    box: detector box of the chosen face, (left, top, right, bottom), source pixels.
    score: detector confidence of the chosen face (HOG score or CNN confidence).
    landmarks: (68, 2) float array, dlib's 68-point landmarks in source pixels.
    quad: (4, 2) float array, alignment square in source pixels (TL, BL, BR, TR).
    """

    status: str
    reason: str
    detector: str
    n_faces: int
    box: tuple[int, int, int, int] | None
    landmarks: np.ndarray | None
    quad: np.ndarray | None
    score: float | None = None

    def to_record(self) -> dict[str, Any]:
        """A flat dict for one parquet/CSV row.

        ``landmarks`` and ``quad`` become flat float lists ``[x0, y0, x1, y1, ...]``
        (136 and 8 values) or None; the box becomes four columns (None when absent).
        """
        box = self.box if self.box is not None else (None, None, None, None)
        return {
            "status": self.status,
            "reason": self.reason,
            "detector": self.detector,
            "n_faces": int(self.n_faces),
            "score": None if self.score is None else float(self.score),
            "box_left": box[0],
            "box_top": box[1],
            "box_right": box[2],
            "box_bottom": box[3],
            "landmarks": _flat(self.landmarks),
            "quad": _flat(self.quad),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> FaceResult:
        """Inverse of ``to_record`` (accepts rows read back by pandas, NaN for missing)."""
        box_values = [record.get(f"box_{side}") for side in ("left", "top", "right", "bottom")]
        box = None if any(_missing(v) for v in box_values) else tuple(int(v) for v in box_values)
        score = record.get("score")
        return cls(
            status=str(record["status"]),
            reason=str(record["reason"]),
            detector=str(record["detector"]),
            n_faces=int(record["n_faces"]),
            box=box,  # type: ignore[arg-type]
            landmarks=_unflat(record.get("landmarks")),
            quad=_unflat(record.get("quad")),
            score=None if _missing(score) else float(score),
        )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _flat(points: np.ndarray | None) -> list[float] | None:
    return None if points is None else [float(v) for v in np.asarray(points).ravel()]


def _unflat(values: Any) -> np.ndarray | None:
    if values is None or (isinstance(values, float) and math.isnan(values)):
        return None
    return np.asarray(values, dtype=np.float64).reshape(-1, 2)


# --------------------------------------------------------------------------- detection


def center_square_quad(width: int, height: int) -> np.ndarray:
    """Quad of the largest centred square of a ``width`` x ``height`` image.

    Aligning with it gives exactly the centre crop, resized.
    """
    side = min(width, height)
    left = (width - side) / 2.0 - 0.5
    top = (height - side) / 2.0 - 0.5
    right, bottom = left + side, top + side
    return np.array([[left, top], [left, bottom], [right, bottom], [right, top]], dtype=np.float64)


def _run_detector(
    array: np.ndarray, detector: str, upsample: int, model_search: Sequence[Any]
) -> tuple[list[tuple[int, int, int, int]], list[float]]:
    """Boxes and scores, sorted by decreasing score (stable for ties)."""
    if detector == "hog":
        rects, scores, _ = dlib_models.hog_detector().run(array, upsample, 0.0)
        found = [
            ((r.left(), r.top(), r.right(), r.bottom()), float(s))
            for r, s in zip(rects, scores, strict=True)
        ]
    else:
        cnn = dlib_models.load_model(dlib_models.CNN_DETECTOR, model_search)
        found = [
            ((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), float(d.confidence))
            for d in cnn(array, upsample)
        ]
    found.sort(key=lambda item: -item[1])
    return [box for box, _ in found], [score for _, score in found]


def _choose_face(boxes: np.ndarray, policy: str, width: int, height: int) -> int:
    """Index of the face to keep; ``boxes`` is (n, 4) l, t, r, b, sorted by score."""
    if policy == "first":
        return 0
    if policy == "largest":
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        return int(np.argmax(areas))
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    image_centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    return int(np.argmin(np.hypot(*(centres - image_centre).T)))


def _enlarge(image: Image.Image, min_size: int) -> tuple[Image.Image, tuple[float, float]]:
    """``image`` enlarged (Pillow bicubic) so that its longer side is ``min_size``.

    Returns the image and the per-axis scale (new size / old size; both 1.0 when the
    longer side already reaches ``min_size``). Each axis is rounded to whole pixels
    on its own, so the scales are exact for that axis and may differ slightly.
    """
    width, height = image.size
    longer = max(width, height)
    if longer >= min_size:
        return image, (1.0, 1.0)
    factor = min_size / longer
    new_size = (max(1, round(width * factor)), max(1, round(height * factor)))
    enlarged = image.resize(new_size, Image.Resampling.BICUBIC)
    return enlarged, (new_size[0] / width, new_size[1] / height)


def _to_original(points: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Map pixel-index points (n, 2) of an image resized by ``scale`` back to the original.

    Pillow resizes pixel centres so that ``x_big + 0.5 = (x + 0.5) * scale``; inverted
    here per axis.
    """
    return (np.asarray(points, dtype=np.float64) + 0.5) / np.asarray(scale) - 0.5


def detect_face(
    image: Image.Image,
    detector: str = "hog",
    upsample: int = 1,
    pad: float = 0.0,
    multi_face: str = "largest",
    fallback: str = "center_crop",
    *,
    pad_mode: str = "edge",
    min_size: int = 0,
    model_search: Sequence[Any] = (),
) -> FaceResult:
    """Detect one face, its 68 dlib landmarks and its FFHQ alignment quad.

    image: RGB PIL image (other modes are converted to RGB).
    detector: "hog" (``dlib.get_frontal_face_detector``) or "cnn" (dlib's MMOD CNN,
        ``mmod_human_face_detector.dat``; slow on CPU).
    upsample: times dlib doubles the image before detecting (finds smaller faces).
    pad: border added on every side before detection, as a fraction of the image's
        longer side (faces touching the edge, e.g. emoji, are found more easily);
        ``pad_mode`` "edge" repeats the edge pixels, "constant" pads with black.
        Landmarks are also computed on the padded image; all returned coordinates
        refer to the original image.
    min_size: when the image's longer side is below ``min_size`` pixels, the image is
        first enlarged (Pillow bicubic, any real factor) so that its longer side is
        ``min_size``; padding and detection then run on the enlarged image. Small
        images such as 64 px emoji need it: dlib's HOG finds no face under about 80 px,
        and ``upsample`` only doubles. 0 (the default) never enlarges. Boxes and
        landmarks are mapped back with the half-pixel convention,
        ``x = (x_big + 0.5) / factor - 0.5``; the box is rounded to whole pixels.
    multi_face: which face to keep when several are found: "largest" (box area),
        "first" (highest detector score) or "center" (box centre nearest the image centre).
    fallback: when no face is found, "center_crop" returns status "fallback" with the
        quad of the largest centred square; "none" returns status "no_face", quad None.
    model_search: extra folders/files to search for dlib model files (see dlib_models).
    """
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
    if multi_face not in MULTI_FACE_POLICIES:
        raise ValueError(f"multi_face must be one of {MULTI_FACE_POLICIES}, got {multi_face!r}")
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    if pad < 0 or upsample < 0:
        raise ValueError(f"pad and upsample must be >= 0, got pad={pad}, upsample={upsample}")
    if min_size < 0:
        raise ValueError(f"min_size must be >= 0, got {min_size}")

    image = image.convert("RGB")
    width, height = image.size
    detected_on, scale = _enlarge(image, min_size)
    array = np.asarray(detected_on, dtype=np.uint8)
    big_height, big_width = array.shape[:2]
    border = round(pad * max(big_width, big_height))
    if border:
        array = np.pad(array, ((border, border), (border, border), (0, 0)), mode=pad_mode)
    array = np.ascontiguousarray(array)

    boxes, scores = _run_detector(array, detector, upsample, model_search)
    if not boxes:
        if fallback == "none":
            return FaceResult("no_face", "no face detected", detector, 0, None, None, None)
        quad = center_square_quad(width, height)
        return FaceResult("fallback", "no face detected", detector, 0, None, None, quad)

    padded_boxes = np.array(boxes, dtype=np.int64)
    chosen = _choose_face(padded_boxes - border, multi_face, big_width, big_height)
    left, top, right, bottom = (int(v) for v in padded_boxes[chosen])

    import dlib  # deferred: only needed once a face is found

    predictor = dlib_models.load_model(dlib_models.SHAPE_68, model_search)
    shape = predictor(array, dlib.rectangle(left, top, right, bottom))
    landmarks = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64) - border
    corners = np.array([[left, top], [right, bottom]], dtype=np.float64) - border
    if scale != (1.0, 1.0):
        landmarks = _to_original(landmarks, scale)
        corners = _to_original(corners, scale)
    box_left, box_top, box_right, box_bottom = (int(v) for v in np.rint(corners).ravel())
    return FaceResult(
        status="ok",
        reason="",
        detector=detector,
        n_faces=len(boxes),
        box=(box_left, box_top, box_right, box_bottom),
        landmarks=landmarks,
        quad=ffhq_quad(landmarks),
        score=scores[chosen],
    )


# --------------------------------------------------------------------------- geometry


def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """(2, 2) array: centres of the image-left eye (points 36-41) and image-right eye (42-47)."""
    landmarks = _check_landmarks(landmarks)
    return np.stack([landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)])


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 2):
        raise ValueError(f"expected 68 (x, y) landmarks, got an array of shape {landmarks.shape}")
    return landmarks


def _rot90(v: np.ndarray) -> np.ndarray:
    """``v`` turned by +90 degrees in image coordinates (y down): (x, y) -> (-y, x)."""
    return np.array([-v[1], v[0]])


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The FFHQ alignment square for dlib 68-point landmarks, (4, 2): TL, BL, BR, TR.

    The square's horizontal axis blends the eye line with the direction
    perpendicular to the eye-to-mouth line; its half side is the larger of twice
    the eye distance and 1.8 times the eye-to-mouth distance; its centre lies
    a tenth of the eye-to-mouth vector below the midpoint of the eyes.
    """
    landmarks = _check_landmarks(landmarks)
    eye_a, eye_b = eye_centres(landmarks)
    eye_mid = (eye_a + eye_b) / 2.0
    eye_vec = eye_b - eye_a
    mouth_mid = (landmarks[48] + landmarks[54]) / 2.0
    mouth_vec = mouth_mid - eye_mid

    # The mouth direction turned onto the eye line (y down, so "down" turns to "right").
    axis = eye_vec + np.array([mouth_vec[1], -mouth_vec[0]])
    norm = np.hypot(*axis)
    if norm == 0:
        raise ValueError("degenerate landmarks: eyes and mouth give no orientation")
    half = max(np.hypot(*eye_vec) * 2.0, np.hypot(*mouth_vec) * 1.8)
    x_half = axis / norm * half
    y_half = _rot90(x_half)
    centre = eye_mid + mouth_vec * 0.1
    return np.stack(
        [
            centre - x_half - y_half,
            centre - x_half + y_half,
            centre + x_half + y_half,
            centre + x_half - y_half,
        ]
    )


def map_to_aligned(points: np.ndarray, quad: np.ndarray, size: int) -> np.ndarray:
    """Map source-image points (n, 2) to pixel coordinates of the ``size`` aligned output.

    ``quad`` must be a parallelogram (``ffhq_quad`` and ``center_square_quad`` give
    squares), for which the quad transform is affine.
    """
    quad = _check_quad(quad)
    top_left, bottom_left, _, top_right = quad
    if not np.allclose(quad[2], top_right + bottom_left - top_left, atol=1e-6 * _side(quad)):
        raise ValueError("map_to_aligned needs a parallelogram quad")
    basis = np.column_stack([top_right - top_left, bottom_left - top_left])
    offsets = np.asarray(points, dtype=np.float64).reshape(-1, 2) - top_left
    fractions = np.linalg.solve(basis, offsets.T).T
    # Pixel centres sit at +0.5 in continuous coordinates; the shift cancels in the
    # differences above but not in the output.
    return fractions * size - 0.5


def template_eye_positions(
    size: int, mouth_ratio: float = TYPICAL_MOUTH_RATIO
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Where the FFHQ recipe puts the two eye centres in a ``size`` x ``size`` output.

    Pixel-index coordinates, (image-left eye, image-right eye). Derived for an upright
    frontal face: eye line horizontal, eye-to-mouth vector perpendicular to it,
    ``mouth_ratio`` = |eye-to-mouth| / |eye-to-eye|. Then the quad's half side is
    ``h = max(2, 1.8 * mouth_ratio) * d`` (d: eye distance), the eyes sit at
    ``+-d/2`` from the quad centre horizontally and ``0.1 * mouth_ratio * d`` above it,
    and the quad side ``2 h`` maps onto ``size`` pixels. For ``mouth_ratio <= 10/9``
    (nearly all faces) the eyes land at x = 3/8 and 5/8 of the width, and at
    y = (1 - 0.05 * mouth_ratio) / 2 of the height: for size 128 and the default ratio,
    (47.5, 60.2) and (79.5, 60.2). Turned heads (yaw, pitch) deviate from this.
    """
    half = max(2.0, 1.8 * mouth_ratio)  # in units of the eye distance
    dx = 0.5 / half  # eye offset from the centre, in units of the half side
    dy = 0.1 * mouth_ratio / half
    scale = size / 2.0
    y = scale * (1.0 - dy) - 0.5
    return ((scale * (1.0 - dx) - 0.5, y), (scale * (1.0 + dx) - 0.5, y))


# --------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class Template:
    """A fixed square region of a pre-aligned data set's images, used as it is.

    Data sets whose images are face crops already (alignment policy
    ``prealigned``) are brought to the evaluation size through this square
    instead of a detected face: it becomes an alignment quad, so
    :func:`align_face` does the warp exactly as for detected faces.

    name: how logs and the report refer to the template.
    source_size: ``(width, height)`` of the images it is declared for; ``None``
        declares the largest centred square of an image of any size.
    left, top, side: the square in source pixels, counted from the image's
        top-left corner (it covers columns ``left .. left + side - 1``); unused
        when ``source_size`` is None.
    eyes: where the data set's eye centres typically are, ``((x, y), (x, y))``
        in source pixel-index coordinates (image-left eye first), or None; the
        contact sheet marks them.
    face_box: ``(left, top, right, bottom)``, fractions of the aligned output,
        where dlib's HOG puts the face box on these crops; identity uses it when
        it finds no face (:func:`pipeline.identity.face_descriptor`). None keeps
        identity's own fallback box (made for FFHQ alignments).
    """

    name: str
    source_size: tuple[int, int] | None = None
    left: float = 0.0
    top: float = 0.0
    side: float = 0.0
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None
    face_box: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.source_size is None:
            return
        width, height = self.source_size
        inside = 0 <= self.left <= width - self.side and 0 <= self.top <= height - self.side
        if self.side <= 0 or not inside:
            raise ValueError(
                f"template {self.name!r}: the square (left {self.left}, top {self.top}, "
                f"side {self.side}) must lie inside the {width}x{height} source"
            )

    def quad(self, width: int, height: int) -> np.ndarray:
        """The template's alignment quad (TL, BL, BR, TR) on a ``width`` x ``height`` image.

        Raises ValueError naming the template and both sizes when the image is
        not of the size the template is declared for.
        """
        if self.source_size is None:
            return center_square_quad(width, height)
        if (width, height) != tuple(self.source_size):
            expected = "x".join(map(str, self.source_size))
            raise ValueError(
                f"template {self.name!r} is declared for {expected} images; "
                f"this one is {width}x{height}"
            )
        # Pixel-index coordinates: the square's outer edges lie half a pixel out.
        left, top = self.left - 0.5, self.top - 0.5
        right, bottom = left + self.side, top + self.side
        return np.array(
            [[left, top], [left, bottom], [right, bottom], [right, top]], dtype=np.float64
        )

    def eye_positions(self, size: int) -> np.ndarray | None:
        """The template's typical eyes in a ``size`` x ``size`` output, (2, 2); None if unknown."""
        if self.eyes is None or self.source_size is None:
            return None
        return map_to_aligned(np.asarray(self.eyes), self.quad(*self.source_size), size)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (lists, numbers), e.g. for a Snakemake param; inverse of ``from_dict``."""
        return {
            "name": self.name,
            "source_size": None if self.source_size is None else list(self.source_size),
            "left": self.left,
            "top": self.top,
            "side": self.side,
            "eyes": None if self.eyes is None else [list(eye) for eye in self.eyes],
            "face_box": None if self.face_box is None else list(self.face_box),
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Template:
        size, eyes, box = values.get("source_size"), values.get("eyes"), values.get("face_box")
        return cls(
            name=str(values["name"]),
            source_size=None if size is None else (int(size[0]), int(size[1])),
            left=float(values.get("left", 0.0)),
            top=float(values.get("top", 0.0)),
            side=float(values.get("side", 0.0)),
            eyes=None if eyes is None else tuple((float(x), float(y)) for x, y in eyes),  # type: ignore[arg-type]
            face_box=None if box is None else tuple(float(v) for v in box),  # type: ignore[arg-type]
        )


CENTRE_SQUARE = Template("centre_square")
"""The template of a ``prealigned`` data set whose kind declares none: the centred square."""


# --------------------------------------------------------------------------- alignment


def _check_quad(quad: np.ndarray) -> np.ndarray:
    quad = np.asarray(quad, dtype=np.float64)
    if quad.shape != (4, 2) or not np.all(np.isfinite(quad)):
        raise ValueError(f"quad must be a finite (4, 2) array, got shape {quad.shape}")
    return quad


def _side(quad: np.ndarray) -> float:
    return float(max(np.hypot(*(quad[3] - quad[0])), np.hypot(*(quad[1] - quad[0]))))


def _blend_padding(array: np.ndarray, pads: tuple[int, int, int, int], qsize: float) -> np.ndarray:
    """Soften reflect-padded borders (float32 HxWx3; pads = left, top, right, bottom).

    Towards the outer edge the padding is blurred and faded to the image's median
    colour, so that mirrored content does not look like a second face.
    """
    height, width = array.shape[:2]
    left, top, right, bottom = pads
    xs = np.arange(width, dtype=np.float32)
    ys = np.arange(height, dtype=np.float32)
    # 0 at the original image edge, 1 at the outer edge of the padding, negative inside.
    ramp_x = 1.0 - np.minimum(xs / left, (width - 1 - xs) / right)
    ramp_y = 1.0 - np.minimum(ys / top, (height - 1 - ys) / bottom)
    mask = np.maximum(ramp_x[None, :], ramp_y[:, None])[:, :, None]
    sigma = qsize * 0.02
    blurred = ndimage.gaussian_filter(array, [sigma, sigma, 0])
    array = array + (blurred - array) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    array = array + (np.median(array, axis=(0, 1)) - array) * np.clip(mask, 0.0, 1.0)
    return array


def align_face(
    image: Image.Image,
    quad: np.ndarray,
    size: int,
    transform_size: int | None = None,
    enable_padding: bool = True,
) -> Image.Image:
    """Resample the ``quad`` region of ``image`` to a ``size`` x ``size`` RGB image.

    Steps of the FFHQ recipe: (1) when the quad is at least 4x larger than the output,
    downscale the whole image by an integer factor first (Lanczos); (2) crop to the
    quad plus a 10 % border; (3) if the quad reaches outside the image and
    ``enable_padding``, extend it by reflection, blurred and faded to the median colour
    (otherwise the outside is black); (4) quad transform with bilinear sampling to
    ``transform_size`` pixels; (5) Lanczos downscale to ``size``.

    transform_size: defaults to ``4 * size`` capped at 4096 (never below ``size``),
        i.e. 4x supersampling, and exactly the original 4096 for 1024 px output.
        After step (1) the quad is under ``4 * size`` source pixels wide, so the
        bilinear transform never minifies and does not alias.

    Unlike the original script, coordinates are rescaled exactly (half-pixel
    convention) after the downscale in step (1). The result is deterministic.
    """
    quad = _check_quad(quad).copy()
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if transform_size is None:
        transform_size = max(size, min(4 * size, 4096))
    if transform_size < size:
        raise ValueError(f"transform_size ({transform_size}) must be >= size ({size})")
    image = image.convert("RGB")
    qsize = _side(quad)

    shrink = math.floor(qsize / size * 0.5)
    if shrink > 1:
        width, height = image.size
        new_size = (max(1, round(width / shrink)), max(1, round(height / shrink)))
        image = image.resize(new_size, Image.Resampling.LANCZOS)
        scale = np.array([new_size[0] / width, new_size[1] / height])
        quad = (quad + 0.5) * scale - 0.5
        qsize *= float(scale.mean())

    border = max(round(qsize * 0.1), 3)
    low = np.floor(quad.min(axis=0)).astype(int)
    high = np.ceil(quad.max(axis=0)).astype(int)
    width, height = image.size
    crop = (
        max(low[0] - border, 0),
        max(low[1] - border, 0),
        min(high[0] + border, width),
        min(high[1] + border, height),
    )
    if crop[2] - crop[0] < width or crop[3] - crop[1] < height:
        image = image.crop(crop)
        quad -= crop[:2]
        low -= crop[:2]
        high -= crop[:2]

    width, height = image.size
    pads = (
        max(border - low[0], 0),
        max(border - low[1], 0),
        max(high[0] - width + border, 0),
        max(high[1] - height + border, 0),
    )
    if enable_padding and max(pads) > border - 4:
        least = max(round(qsize * 0.3), 1)
        pads = tuple(max(p, least) for p in pads)
        left, top, right, bottom = pads
        array = np.pad(
            np.asarray(image, dtype=np.float32),
            ((top, bottom), (left, right), (0, 0)),
            mode="reflect",
        )
        array = _blend_padding(array, pads, qsize)
        image = Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), "RGB")
        quad += (left, top)

    image = image.transform(
        (transform_size, transform_size),
        Image.Transform.QUAD,
        tuple((quad + 0.5).ravel()),
        Image.Resampling.BILINEAR,
    )
    if transform_size != size:
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    return image
