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
The ground truth's ArcFace embedding (:mod:`pipeline.measure.arcface`) is
stored beside it when that metric is on (:func:`read_arcface_references`),
computed on the CPU in float32.

Which images have a face to compare (:func:`compares_faces`) is decided here
for both: images with a ground truth whose ``alignment`` is not a centre crop.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.devices import limit_cpu_threads
from pipeline.io import InputError, load_array, write_parquet
from pipeline.vocabulary import CENTRE_CROP, FRAMED

__all__ = [
    "compares_faces",
    "read_arcface_references",
    "read_reference_features",
    "reference_features",
]

# Columns of the reference table: the image; with identity on, whether HOG
# found its face and dlib's 128-d descriptor (null with identity.fallback "none"
# and no face); with ArcFace on, its 512-d embedding.
IMAGE_ID = "image_id"
HR_FACE_DETECTED = "hr_face_detected"
HR_DESCRIPTOR = "hr_descriptor"
HR_ARCFACE = "hr_arcface"


def compares_faces(status: str, alignment: Any) -> bool:
    """Whether an image of a faces table is scored in the metrics that need a face:
    it has a ground truth (``status`` framed) and its alignment is not a centre crop
    (catalogue: ``needs_face``)."""
    return status in FRAMED and alignment != CENTRE_CROP


def _alignment(face: Any) -> str | None:
    alignment = getattr(face, "alignment", None)
    return alignment if isinstance(alignment, str) else None


def reference_features(
    faces_path: Path,
    hr_dir: Path,
    out: Path,
    *,
    identity: Mapping[str, Any] | None = None,
    arcface: Mapping[str, Any] | None = None,
    checkpoints: Mapping[str, Any] | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """What the metrics need of a shard's ground truth, one row per image with a face.

    ``faces_path``: the shard's faces table; ``hr_dir``: its ground truth at the
    evaluation size. ``identity``: the config's ``measure.identity`` for the data
    set (the options of :func:`pipeline.measure.identity.face_descriptor`);
    ``arcface``: the config's ``measure.arcface`` (``batch_size``), its checkpoint
    ``checkpoints["arcface"]``. A metric that is None or not ``enabled`` adds no
    columns. Writes ``out`` (``image_id``; ``hr_face_detected`` and
    ``hr_descriptor`` for identity; ``hr_arcface`` for ArcFace). ``threads``:
    torch's CPU threads (the rule's).
    """
    identity = identity if identity and identity.get("enabled", True) else None
    arcface = arcface if arcface and arcface.get("enabled", True) else None
    faces = pd.read_parquet(faces_path)
    ids = [
        face.image_id
        for face in faces.itertuples()
        if compares_faces(face.status, _alignment(face))
    ]
    images = [load_array(Path(hr_dir) / f"{image_id}.png") for image_id in ids]
    columns: dict[str, list[Any]] = {IMAGE_ID: ids}
    if identity is not None:
        from pipeline.measure.identity import face_descriptor

        options = {key: value for key, value in identity.items() if key != "enabled"}
        found = [face_descriptor(image, **options) for image in images]
        columns[HR_FACE_DETECTED] = [bool(detected) for _, detected in found]
        columns[HR_DESCRIPTOR] = [None if d is None else d.tolist() for d, _ in found]
    if arcface is not None:
        from pipeline.measure.arcface import checkpoint_of, embed, load_arcface

        limit_cpu_threads("cpu", threads)
        network = load_arcface(checkpoint_of(checkpoints, "reference_features"), "cpu")
        vectors = embed(network, images, int(arcface["batch_size"]))
        columns[HR_ARCFACE] = [vector.tolist() for vector in vectors]
    frame = pd.DataFrame(columns)
    write_parquet(out, frame)
    return frame


def _read(path: Path, columns: set[str]) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    missing = columns - set(frame.columns)
    if missing:
        raise InputError(
            Path(path), f"is not a reference-features table with {sorted(missing)} (lacks them)"
        )
    return frame


def read_reference_features(path: Path) -> dict[str, tuple[np.ndarray | None, bool]]:
    """A reference table as ``image_id -> (descriptor or None, detected)``, the form
    :func:`pipeline.measure.identity.identity_distance` takes as ``hr_face``."""
    frame = _read(path, {IMAGE_ID, HR_FACE_DETECTED, HR_DESCRIPTOR})
    return {
        image_id: (None if descriptor is None else np.asarray(descriptor, np.float64), bool(found))
        for image_id, found, descriptor in zip(
            frame[IMAGE_ID], frame[HR_FACE_DETECTED], frame[HR_DESCRIPTOR], strict=True
        )
    }


def read_arcface_references(path: Path) -> dict[str, np.ndarray]:
    """A reference table's ArcFace embeddings as ``image_id -> float32 (512,)``."""
    frame = _read(path, {IMAGE_ID, HR_ARCFACE})
    return {
        image_id: np.asarray(vector, np.float32)
        for image_id, vector in zip(frame[IMAGE_ID], frame[HR_ARCFACE], strict=True)
    }
