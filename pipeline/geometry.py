"""Quads: the squares of source images that alignment resamples, and fixed templates of them.

Coordinate convention (everywhere in facebench): points are ``(x, y)`` in
*pixel-index* coordinates of the image they refer to, i.e. the centre of
pixel ``(column i, row j)`` is ``(i, j)`` and the image spans
``[-0.5, width - 0.5]`` horizontally. dlib's boxes and landmarks use the same
convention. Pillow's geometric transforms put pixel centres at ``i + 0.5``,
hence the ``+ 0.5`` before ``Image.transform``.

A *quad* is an oriented square of a source image, (4, 2) float64, corners
ordered top-left, bottom-left, bottom-right, top-right as seen in the aligned
output. Detected faces get one from their landmarks
(:func:`pipeline.prepare.align.ffhq_quad`); pre-aligned data sets declare a
:class:`Template`, a fixed square of their images (the data set kind knows it,
the prepare stage uses it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


def center_square_quad(width: int, height: int) -> np.ndarray:
    """Quad of the largest centred square of a ``width`` x ``height`` image.

    Aligning with it gives exactly the centre crop, resized.
    """
    side = min(width, height)
    left = (width - side) / 2.0 - 0.5
    top = (height - side) / 2.0 - 0.5
    right, bottom = left + side, top + side
    return np.array([[left, top], [left, bottom], [right, bottom], [right, top]], dtype=np.float64)


def check_quad(quad: np.ndarray) -> np.ndarray:
    quad = np.asarray(quad, dtype=np.float64)
    if quad.shape != (4, 2) or not np.all(np.isfinite(quad)):
        raise ValueError(f"quad must be a finite (4, 2) array, got shape {quad.shape}")
    return quad


def quad_side(quad: np.ndarray) -> float:
    return float(max(np.hypot(*(quad[3] - quad[0])), np.hypot(*(quad[1] - quad[0]))))


def map_to_aligned(points: np.ndarray, quad: np.ndarray, size: int) -> np.ndarray:
    """Map source-image points (n, 2) to pixel coordinates of the ``size`` aligned output.

    ``quad`` must be a parallelogram (``ffhq_quad`` and ``center_square_quad`` give
    squares), for which the quad transform is affine.
    """
    quad = check_quad(quad)
    top_left, bottom_left, _, top_right = quad
    if not np.allclose(quad[2], top_right + bottom_left - top_left, atol=1e-6 * quad_side(quad)):
        raise ValueError("map_to_aligned needs a parallelogram quad")
    basis = np.column_stack([top_right - top_left, bottom_left - top_left])
    offsets = np.asarray(points, dtype=np.float64).reshape(-1, 2) - top_left
    fractions = np.linalg.solve(basis, offsets.T).T
    # Pixel centres sit at +0.5 in continuous coordinates; the shift cancels in the
    # differences above but not in the output.
    return fractions * size - 0.5


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
        it finds no face (:func:`pipeline.measure.identity.face_descriptor`). None keeps
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
