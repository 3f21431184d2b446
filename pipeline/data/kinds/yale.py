"""Kind ``yale``: the Yale Face Database ("Yale A"), 15 subjects x 11 conditions.

Layout: a folder (usually ``yalefaces/``) of files named ``subjectNN.<condition>``,
at the source root, or one or two levels down (an unpacked archive), or the root
itself. The upstream images are GIFs without an extension; they are opened by
content. Conditions: centerlight, glasses, happy, leftlight, noglasses, normal,
rightlight, sad, sleepy, surprised, wink.

Upstream quirks handled (see ``shared/mirror/README.md``):

- ``subjectNN.gif`` is that subject's ``centerlight`` image when no
  ``subjectNN.centerlight`` exists (upstream ships ``subject01.gif``);
- ``subjectNN.<condition>.<ext>`` (``subject01.glasses.gif``) stands for the same
  image as ``subjectNN.<condition>``: the extension-less file is used; a
  byte-identical copy gets status ``duplicate``, a different file ``skipped``;
  used alone (no extension-less file), it *is* the image of that condition;
- ``Readme.txt`` and other documents, ``__MACOSX/`` and ``._*`` get no row (logged).

Byte-identical images of *different* conditions (``subject04.sad`` is a copy of
``subject04.normal``; several noglasses/normal pairs) stay ``ok``, because the
data set defines them as separate images (165 in all); ``duplicate_of`` names the
first of each such group, so an analysis can count distinct images
(``duplicate_of.isna()``).

Ids: ``subjectNN.<condition>`` for the image of a condition, whatever its file
name (``subject01.gif`` becomes ``subject01.centerlight``); other files keep
their file name (``subject01.glasses.gif``).

Columns beyond ``MANIFEST_COLUMNS``: ``expression`` (str or null), ``lighting``
(``center``/``left``/``right`` or null), ``glasses`` (nullable bool: true for
``glasses``, false for ``noglasses``, null otherwise) and ``duplicate_of``.
``subject`` is the two-digit number (``"01"``), ``condition`` the condition name.
Categories: ``subject:NN``, ``expression:<name>``, ``glasses:yes|no``,
``lighting:<center|left|right>``. Left and right are as seen in the image:
``leftlight`` lights the image's left half (checked on the data).

Options: ``split`` (every image gets it; default ``test``; no per-subject split,
since the benchmark only evaluates) and ``limit`` (first N rows by id, any status).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.data.kinds.images import is_ignored
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
)
from pipeline.vocabulary import DUPLICATE, OK, SKIPPED

log = logging.getLogger(__name__)

CONDITIONS = (
    "centerlight", "glasses", "happy", "leftlight", "noglasses", "normal",
    "rightlight", "sad", "sleepy", "surprised", "wink",
)  # fmt: skip
EXPRESSIONS = {"happy", "sad", "sleepy", "surprised", "wink", "normal"}
LIGHTING = {"centerlight": "center", "leftlight": "left", "rightlight": "right"}
GLASSES = {"glasses": True, "noglasses": False}
# Extensions an alias name may carry (subject01.glasses.gif, or a PNG conversion).
ALIAS_EXTENSIONS = {"gif", "png", "pgm", "bmp", "jpg", "jpeg", "tif", "tiff"}
NAME = re.compile(r"subject(\d{2})((?:\.[A-Za-z0-9]+)*)", re.IGNORECASE)
EXPECTED = (
    "a folder of Yale face images named subjectNN.<condition> (e.g. yalefaces/subject01.happy)"
)
COLUMNS = ["expression", "lighting", "glasses", "duplicate_of"]


def parse_name(name: str) -> tuple[str, str, bool] | None:
    """``(subject, condition, canonical)`` for a Yale file name, or None when it is not one.

    ``canonical`` is true for ``subjectNN.<condition>``, false for the alias forms
    ``subjectNN.<condition>.<ext>`` and ``subjectNN.<ext>`` (centerlight).
    """
    match = NAME.fullmatch(name)
    if match is None:
        return None
    subject = match[1]
    tokens = [token.lower() for token in match[2].split(".")[1:]]
    if len(tokens) == 1 and tokens[0] in CONDITIONS:
        return subject, tokens[0], True
    if len(tokens) == 2 and tokens[0] in CONDITIONS and tokens[1] in ALIAS_EXTENSIONS:
        return subject, tokens[0], False
    if len(tokens) == 1 and tokens[0] in ALIAS_EXTENSIONS:
        return subject, "centerlight", False
    return None


def categories_for(subject: str, condition: str) -> list[str]:
    categories = [f"subject:{subject}"]
    if condition in EXPRESSIONS:
        categories.append(f"expression:{condition}")
    if condition in GLASSES:
        categories.append(f"glasses:{'yes' if GLASSES[condition] else 'no'}")
    if condition in LIGHTING:
        categories.append(f"lighting:{LIGHTING[condition]}")
    return categories


def _has_yale_images(folder: Path) -> bool:
    return any(path.is_file() and parse_name(path.name) is not None for path in folder.iterdir())


def catalog(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Catalog a Yale Face Database folder into a manifest (see the module docstring)."""
    limit, split = check_limit(options), check_split(options)
    root = Path(root)
    folder = find_layout(root, _has_yale_images, EXPECTED)
    rows, not_candidates = _candidates(root, folder)
    frame = pd.DataFrame.from_records(rows)
    frame = inspect_rows(
        frame, desc=f"catalog yale {folder.name}", max_pixels=options.get("max_pixels")
    )
    _resolve_aliases(frame)
    mark_duplicates(frame)
    frame["split"] = split
    frame = frame.sort_values("image_id", kind="stable").reset_index(drop=True)
    _report_missing(frame)
    if limit is not None:
        frame = frame.iloc[:limit]
    return finish(frame, "yale", root, COLUMNS, not_candidates)


def _candidates(root: Path, folder: Path) -> tuple[list[dict[str, Any]], Counter[str]]:
    rows: list[dict[str, Any]] = []
    not_candidates: Counter[str] = Counter()
    inside = set(files_under(folder))
    not_candidates[f"outside {folder.relative_to(root) or '.'}/"] += sum(
        1
        for path in files_under(root)
        if path not in inside and not is_litter(path.relative_to(root))
    )
    for path in sorted(inside):
        relative = path.relative_to(folder)
        if is_litter(relative):
            not_candidates[LITTER] += 1
            continue
        if is_ignored(relative):
            not_candidates["document or metadata file"] += 1
            continue
        row: dict[str, Any] = {
            "image_id": safe_id(str(relative)),
            "path": str(path),
            "relpath": str(path.relative_to(root)),
            "status": None,
            "reason": None,
            "subject": None,
            "condition": None,
            "canonical": False,
        }
        parsed = parse_name(path.name) if len(relative.parts) == 1 else None
        if len(relative.parts) > 1:
            row.update(status=SKIPPED, reason=f"in a subfolder of {folder.name}/")
        elif parsed is None:
            row.update(status=SKIPPED, reason="name is not subjectNN.<condition>")
        else:
            row.update(subject=parsed[0], condition=parsed[1], canonical=parsed[2])
        rows.append(row)
    not_candidates = Counter({k: v for k, v in not_candidates.items() if v})
    return rows, not_candidates


def _resolve_aliases(frame: pd.DataFrame) -> None:
    """Pick the one file of each (subject, condition) and mark the others, in place."""
    frame["duplicate_of"] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    labelled = frame[frame["subject"].notna()]
    for (subject, condition), group in labelled.groupby(["subject", "condition"], sort=True):
        # The extension-less name first, then the alias names in name order.
        order = group.assign(alias=~group["canonical"].astype(bool)).sort_values(
            ["alias", "relpath"], kind="stable"
        )
        primary = order.index[0]
        image_id = f"subject{subject}.{condition}"
        frame.at[primary, "image_id"] = image_id
        for index in order.index[1:]:
            if frame.at[index, "status"] != OK:
                continue
            if frame.at[primary, "status"] == OK and (
                frame.at[index, "sha256"] == frame.at[primary, "sha256"]
            ):
                frame.at[index, "status"] = DUPLICATE
                frame.at[index, "reason"] = (
                    f"byte-identical copy ({Path(frame.at[primary, 'relpath']).name})"
                )
                frame.at[index, "duplicate_of"] = image_id
            else:
                frame.at[index, "status"] = SKIPPED
                frame.at[index, "reason"] = (
                    "a second, different file for the same subject and condition "
                    f"({Path(frame.at[primary, 'relpath']).name} is used)"
                )
    subjects, conditions = frame["subject"], frame["condition"]
    frame["categories"] = [
        categories_for(s, c) if isinstance(s, str) else []
        for s, c in zip(subjects, conditions, strict=True)
    ]
    frame["expression"] = [c if c in EXPRESSIONS else None for c in conditions]
    frame["lighting"] = [LIGHTING.get(c) for c in conditions]
    frame["glasses"] = pd.array([GLASSES.get(c) for c in conditions], dtype="boolean")


def _report_missing(frame: pd.DataFrame) -> None:
    usable = frame[frame["status"] == OK]
    subjects = sorted(usable["subject"].dropna().unique())
    present = set(zip(usable["subject"], usable["condition"], strict=True))
    missing = [f"subject{s}.{c}" for s in subjects for c in CONDITIONS if (s, c) not in present]
    if missing:
        log.warning("yale: %d expected images missing or unusable: %s", len(missing), missing)
    log.info("yale: %d usable images of %d subjects", len(usable), len(subjects))
