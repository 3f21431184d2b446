"""Cataloging a fetched source into a per-image manifest.

The manifest keeps every candidate source image, including the ones that
cannot be used, with a ``status`` (``ok`` or ``error``) and a ``reason``;
nothing is dropped silently. No file can stop a catalog: whatever goes wrong
with one file (unreadable, not an image, truncated, more pixels than
``max_image_pixels``, a decoder crash) becomes its row's ``error`` and a
reason that names the file.

``width`` and ``height`` are those of the image as displayed, its EXIF
orientation (column ``exif_orientation``, 1 for none) applied, as every later
stage reads it (:func:`pipeline.io.load_rgb`).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from pipeline.io import (
    InputError,
    displayed_size,
    exif_orientation,
    pixel_limit,
    sha256_file,
    too_many_pixels,
)
from pipeline.vocabulary import ERROR, MANIFEST_COLUMNS, OK

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".png",
    ".gif",
    ".bmp",
    ".pgm",
    ".ppm",
    ".pbm",
    ".tif",
    ".tiff",
    ".webp",
}
# Files that are documentation or metadata, never images; anything else is
# opened by content, because some sets (Yale) ship images without an extension.
NON_IMAGE_SUFFIXES = {
    ".txt",
    ".md",
    ".csv",
    ".json",
    ".html",
    ".htm",
    ".pdf",
    ".xml",
    ".yaml",
    ".yml",
    ".py",
    ".mat",
    ".info",
}


def is_ignored(relpath: Path) -> bool:
    """Archive litter (macOS resource forks, hidden files) and non-image documents."""
    if any(part == "__MACOSX" or part.startswith(".") for part in relpath.parts):
        return True
    return relpath.suffix.lower() in NON_IMAGE_SUFFIXES


def image_id_for(relpath: Path) -> str:
    """A file-name-safe id: the relative path, image extension dropped, '/' as '__'."""
    parts = list(relpath.parts)
    if relpath.suffix.lower() in IMAGE_SUFFIXES:
        parts[-1] = relpath.stem
    return re.sub(r"[^A-Za-z0-9._+-]", "_", "__".join(parts))


def inspect_image(path: Path, max_pixels: int | None = None) -> dict[str, Any]:
    """Decode an image fully and report its size and mode, or why it cannot be used.

    ``width`` and ``height`` are the displayed size (EXIF orientation applied);
    ``exif_orientation`` is the orientation applied (1: none). An image of
    more than ``max_pixels`` pixels (None: Pillow's own limit) is refused from
    its header, before decoding. Never raises for a bad file: every problem is
    a ``status: error`` with a reason naming the file.
    """
    path = Path(path)
    record: dict[str, Any] = {
        "width": None, "height": None, "mode": None, "format": None, "exif_orientation": None,
    }  # fmt: skip
    try:
        size = path.stat().st_size
    except OSError as exc:
        return {**record, "bytes": None, "status": ERROR, "reason": _unreadable(path, exc)}
    record["bytes"] = size
    if size == 0:
        return {**record, "status": ERROR, "reason": f"empty file ({path.name}: 0 bytes)"}
    try:
        with pixel_limit(max_pixels), Image.open(path) as image:
            width, height = displayed_size(image)
            record.update(
                width=width,
                height=height,
                mode=image.mode,
                format=image.format,
                exif_orientation=exif_orientation(image),
            )
            image.load()
    except Image.DecompressionBombError as exc:
        return {**record, "status": ERROR, "reason": _named(too_many_pixels(exc, max_pixels), path)}
    except UnidentifiedImageError:
        return {**record, "status": ERROR, "reason": f"not a decodable image ({path.name})"}
    except (OSError, SyntaxError, ValueError) as exc:
        reason = f"corrupt or truncated image ({path.name}: {exc})"
        return {**record, "status": ERROR, "reason": reason}
    except Exception as exc:  # any other decoder failure is this file's, not the catalog's
        reason = f"cannot decode image ({path.name}: {exc.__class__.__name__}: {exc})"
        return {**record, "status": ERROR, "reason": reason}
    return {**record, "status": OK, "reason": ""}


def inspect_file(path: Path, max_pixels: int | None = None) -> dict[str, Any]:
    """:func:`inspect_image` and the file's ``sha256`` (None, and an error, when unreadable)."""
    info = inspect_image(path, max_pixels)
    try:
        info["sha256"] = sha256_file(path)
    except OSError as exc:
        info.update(sha256=None, status=ERROR, reason=_unreadable(Path(path), exc))
    return info


def _unreadable(path: Path, exc: OSError) -> str:
    return f"cannot read file ({path.name}: {exc.strerror or exc})"


def _named(reason: str, path: Path) -> str:
    """``reason`` with the file's name first in its parenthesised detail."""
    head, paren, detail = reason.partition(" (")
    return f"{head} ({path.name}: {detail}" if paren else f"{reason} ({path.name})"


def reason_family(reason: str) -> str:
    """A reason without the details in parentheses (file names, decoder messages), for counts."""
    return re.sub(r"\s*\(.*\)", "", reason)


def candidate_files(root: Path) -> tuple[list[Path], int]:
    """Candidate image files under ``root`` (relative, sorted) and the count of ignored files."""
    files, ignored = [], 0
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        relpath = path.relative_to(root)
        if is_ignored(relpath):
            ignored += 1
        else:
            files.append(relpath)
    return files, ignored


def build_manifest(
    root: Path, split: str = "test", limit: int | None = None, max_pixels: int | None = None
) -> pd.DataFrame:
    """Catalog every candidate image under ``root`` into a manifest frame (sorted by id).

    ``max_pixels``: images with more pixels are ``error`` rows (see :func:`inspect_image`).
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: source folder not found")
    files, ignored = candidate_files(root)
    if not files:
        raise InputError(
            root, f"no candidate image files found ({ignored} non-image files ignored)"
        )
    common = _common_top(files)
    rows = []
    for relpath in tqdm(files, desc=f"catalog {root.name}", unit="img", mininterval=5):
        short = Path(*relpath.parts[1:]) if common else relpath
        rows.append(
            {"image_id": image_id_for(short), "path": str(root / relpath), "relpath": str(relpath)}
        )
    frame = pd.DataFrame(rows, columns=["image_id", "path", "relpath"])
    duplicated = frame["image_id"].duplicated(keep=False)
    frame.loc[duplicated, "image_id"] = frame.loc[duplicated, "relpath"].map(
        lambda rel: re.sub(r"[^A-Za-z0-9._+-]", "_", rel.replace("/", "__"))
    )
    frame = frame.sort_values("image_id", kind="stable").reset_index(drop=True)
    if limit is not None:
        frame = frame.iloc[:limit].reset_index(drop=True)
    records = [inspect_file(Path(path), max_pixels) for path in frame["path"]]
    details = pd.DataFrame(records, index=frame.index)
    manifest = pd.concat([frame, details], axis=1)
    manifest["subject"] = None
    manifest["condition"] = None
    manifest["split"] = split
    manifest["categories"] = [[] for _ in range(len(manifest))]
    manifest = manifest.astype(
        {"width": "Int64", "height": "Int64", "bytes": "Int64", "exif_orientation": "Int64"}
    )
    counts = Counter(manifest.loc[manifest["status"] != OK, "reason"].map(reason_family))
    log.info(
        "cataloged %d images under %s: %d ok, %d unusable %s; %d non-image files ignored",
        len(manifest), root, int((manifest["status"] == OK).sum()),
        len(manifest) - int((manifest["status"] == OK).sum()), dict(counts), ignored,
    )  # fmt: skip
    return manifest[MANIFEST_COLUMNS]


def _common_top(files: list[Path]) -> bool:
    """True when every file sits in one top-level folder (e.g. ``yalefaces/``), which adds
    nothing to the ids."""
    tops = {rel.parts[0] for rel in files}
    return len(tops) == 1 and all(len(rel.parts) > 1 for rel in files)
