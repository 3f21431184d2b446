"""Find and load dlib's model files (face detector, landmark predictors).

The model files ship in the ``face-recognition-models`` package, but importing
that package needs ``pkg_resources`` (gone from recent setuptools), so its
folder is located with ``importlib.util.find_spec`` instead: for a top-level
package ``find_spec`` only reads the import system's metadata and does not run
the package's ``__init__.py``.

Search order for a model file:

1. the folders or files given in ``search`` (e.g. a path set in the config);
   a folder matches when it holds a file with the model's name, a file
   matches when its own name is the model's name;
2. ``face_recognition_models/models/`` of the installed package;
3. ``/usr/share/dlib/`` (Debian/Ubuntu package ``libdlib-data``).

Loaded dlib objects are cached per resolved file path, because loading the
68-point predictor takes about a second.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
CNN_DETECTOR = "mmod_human_face_detector.dat"
FACE_RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"
MODEL_NAMES = (SHAPE_68, CNN_DETECTOR, FACE_RECOGNITION, SHAPE_5)

PACKAGE_NAME = "face_recognition_models"
DEBIAN_MODELS_DIR = Path("/usr/share/dlib")

SearchPath = str | os.PathLike[str]


def _package_models_dir() -> Path | None:
    """The ``models/`` folder of the installed face_recognition_models, without importing it."""
    try:
        spec = importlib.util.find_spec(PACKAGE_NAME)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def search_locations(name: str, search: Sequence[SearchPath] = ()) -> list[Path]:
    """Candidate file paths for model ``name``, in search order (existing or not)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown dlib model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    candidates: list[Path] = []
    for entry in search:
        entry = Path(entry).expanduser()
        # A configured file is only accepted under the model's own name, so that one
        # configured path cannot silently stand in for a different model.
        is_file = entry.is_file() or entry.suffix == ".dat"
        candidates.append(entry if is_file else entry / name)
    package_dir = _package_models_dir()
    if package_dir is not None:
        candidates.append(package_dir / name)
    candidates.append(DEBIAN_MODELS_DIR / name)
    return candidates


def model_path(name: str, search: Sequence[SearchPath] = ()) -> Path:
    """Path of dlib model file ``name`` (see the module docstring for the search order).

    Raises ``FileNotFoundError`` listing every place searched when no copy exists.
    """
    candidates = search_locations(name, search)
    for candidate in candidates:
        if candidate.name == name and candidate.is_file():
            return candidate
    package_note = (
        "" if _package_models_dir() is not None else f" (package {PACKAGE_NAME} is not installed)"
    )
    searched = "\n".join(f"  - {c}{_why_not(c, name)}" for c in candidates)
    raise FileNotFoundError(
        f"dlib model file {name} not found{package_note}. Searched:\n{searched}\n"
        "Fix: install it with `pip install face-recognition-models` (or the Debian package "
        "libdlib-data), or set the folder holding the .dat file in the workflow config."
    )


def _why_not(candidate: Path, name: str) -> str:
    if candidate.name != name and candidate.is_file():
        return f" (exists, but a configured file must be named {name})"
    return " (missing)"


@functools.cache
def _load(name: str, path: Path) -> Any:
    import dlib  # deferred: importing dlib is slow and not every caller needs it

    loaders = {
        SHAPE_68: dlib.shape_predictor,
        SHAPE_5: dlib.shape_predictor,
        CNN_DETECTOR: dlib.cnn_face_detection_model_v1,
        FACE_RECOGNITION: dlib.face_recognition_model_v1,
    }
    try:
        return loaders[name](str(path))
    except RuntimeError as exc:
        raise RuntimeError(f"{path}: dlib cannot load model file {name} ({exc})") from exc


def load_model(name: str, search: Sequence[SearchPath] = ()) -> Any:
    """The dlib object for model ``name``, loaded once per resolved file path.

    ``shape_predictor_*`` give ``dlib.shape_predictor``, ``mmod_human_face_detector.dat``
    gives ``dlib.cnn_face_detection_model_v1``, the resnet gives
    ``dlib.face_recognition_model_v1``.
    """
    return _load(name, model_path(name, search).resolve())


@functools.lru_cache(maxsize=1)
def hog_detector() -> Any:
    """dlib's frontal-face HOG detector (built in, no model file), created once."""
    import dlib

    return dlib.get_frontal_face_detector()
