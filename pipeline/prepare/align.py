"""FFHQ-style face alignment: the quad of a face's landmarks, the warp, and the alignment stage.

Coordinates follow :mod:`pipeline.geometry`. The alignment follows the recipe
of the FFHQ dataset script (also used by PULSE): an oriented square ("quad")
is derived from the eye and mouth landmarks, and the image content inside that
square is resampled to the output size.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage
from tqdm import tqdm

from pipeline.geometry import check_quad, quad_side
from pipeline.io import atomic_dir, load_rgb, save_png
from pipeline.vocabulary import FRAMED

# |eye-to-mouth| / |eye-to-eye| of a typical face: median over the 136 photos of
# shared/data (celeba_hq + ffhq) with dlib's 68-point landmarks (inter-quartile range
# 0.95-1.11). Only moves the template's eye height (by 0.4 px at 128 px over that range).
TYPICAL_MOUTH_RATIO = 1.03


# --------------------------------------------------------------------------- landmarks


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


# --------------------------------------------------------------------------- alignment


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
    quad = check_quad(quad).copy()
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if transform_size is None:
        transform_size = max(size, min(4 * size, 4096))
    if transform_size < size:
        raise ValueError(f"transform_size ({transform_size}) must be >= size ({size})")
    image = image.convert("RGB")
    qsize = quad_side(quad)

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


# --------------------------------------------------------------------------- the stage


def _align_one(task: tuple[str, list[float], int, Path, int | None]) -> None:
    path, quad, size, target, max_pixels = task
    quad_array = np.asarray(quad, dtype=np.float64).reshape(4, 2)
    save_png(target, align_face(load_rgb(path, max_pixels), quad_array, size))


def align(
    faces_path: Path,
    size: int | str,
    out_dir: Path,
    threads: int = 1,
    max_pixels: int | None = None,
) -> int:
    """Warp each image of a shard with its alignment quad to ``size`` x ``size`` PNGs.

    With ``threads`` > 1 the images are aligned by that many processes; each
    output depends only on its own image, so the files are the same either way.
    ``max_pixels`` (the config's ``max_image_pixels``, which the catalog
    applied) lets the images the catalog accepted be decoded.
    """
    size = int(size)
    faces = pd.read_parquet(faces_path)
    todo = faces[faces["status"].isin(FRAMED)]
    progress = {"desc": f"align {size}", "unit": "img", "total": len(todo), "mininterval": 10}
    with atomic_dir(out_dir) as staging:
        tasks = [
            (row.path, row.quad, size, staging / f"{row.image_id}.png", max_pixels)
            for row in todo.itertuples()
        ]
        if threads > 1 and len(tasks) > 1:
            with ProcessPoolExecutor(max_workers=threads) as pool:
                list(tqdm(pool.map(_align_one, tasks, chunksize=4), **progress))
        else:
            for task in tqdm(tasks, **progress):
                _align_one(task)
    return len(todo)
