"""Identity preservation: does the upscaled face still look like the same person?

The score is the Euclidean distance between dlib's 128-d face descriptors
(``dlib_face_recognition_resnet_model_v1.dat``, a ResNet trained for face
verification; 99.38 % on LFW) of the output and of the ground truth. dlib's
convention: a distance below 0.6 means "same person".

Per image: HOG face detection (``dlib.get_frontal_face_detector``; the largest
box when there are several), the 5-point shape predictor on that box (the
landmarks dlib's own recognition example aligns with; the 68-point one can be
chosen), then ``compute_face_descriptor``, which cuts a 150 x 150 chip around
the landmarks (padding 0.25) and runs the network on it. No jitter, so the
result is deterministic.

Small images. The pipeline scores outputs of 128 px and up, aligned the FFHQ
way. There the face box is about 75 px wide, just under the HOG detector's
80 x 80 window, so by default (``upsample=None``) detection runs at the
original size first and, when that finds nothing in an image of at most
512 px, once more on the image upsampled 2x inside dlib. Measured on the 136
photos of ``shared/data`` at 128 px: 136 found at the original size; on bicubic
16 -> 128 outputs, 102 at the original size, 103 with the retry (upsampling
alone: 95). Landmarks and descriptors always use the original pixels: the
150 px chip is interpolated from them (at 128 px the chip's source region is
about 89 px wide, so it is enlarged about 1.7x). Faces at 128 px give
descriptors within 0.09 (median; max 0.22) of the same photos at 512 px, far
below the 0.6 threshold, but absolute distances at different output sizes are
not comparable.

Fallback when no face is detected (``detected`` is False either way):

- ``"aligned_box"`` (default): use :data:`ALIGNED_FACE_BOX`, the box HOG puts
  on an FFHQ-aligned face, scaled to the image. Swapping it in for the detected
  box moves the descriptor by a median of 0 (max 0.19) on the shared photos.
  Images framed otherwise pass their own box (``aligned_box``): a cropped
  Extended Yale B face fills its template square, where FFHQ's box moves the
  descriptor by a median of 0.76 (max 0.83, beyond the same-person threshold)
  and the template's own box (``pipeline.geometry.Template.face_box``) by 0 (max
  0.12), on the 45 of a seeded 300 crops where HOG finds the face
  (``benchmarks/croppedyale_alignment.py``).
- ``"whole_image"``: the whole image as the face box. The shape predictor was
  trained on tight detector boxes, so this is cruder (median 0.13, max 0.99).
- ``"none"``: no descriptor, the distance is NaN.

Inputs are uint8 ``H x W x 3`` RGB, as for :mod:`pipeline.measure.quality`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.measure.catalogue import SAME_PERSON
from pipeline.prepare import dlib_models

__all__ = [
    "ALIGNED_FACE_BOX",
    "FALLBACKS",
    "SAME_PERSON_THRESHOLD",
    "descriptor_distance",
    "face_descriptor",
    "identity_distance",
]

SAME_PERSON_THRESHOLD = SAME_PERSON.value
DESCRIPTOR_SIZE = 128
FALLBACKS = ("aligned_box", "whole_image", "none")
LANDMARK_MODELS = {5: dlib_models.SHAPE_5, 68: dlib_models.SHAPE_68}

# (left, top, right, bottom) of the HOG face box on an FFHQ-aligned face, as fractions
# of the image side (right/bottom exclusive): the median over the 136 photos of
# shared/data (CelebA-HQ and FFHQ) at 128 px, detected at the original size, i.e.
# (29, 45, 102, 118) px.
ALIGNED_FACE_BOX = (0.227, 0.352, 0.797, 0.922)

# Above this size a face filling an aligned image is far larger than HOG's 80 px window.
_RETRY_MAX_SIDE = 512

FaceDescriptor = tuple[np.ndarray | None, bool]


def _check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array; got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"{name} has dtype {image.dtype}; expected uint8 RGB in [0, 255]")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be H x W x 3 RGB; got shape {image.shape}")
    # dlib needs C-contiguous memory.
    return np.ascontiguousarray(image)


def _upsample_levels(height: int, width: int, upsample: int | None) -> tuple[int, ...]:
    if upsample is not None:
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0 or None; got {upsample}")
        return (upsample,)
    return (0, 1) if max(height, width) <= _RETRY_MAX_SIDE else (0,)


def _detect(image: np.ndarray, upsample: int | None) -> Any:
    """The largest HOG face box (a dlib.rectangle) or None."""
    detector = dlib_models.hog_detector()
    for level in _upsample_levels(image.shape[0], image.shape[1], upsample):
        rects, _scores, _ = detector.run(image, level, 0.0)
        if rects:
            return max(rects, key=lambda rect: rect.area())
    return None


def _fallback_box(
    height: int, width: int, fallback: str, aligned_box: Sequence[float] = ALIGNED_FACE_BOX
) -> Any:
    import dlib

    if fallback == "whole_image":
        return dlib.rectangle(0, 0, width - 1, height - 1)
    left, top, right, bottom = aligned_box
    return dlib.rectangle(
        round(left * width),
        round(top * height),
        round(right * width) - 1,
        round(bottom * height) - 1,
    )


def face_descriptor(
    image: np.ndarray,
    *,
    upsample: int | None = None,
    fallback: str = "aligned_box",
    landmarks: int = 5,
    model_search: Sequence[Any] = (),
    aligned_box: Sequence[float] | None = None,
) -> FaceDescriptor:
    """dlib's 128-d face descriptor of the face in ``image``, and whether a face was detected.

    image: uint8 ``H x W x 3`` RGB.
    upsample: times dlib doubles the image for HOG detection; None (default) tries 0,
        then 1 for images of at most 512 px (see the module docstring).
    fallback: face box when nothing is detected: "aligned_box", "whole_image" or "none"
        (then the descriptor is None).
    landmarks: 5 or 68, the shape predictor that places the 150 px chip.
    model_search: extra places to look for the dlib model files (see dlib_models).
    aligned_box: the "aligned_box" fallback as (left, top, right, bottom) fractions of
        the image; None: :data:`ALIGNED_FACE_BOX` (FFHQ alignment). Images framed
        otherwise (a pre-aligned data set's template) pass their own
        (``pipeline.geometry.Template.face_box``).

    Returns ``(descriptor, detected)``: a float64 array of 128 values (or None) and
    True when the detector found a face (False when a fallback box was used).
    """
    image = _check_image(image)
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {FALLBACKS}; got {fallback!r}")
    if landmarks not in LANDMARK_MODELS:
        raise ValueError(f"landmarks must be one of {tuple(LANDMARK_MODELS)}; got {landmarks!r}")
    box = _detect(image, upsample)
    detected = box is not None
    if box is None:
        if fallback == "none":
            return None, False
        box = _fallback_box(
            image.shape[0], image.shape[1], fallback, aligned_box or ALIGNED_FACE_BOX
        )
    predictor = dlib_models.load_model(LANDMARK_MODELS[landmarks], model_search)
    network = dlib_models.load_model(dlib_models.FACE_RECOGNITION, model_search)
    shape = predictor(image, box)
    descriptor = np.asarray(network.compute_face_descriptor(image, shape), dtype=np.float64)
    return descriptor, detected


def descriptor_distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Euclidean distance of two descriptors; NaN when either is missing."""
    if a is None or b is None:
        return math.nan
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def identity_distance(
    sr: np.ndarray,
    hr: np.ndarray,
    *,
    hr_face: FaceDescriptor | None = None,
    upsample: int | None = None,
    fallback: str = "aligned_box",
    landmarks: int = 5,
    model_search: Sequence[Any] = (),
    aligned_box: Sequence[float] | None = None,
) -> dict[str, float | bool]:
    """Identity distance between an output ``sr`` and its ground truth ``hr`` (uint8 RGB).

    Returns ``{"identity_distance": float, "sr_face_detected": bool,
    "hr_face_detected": bool}``: the Euclidean distance of dlib face descriptors
    (below 0.6: same person by dlib's convention; 0 for identical images; NaN when
    ``fallback="none"`` and a face is missing). ``hr_face`` takes the result of
    :func:`face_descriptor` on ``hr`` computed earlier (one descriptor costs about
    0.2 s on CPU), with the same options; ``hr`` is then not examined. Other options
    as for :func:`face_descriptor`.
    """
    options = {
        "upsample": upsample,
        "fallback": fallback,
        "landmarks": landmarks,
        "model_search": model_search,
        "aligned_box": aligned_box,
    }
    if hr_face is None:
        hr_face = face_descriptor(hr, **options)
    else:
        _check_image(hr, "hr")
    sr_descriptor, sr_detected = face_descriptor(sr, **options)
    return {
        "identity_distance": descriptor_distance(sr_descriptor, hr_face[0]),
        "sr_face_detected": bool(sr_detected),
        "hr_face_detected": bool(hr_face[1]),
    }
