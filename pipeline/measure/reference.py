"""What the metrics compute from the ground truth alone, once per image.

Every measure job of a shard compares its outputs with the same ground-truth
images: one job per method, task, kernel, and each seed of a stochastic method
inside it. The identity descriptor of a ground-truth face (dlib's ResNet on a
150 px chip, about 75 ms on one core, over 90 % of a descriptor's cost; HOG
detection takes 1-5 ms and the landmarks under 1 ms) is the same for all of
them, so the rule ``reference_features`` computes it once per (data set,
evaluation size, shard) into a table that every measure job of the shard reads
(:func:`read_reference_features`). The values are exactly those the measure
stage would compute itself (the same function, float64 stored losslessly).

Which images have a face to compare (:func:`compares_faces`) is decided here
for both: images with a ground truth whose ``alignment`` is not a centre crop.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.io import InputError, load_array, write_parquet
from pipeline.vocabulary import CENTRE_CROP, FRAMED

__all__ = ["compares_faces", "read_reference_features", "reference_features"]

# Columns of the reference table: the image, whether HOG found its face, and
# dlib's 128-d descriptor (null with identity.fallback "none" and no face).
IMAGE_ID = "image_id"
HR_FACE_DETECTED = "hr_face_detected"
HR_DESCRIPTOR = "hr_descriptor"


def compares_faces(status: str, alignment: Any) -> bool:
    """Whether an image of a faces table is scored in the metrics that need a face:
    it has a ground truth (``status`` framed) and its alignment is not a centre crop
    (catalogue: ``needs_face``)."""
    return status in FRAMED and alignment != CENTRE_CROP


def _alignment(face: Any) -> str | None:
    alignment = getattr(face, "alignment", None)
    return alignment if isinstance(alignment, str) else None


def reference_features(
    faces_path: Path, hr_dir: Path, out: Path, *, identity: Mapping[str, Any]
) -> pd.DataFrame:
    """The ground truth's identity descriptors of a shard, one row per image with a face.

    ``faces_path``: the shard's faces table; ``hr_dir``: its ground truth at the
    evaluation size; ``identity``: the config's ``measure.identity`` for the data
    set (the options of :func:`pipeline.measure.identity.face_descriptor`;
    ``enabled`` is ignored). Writes ``out`` (columns ``image_id``,
    ``hr_face_detected``, ``hr_descriptor``).
    """
    from pipeline.measure.identity import face_descriptor

    options = {key: value for key, value in identity.items() if key != "enabled"}
    faces = pd.read_parquet(faces_path)
    rows = []
    for face in faces.itertuples():
        if not compares_faces(face.status, _alignment(face)):
            continue
        descriptor, detected = face_descriptor(
            load_array(Path(hr_dir) / f"{face.image_id}.png"), **options
        )
        rows.append(
            {
                IMAGE_ID: face.image_id,
                HR_FACE_DETECTED: bool(detected),
                HR_DESCRIPTOR: None if descriptor is None else descriptor.tolist(),
            }
        )
    frame = pd.DataFrame(rows, columns=[IMAGE_ID, HR_FACE_DETECTED, HR_DESCRIPTOR])
    write_parquet(out, frame)
    return frame


def read_reference_features(path: Path) -> dict[str, tuple[np.ndarray | None, bool]]:
    """A reference table as ``image_id -> (descriptor or None, detected)``, the form
    :func:`pipeline.measure.identity.identity_distance` takes as ``hr_face``."""
    frame = pd.read_parquet(path)
    missing = {IMAGE_ID, HR_FACE_DETECTED, HR_DESCRIPTOR} - set(frame.columns)
    if missing:
        raise InputError(Path(path), f"is not a reference-features table (lacks {sorted(missing)})")
    return {
        image_id: (None if descriptor is None else np.asarray(descriptor, np.float64), bool(found))
        for image_id, found, descriptor in zip(
            frame[IMAGE_ID], frame[HR_FACE_DETECTED], frame[HR_DESCRIPTOR], strict=True
        )
    }
