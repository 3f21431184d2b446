"""Face detection (dlib): faces, landmarks and the quad that frames each image; the detection stage.

Coordinates follow :mod:`pipeline.geometry` (pixel-index ``(x, y)`` of the source image).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from pipeline.geometry import CENTRE_SQUARE, Template, center_square_quad
from pipeline.io import load_rgb, write_parquet
from pipeline.prepare import dlib_models
from pipeline.prepare.align import ffhq_quad
from pipeline.shards import select_shard
from pipeline.vocabulary import (
    ALIGNED,
    ALIGNMENT_POLICIES,
    CENTRE_CROP,
    DETECT,
    ERROR,
    FALLBACK,
    NO_FACE,
    OK,
    PREALIGNED,
)

log = logging.getLogger(__name__)

DETECTORS = ("hog", "cnn")
MULTI_FACE_POLICIES = ("largest", "first", "center")
FALLBACKS = ("center_crop", "none")
PAD_MODES = ("edge", "constant")


@dataclass
class FaceResult:
    """Outcome of face detection on one image.

    status: ``ok`` (face found), ``fallback`` (no face, centre-crop quad) or ``no_face``
        (:mod:`pipeline.vocabulary`).
    reason: why the status is not ``ok``; "" when it is.
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


# dlib's detectors (HOG and the MMOD CNN) scan an image pyramid whose levels
# shrink by this factor (dlib's pyramid_down<6>).
PYRAMID_STEP = 5 / 6


def _reduce(image: Image.Image, max_size: int) -> tuple[Image.Image, tuple[float, float]]:
    """``image`` reduced (Pillow bicubic, antialiased) so that its longer side is at most
    ``max_size``, by a power of dlib's pyramid step.

    A reduction by ``PYRAMID_STEP ** k`` makes the reduced copy's pyramid the
    deeper levels of the full image's own, so the detector finds the same faces
    in nearly the same boxes; what it skips are the top levels, where only faces
    smaller than about ``80 / PYRAMID_STEP ** k`` pixels are found. Returns the
    image and the per-axis scale (new size / old size; both 1.0 when ``max_size``
    is 0 or the longer side does not exceed it), as :func:`_enlarge`.
    """
    width, height = image.size
    longer = max(width, height)
    if not max_size or longer <= max_size:
        return image, (1.0, 1.0)
    steps = math.ceil(math.log(max_size / longer) / math.log(PYRAMID_STEP) - 1e-9)
    factor = PYRAMID_STEP**steps
    new_size = (max(1, round(width * factor)), max(1, round(height * factor)))
    # reducing_gap: a box reduction first, then bicubic over the last factor of 3 at
    # most; as sharp where it matters, and seconds faster on a 64-megapixel photo.
    reduced = image.resize(new_size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    return reduced, (new_size[0] / width, new_size[1] / height)


def _landmarks_at_full_size(
    image: Image.Image,
    box: np.ndarray,
    border: int,
    pad_mode: str,
    model_search: Sequence[Any],
) -> np.ndarray:
    """dlib's 68 landmarks of the face in ``box`` (l, t, r, b; source pixels) of the full image.

    The same as running the shape predictor on the whole image padded by
    ``border`` pixels (``pad_mode``), as :func:`detect_face` does for images it
    does not reduce, but on a crop: the predictor reads pixels near the box
    only, so the crop is the box and one box size on every side (dlib reads 0
    beyond the padded image, and beyond the crop too). Landmarks then have the
    precision of the full image although the face was found on a reduced copy.
    """
    import dlib

    left, top, right, bottom = (int(v) for v in np.rint(box))
    margin = max(right - left, bottom - top, 1)
    width, height = image.size
    # The crop, clipped to the padded image.
    x0, y0 = max(left - margin, -border), max(top - margin, -border)
    x1, y1 = min(right + margin, width + border), min(bottom + margin, height + border)
    inside = image.crop((max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)))
    crop = np.pad(
        np.asarray(inside, dtype=np.uint8),
        ((max(0, -y0), max(0, y1 - height)), (max(0, -x0), max(0, x1 - width)), (0, 0)),
        mode=pad_mode,
    )
    predictor = dlib_models.load_model(dlib_models.SHAPE_68, model_search)
    rect = dlib.rectangle(left - x0, top - y0, right - x0, bottom - y0)
    shape = predictor(np.ascontiguousarray(crop), rect)
    return np.array([(p.x + x0, p.y + y0) for p in shape.parts()], dtype=np.float64)


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
    max_size: int = 0,
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
    max_size: when the image's longer side is above ``max_size`` pixels, faces are
        detected on a copy reduced (Pillow bicubic, antialiased) by a power of dlib's
        pyramid step (``_reduce``) to a longer side of at most ``max_size``, and the
        box is mapped back as above; the landmarks are then found on the full image
        within that box, so they keep its precision.
        A 64-megapixel photo costs seconds and a few hundred megabytes instead of
        minutes and gigabytes; a face smaller than about ``80 x longer / max_size``
        pixels is not found. 0 (the default) never reduces.
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
    if min_size < 0 or max_size < 0:
        raise ValueError(f"min_size and max_size must be >= 0, got {min_size}, {max_size}")
    if max_size and max_size < min_size:
        raise ValueError(f"max_size ({max_size}) must be 0 or at least min_size ({min_size})")

    image = image.convert("RGB")
    width, height = image.size
    detected_on, scale = _enlarge(image, min_size)
    reduced = False
    if scale == (1.0, 1.0):
        detected_on, scale = _reduce(image, max_size)
        reduced = scale != (1.0, 1.0)
    array = np.asarray(detected_on, dtype=np.uint8)
    big_height, big_width = array.shape[:2]
    border = round(pad * max(big_width, big_height))
    if border:
        array = np.pad(array, ((border, border), (border, border), (0, 0)), mode=pad_mode)
    array = np.ascontiguousarray(array)

    boxes, scores = _run_detector(array, detector, upsample, model_search)
    if not boxes:
        if fallback == "none":
            return FaceResult(NO_FACE, "no face detected", detector, 0, None, None, None)
        quad = center_square_quad(width, height)
        return FaceResult(FALLBACK, "no face detected", detector, 0, None, None, quad)

    padded_boxes = np.array(boxes, dtype=np.int64)
    chosen = _choose_face(padded_boxes - border, multi_face, big_width, big_height)
    left, top, right, bottom = (int(v) for v in padded_boxes[chosen])

    corners = np.array([[left, top], [right, bottom]], dtype=np.float64) - border
    if reduced:
        corners = _to_original(corners, scale)
        full_border = round(pad * max(width, height))
        landmarks = _landmarks_at_full_size(
            image, corners.ravel(), full_border, pad_mode, model_search
        )
    else:
        import dlib  # deferred: only needed once a face is found

        predictor = dlib_models.load_model(dlib_models.SHAPE_68, model_search)
        shape = predictor(array, dlib.rectangle(left, top, right, bottom))
        landmarks = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64) - border
        if scale != (1.0, 1.0):
            landmarks = _to_original(landmarks, scale)
            corners = _to_original(corners, scale)
    box_left, box_top, box_right, box_bottom = (int(v) for v in np.rint(corners).ravel())
    return FaceResult(
        status=OK,
        reason="",
        detector=detector,
        n_faces=len(boxes),
        box=(box_left, box_top, box_right, box_bottom),
        landmarks=landmarks,
        quad=ffhq_quad(landmarks),
        score=scores[chosen],
    )


# --------------------------------------------------------------------------- the stage


def _detect_one(
    task: tuple[str, str, dict[str, Any], Template | None, int | None],
) -> dict[str, Any]:
    image_id, path, options, template, max_pixels = task
    try:
        image = load_rgb(path, max_pixels)
    except ValueError as exc:
        return {"image_id": image_id, "status": ERROR, "reason": str(exc)}
    result = detect_face(image, **options)
    record = {"image_id": image_id, **result.to_record()}
    if template is None:
        record["alignment"] = {OK: ALIGNED, FALLBACK: CENTRE_CROP}.get(result.status)
        return record
    # Prealigned: the detection is kept for the record; the template frames the image.
    try:
        quad = template.quad(*image.size)
    except ValueError as exc:
        return {**record, "status": ERROR, "reason": str(exc), "quad": None, "alignment": None}
    return {**record, "quad": [float(v) for v in quad.ravel()], "alignment": PREALIGNED}


def detect_faces(
    manifest_path: Path,
    shard: str,
    shard_size: int,
    detector: Mapping[str, Any],
    multi_face: str,
    no_face: str,
    out: Path,
    threads: int = 1,
    alignment: Mapping[str, Any] | None = None,
    max_pixels: int | None = None,
) -> pd.DataFrame:
    """Detect the face and its landmarks in each image of a shard; write ``faces`` rows.

    ``detector`` is the data set's ``detector`` block (``kind``, ``upsample``,
    ``pad``, ``min_size``, ``max_size``: see :func:`detect_face`). ``max_pixels``
    (the config's ``max_image_pixels``, which the catalog applied) lets the
    images the catalog accepted be decoded.

    ``alignment`` is ``{"policy": "detect" | "prealigned", "template": ...}``
    (``pipeline.config.alignment_options``; None: detect). Each row gets an
    ``alignment`` (see :mod:`pipeline.vocabulary`) and the quad that frames it:

    - ``detect``: a detected face is aligned the FFHQ way (``aligned``); an image
      without one is centre-cropped (``no_face: center_crop``: status
      ``fallback``, ``centre_crop``) or left out (``skip``: status ``no_face``,
      no alignment).
    - ``prealigned``: every usable image is framed by the template's square
      (``prealigned``, whether or not a face was found: status ``ok`` or
      ``fallback``); ``no_face`` does not apply. An image of a size the
      template is not declared for gets status ``error``.

    Detection runs either way, and its results (detector, n_faces, box,
    landmarks, score) are kept. Images the catalog marked unusable keep their
    status and reason.
    """
    rows = select_shard(pd.read_parquet(manifest_path), shard, shard_size)
    policy = (alignment or {}).get("policy", DETECT)
    if policy not in ALIGNMENT_POLICIES:
        raise ValueError(f"alignment policy must be one of {ALIGNMENT_POLICIES}, got {policy!r}")
    template = None
    if policy == PREALIGNED:
        values = (alignment or {}).get("template")
        template = Template.from_dict(values) if values else CENTRE_SQUARE
    keep_without_face = no_face == "center_crop" or template is not None
    options = {
        "detector": detector["kind"],
        "upsample": detector["upsample"],
        "pad": detector["pad"],
        "min_size": detector["min_size"],
        "max_size": detector["max_size"],
        "multi_face": multi_face,
        "fallback": "center_crop" if keep_without_face else "none",
    }
    usable = rows[rows["status"] == OK]
    tasks = [(row.image_id, row.path, options, template, max_pixels) for row in usable.itertuples()]
    # Unusable catalog rows keep their catalog status (error, skipped, duplicate).
    records = [
        {"image_id": row.image_id, "status": row.status, "reason": row.reason}
        for row in rows[rows["status"] != OK].itertuples()
    ]
    progress = {
        "desc": f"detect shard {shard}",
        "unit": "img",
        "total": len(tasks),
        "mininterval": 10,
    }
    if threads > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=threads) as pool:
            records += list(tqdm(pool.map(_detect_one, tasks, chunksize=4), **progress))
    else:
        records += [_detect_one(task) for task in tqdm(tasks, **progress)]
    faces = pd.DataFrame.from_records(records)
    if "alignment" not in faces.columns:  # a shard without a usable image
        faces["alignment"] = None
    faces = rows[["image_id", "path"]].merge(faces, on="image_id", how="left")
    counts = faces["status"].value_counts().to_dict()
    framed = faces["alignment"].value_counts().to_dict()
    log.info(
        "shard %s: %d images (%s), face status counts %s, alignments %s",
        shard, len(faces), policy, counts, framed,
    )  # fmt: skip
    write_parquet(out, faces)
    return faces
