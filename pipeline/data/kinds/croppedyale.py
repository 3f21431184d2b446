"""Kind ``croppedyale``: the Extended Yale Face Database B, cropped faces.

Layout: a folder (usually ``CroppedYale/``) with one subfolder per subject,
``yaleBNN/yaleBNN_P00A+XXXE+YY.pgm`` (38 subjects, yaleB01..yaleB39 without
yaleB14; 168x192 grayscale), at the source root or up to two levels down, or the
root itself; face files directly in the folder work too. ``A`` is the azimuth
and ``E`` the elevation of the single light source, in degrees.

Candidates are the image files (and ``*.bad`` files) under that folder:

- ``yaleBNN_P00A+XXXE+YY.pgm``: the faces (2,414 in the upstream set);
- ``yaleBNN_P00_Ambient.pgm``: ambient-light frames, status ``skipped``
  (not part of the single-light-source set; 28 of 38 are uncropped 640x480);
- ``*.bad``: files upstream marked corrupt, status ``skipped`` (their subject
  and angles are still filled in from the name);
- any other image file: ``skipped`` (name not in the set's pattern).

``yaleBNN_P00.info``, ``WS_FTP.LOG``, ``DEADJOE`` and archive litter get no row
(logged as non-candidates).

Ids are the file names without ``.pgm`` (``yaleB01_P00A+000E+00``); ``.bad`` files
keep their whole name. ``subject`` is ``yaleBNN``; ``condition`` the pose and
light token (``P00A+000E+00``, ``P00_Ambient``). Columns beyond
``MANIFEST_COLUMNS``: ``pose`` (int), ``azimuth`` and ``elevation`` (nullable int,
degrees) and ``duplicate_of``.

Categories: ``subject:yaleBNN``, and for the faces three lighting groups:

- ``lighting:<direction>``: ``frontal`` when |azimuth| <= 20 and |elevation| <= 20;
  otherwise the larger angle decides: ``left``/``right`` by the azimuth's sign,
  ``above``/``below`` by the elevation's. Left and right are as seen in the
  image: a positive azimuth lights the image's left half (the subject's right),
  which matches the Yale A ``leftlight`` images (checked on the data);
- ``azimuth:<band>`` by |azimuth|: ``0-20``, ``21-60``, ``61-90``, ``91-180``;
- ``elevation:<band>``: ``below`` (< -20), ``level`` (-20..20), ``above`` (> 20).

Options: ``split`` (every image gets it; default ``test``) and ``limit`` (first N
rows by id, any status; applied before the files are decoded).

Alignment: the faces are cropped and aligned by the set's authors already
(brows to just above the chin, the face filling the 168 px width), and many are
lit from steep angles, where dlib finds no face (HOG: 12 of a seeded 40), so the
kind is ``prealigned`` by default (``datasets.<name>.alignment``) with
:data:`TEMPLATE`: the largest square that fits, the full 168 px width, so that
no pixel is invented by padding and none of the face's width is cut, placed
vertically so that its centre is the midpoint between the eyes and the mouth,
as the set's images have them. The numbers are medians over the frontal-lit
images (category ``lighting:frontal``) in which dlib's HOG (upsample 1) finds a
face, measured by ``benchmarks/croppedyale_alignment.py``. The FFHQ square of
these faces would be more than twice the image's side (the eyes are 95 px apart
in a 168 px wide image), so FFHQ alignment mostly shows mirrored padding.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.data.kinds.images import IMAGE_SUFFIXES
from pipeline.data.kinds.photos import (
    LITTER,
    check_limit,
    check_split,
    files_under,
    find_layout,
    finish,
    inspect_rows,
    is_litter,
    mark_duplicates,
    safe_id,
    unique_ids,
)
from pipeline.geometry import Template
from pipeline.vocabulary import SKIPPED

# Measured by benchmarks/croppedyale_alignment.py (see the module docstring): eye
# centres (34.8, 49.7) and (130.6, 49.3), mouth centre y 149.5, so the eye-mouth
# midpoint lies at y 99.5 and a 168 px square centred there starts at row 16 (medians
# over the 406 of 643 frontal-lit images where HOG finds a face). On 128 px crops of
# that square HOG boxes the face at the face_box fractions (median over the 45 of a
# seeded 300 where it finds one): the face fills the crop, unlike an FFHQ alignment.
TEMPLATE = Template(
    name="croppedyale",
    source_size=(168, 192),
    left=0,
    top=16,
    side=168,
    eyes=((34.8, 49.7), (130.6, 49.3)),
    face_box=(-0.148, -0.148, 0.977, 0.984),
)

FACE = re.compile(r"yaleB(\d{2})_P(\d{2})A([+-]\d{3})E([+-]\d{2})\.pgm", re.IGNORECASE)
AMBIENT = re.compile(r"yaleB(\d{2})_P(\d{2})_Ambient\.pgm", re.IGNORECASE)
SUBJECT_FOLDER = re.compile(r"yaleB\d{2}", re.IGNORECASE)
EXPECTED = (
    "a folder of Extended Yale B subject folders yaleBNN/ holding "
    "yaleBNN_P00A+XXXE+YY.pgm images (e.g. CroppedYale/yaleB01/yaleB01_P00A+000E+00.pgm)"
)
COLUMNS = ["pose", "azimuth", "elevation", "duplicate_of"]
FRONTAL = 20
AZIMUTH_BANDS = ((20, "0-20"), (60, "21-60"), (90, "61-90"), (180, "91-180"))
SKIP_AMBIENT = "ambient-light frame, not a single-light-source image"
SKIP_BAD = "marked corrupt upstream (.bad file)"
SKIP_NAME = "name is not yaleBNN_PNNA+XXXE+YY.pgm"


def parse_name(name: str) -> dict[str, Any] | None:
    """Subject, pose and light angles of a face file name, or None when it is not one."""
    match = FACE.fullmatch(name)
    if match is None:
        return None
    return {
        "subject": f"yaleB{match[1]}",
        "pose": int(match[2]),
        "azimuth": int(match[3]),
        "elevation": int(match[4]),
        "condition": f"P{match[2]}A{match[3]}E{match[4]}",
    }


def lighting_categories(azimuth: int, elevation: int) -> list[str]:
    """The three lighting groups of a light direction (see the module docstring)."""
    if abs(azimuth) <= FRONTAL and abs(elevation) <= FRONTAL:
        direction = "frontal"
    elif abs(azimuth) >= abs(elevation):
        direction = "left" if azimuth > 0 else "right"
    else:
        direction = "above" if elevation > 0 else "below"
    band = next(label for limit, label in AZIMUTH_BANDS if abs(azimuth) <= limit)
    if elevation < -FRONTAL:
        level = "below"
    elif elevation > FRONTAL:
        level = "above"
    else:
        level = "level"
    return [f"lighting:{direction}", f"azimuth:{band}", f"elevation:{level}"]


def _has_faces(folder: Path) -> bool:
    for child in folder.iterdir():
        if child.is_file() and FACE.fullmatch(child.name):
            return True
        if (
            child.is_dir()
            and SUBJECT_FOLDER.fullmatch(child.name)
            and any(FACE.fullmatch(path.name) for path in child.iterdir())
        ):
            return True
    return False


def catalog(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Catalog an Extended Yale B (cropped) folder into a manifest (see the module docstring)."""
    limit, split = check_limit(options), check_split(options)
    root = Path(root)
    folder = find_layout(root, _has_faces, EXPECTED)
    rows, not_candidates = _candidates(root, folder)
    frame = pd.DataFrame.from_records(rows)
    frame["image_id"] = unique_ids(frame["image_id"], frame["relpath"])
    frame = frame.sort_values("image_id", kind="stable").reset_index(drop=True)
    if limit is not None:
        frame = frame.iloc[:limit].copy()
    frame = inspect_rows(
        frame, desc=f"catalog croppedyale {folder.name}", max_pixels=options.get("max_pixels")
    )
    mark_duplicates(frame)
    frame["split"] = split
    frame = frame.astype({"pose": "Int64", "azimuth": "Int64", "elevation": "Int64"})
    return finish(frame, "croppedyale", root, COLUMNS, not_candidates)


def _candidates(root: Path, folder: Path) -> tuple[list[dict[str, Any]], Counter[str]]:
    rows: list[dict[str, Any]] = []
    not_candidates: Counter[str] = Counter()
    for path in files_under(folder):
        relative = path.relative_to(folder)
        if is_litter(relative):
            not_candidates[LITTER] += 1
            continue
        suffix = path.suffix.lower()
        if suffix not in IMAGE_SUFFIXES and suffix != ".bad":
            not_candidates[f"not an image ({suffix or path.name})"] += 1
            continue
        row: dict[str, Any] = {
            "path": str(path),
            "relpath": str(path.relative_to(root)),
            "status": None,
            "reason": None,
            "subject": None,
            "condition": None,
            "pose": None,
            "azimuth": None,
            "elevation": None,
            "categories": [],
        }
        face = parse_name(path.name)
        ambient = AMBIENT.fullmatch(path.name)
        if face is not None:
            row.update(face, image_id=safe_id(path.stem))
            row["categories"] = [
                f"subject:{face['subject']}",
                *lighting_categories(face["azimuth"], face["elevation"]),
            ]
        elif ambient is not None:
            row.update(
                image_id=safe_id(path.stem),
                subject=f"yaleB{ambient[1]}",
                pose=int(ambient[2]),
                condition=f"P{ambient[2]}_Ambient",
                status=SKIPPED,
                reason=SKIP_AMBIENT,
            )
            row["categories"] = [f"subject:{row['subject']}"]
        else:
            reason = SKIP_BAD if suffix == ".bad" else SKIP_NAME
            # A .bad file still says which image it was meant to be.
            meant = parse_name(path.stem) if suffix == ".bad" else None
            row.update(meant or {}, image_id=safe_id(path.name), status=SKIPPED, reason=reason)
        rows.append(row)
    return rows, not_candidates
