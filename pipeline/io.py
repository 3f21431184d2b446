"""Atomic file output and image I/O shared by every stage.

Every file a stage produces is first written under a temporary name in the
same folder and then renamed into place, so that an interrupted job never
leaves a half-written file under its final name. A folder is written in a
hidden staging folder beside it (``.<name>.<pid>.<hex>.tmp``); the staging
folders a killed job left are removed when the next writer of the same folder
starts (:func:`atomic_dir`).

Images are read as they are displayed: the EXIF orientation a camera wrote is
applied at decoding (:func:`load_rgb`), so every stage sees an upright photo
and every coordinate refers to it. A decoder never reads an image of more than
a given number of pixels (:func:`pixel_limit`): a file whose header claims
20,000 x 20,000 pixels is refused before any memory is spent on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

log = logging.getLogger(__name__)

# Bytes read at a time when hashing a file.
_HASH_CHUNK = 1 << 20


class InputError(ValueError):
    """A problem with an input file; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it into place on success.

    On any exception the temporary file is removed and ``final`` is untouched.
    The temporary name keeps the suffix of ``final`` so that writers that pick
    a format from the extension (Pillow, pandas) still work.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}", dir=final.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600 files; give the final file the permissions a plain
    # open() would (0666 less the umask), so that a published report is readable.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    current = os.umask(0o022)
    os.umask(current)
    return current


def write_bytes(final: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_text(final: str | os.PathLike[str], text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(final: str | os.PathLike[str], obj: Any) -> None:
    write_text(final, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(final: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    with atomic_path(final) as tmp:
        frame.to_parquet(tmp, index=False)


def write_csv(final: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    with atomic_path(final) as tmp:
        frame.to_csv(tmp, index=False)


def save_png(final: str | os.PathLike[str], image: Image.Image | np.ndarray) -> None:
    """Save an image as a deterministic PNG (no timestamps, fixed compression)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    with atomic_path(final) as tmp:
        image.save(tmp, format="PNG", optimize=False, compress_level=6)


# The EXIF tag a camera records how its sensor was held with (1: upright, 2-8: flips and turns).
EXIF_ORIENTATION = 0x0112
# Orientations after which the displayed image is the stored one turned by 90 degrees.
TURNED = (5, 6, 7, 8)


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation an opened image declares (2-8), or 1 when it declares none.

    A missing, unreadable or out-of-range tag counts as 1 (upright): that is
    what :func:`load_rgb` then applies, nothing.
    """
    try:
        value = image.getexif().get(EXIF_ORIENTATION)
    except Exception:  # a broken EXIF block is no orientation; the pixels may still decode
        return 1
    return int(value) if isinstance(value, int) and 2 <= value <= 8 else 1


def displayed_size(image: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of an opened image once its EXIF orientation is applied."""
    width, height = image.size
    return (height, width) if exif_orientation(image) in TURNED else (width, height)


@contextlib.contextmanager
def pixel_limit(max_pixels: int | None) -> Iterator[None]:
    """Within the block, Pillow refuses every image of more than ``max_pixels`` pixels.

    Pillow checks the size a file's header declares before decoding anything
    (``Image.MAX_IMAGE_PIXELS``: a warning above it, ``DecompressionBombError``
    above twice it, at open and at each GIF frame); here it is set so that it
    raises above ``max_pixels`` and never warns. ``None`` keeps Pillow's own
    limits. Pillow's setting is global to the process: for single-threaded
    decoding (every stage decodes in one thread per process).
    """
    if max_pixels is None:
        yield
        return
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels / 2  # Pillow raises above twice this
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def too_many_pixels(exc: Exception, max_pixels: int | None) -> str:
    """The problem of an image Pillow refused as a decompression bomb, with the limit to raise."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found.group(1)):,} pixels" if found else str(exc)
    if max_pixels is None:
        return f"too many pixels ({size}, above Pillow's limit)"
    return (
        f"too many pixels ({size}, above max_image_pixels = {max_pixels:,}; raise it in the "
        "config to use the image)"
    )


def load_rgb(path: str | os.PathLike[str], max_pixels: int | None = None) -> Image.Image:
    """Open an image file as 8-bit RGB, upright, with an error that names the file.

    The EXIF orientation is applied (``ImageOps.exif_transpose``), so the
    image is the one a viewer shows. Grayscale and palette images are
    expanded to RGB; images with alpha are composited on black. An image of
    more than ``max_pixels`` pixels (None: Pillow's own limit) is refused from
    its header, before decoding. Anything Pillow cannot decode raises
    ``InputError``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")
    try:
        with pixel_limit(max_pixels), Image.open(path) as opened:
            opened.load()
            image = opened
            if exif_orientation(image) != 1:
                image = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:
        raise InputError(path, too_many_pixels(exc, max_pixels)) from exc
    except Exception as exc:  # Pillow raises many exception types for bad files
        raise InputError(path, f"cannot decode image ({exc.__class__.__name__}: {exc})") from exc
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray(np.round(array / peak * 255.0).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def load_array(path: str | os.PathLike[str], max_pixels: int | None = None) -> np.ndarray:
    """Load an image as a ``uint8`` array of shape (H, W, 3), RGB (see :func:`load_rgb`)."""
    return np.asarray(load_rgb(path, max_pixels), dtype=np.uint8)


def _sibling(final: Path, kind: str) -> Path:
    """A fresh, unused name beside ``final`` (hidden, marked with ``kind``)."""
    return final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.{kind}")


# Inside a staging folder while its writer owns it; gone once the folder is in place.
_OWNER = ".atomic-dir-owner"


def stale_siblings(final: str | os.PathLike[str]) -> list[Path]:
    """The staging (``.tmp``) and retired (``.old``) folders :func:`atomic_dir` left beside
    ``final``: those of writers that were killed before they could clean up."""
    final = Path(final)
    pattern = re.compile(rf"\.{re.escape(final.name)}\.\d+\.[0-9a-f]{{8}}\.(tmp|old)")
    if not final.parent.is_dir():
        return []
    return sorted(
        path
        for path in final.parent.iterdir()
        if pattern.fullmatch(path.name) and path.is_dir() and not path.is_symlink()
    )


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``final``; swap it into place on success.

    An existing ``final`` is replaced only once the new content is complete; if
    the swap itself fails, the old folder is put back. The folder is created
    with the process umask (not 0700 as ``mkdtemp`` would), so a published
    report stays readable.

    **Leftovers of killed writers.** A writer killed with ``kill -9`` cannot
    clean up, so its staging folder stays (``.<name>.<pid>.<hex>.tmp``, or a
    retired ``.old`` one when killed during the swap). Every writer of
    ``final`` first removes all of them, whatever process or host made them:
    under Snakemake one job at a time writes a given output (its lock refuses
    a second run on the same working folder, and a run starts one job per
    output), so when a job starts, every other staging folder of its output is
    a dead job's. A pid check would miss the leftovers of jobs on other cluster
    nodes and of reused pids. Outside Snakemake two processes might write the
    same folder at once; the one whose staging folder was removed then fails
    (its owner mark is gone) instead of publishing a partial folder.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for leftover in stale_siblings(final):
        log.info("removing %s, left by a writer of %s that was killed", leftover, final)
        shutil.rmtree(leftover, ignore_errors=True)
    staging = _sibling(final, "tmp")
    staging.mkdir()
    owner = staging / _OWNER
    owner.touch()
    try:
        yield staging
        if not owner.is_file():
            raise RuntimeError(
                f"{staging}: this staging folder of {final} was removed while it was being "
                "written (another process wrote the same folder); nothing was published"
            )
        owner.unlink()
        if final.exists():
            retired = _sibling(final, "old")
            os.replace(final, retired)
            try:
                os.replace(staging, final)
            except BaseException:
                os.replace(retired, final)
                raise
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def save_animation(
    frames: Sequence[np.ndarray], path: str | os.PathLike[str], duration_ms: int = 100
) -> None:
    """Write uint8 (H, W, 3) frames as an animated GIF or WebP, atomically.

    The format follows the suffix (``.gif`` or ``.webp``, lossless); loops forever.
    """
    path = Path(path)
    formats = {".gif": "GIF", ".webp": "WEBP"}
    if path.suffix.lower() not in formats:
        raise ValueError(f"{path}: animation must end in .gif or .webp")
    if not frames:
        raise ValueError(f"{path}: no frames to write")
    images = [Image.fromarray(np.asarray(frame, dtype=np.uint8)) for frame in frames]
    options: dict[str, Any] = {"lossless": True} if path.suffix.lower() == ".webp" else {}
    with atomic_path(path) as tmp:
        images[0].save(
            tmp,
            format=formats[path.suffix.lower()],
            save_all=True,
            append_images=images[1:],
            duration=duration_ms,
            loop=0,
            **options,
        )
