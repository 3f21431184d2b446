"""Atomic file output and image I/O shared by every stage.

Every file a stage produces is first written under a temporary name in the
same folder and then renamed into place, so that an interrupted job never
leaves a half-written file under its final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

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


def load_rgb(path: str | os.PathLike[str]) -> Image.Image:
    """Open an image file as 8-bit RGB, with an error that names the file.

    Grayscale and palette images are expanded to RGB; images with alpha are
    composited on black. Anything Pillow cannot decode raises ``InputError``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")
    try:
        with Image.open(path) as opened:
            opened.load()
            image = opened
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


def load_array(path: str | os.PathLike[str]) -> np.ndarray:
    """Load an image as a ``uint8`` array of shape (H, W, 3), RGB."""
    return np.asarray(load_rgb(path), dtype=np.uint8)


def _sibling(final: Path, kind: str) -> Path:
    """A fresh, unused name beside ``final`` (hidden, marked with ``kind``)."""
    return final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.{kind}")


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``final``; swap it into place on success.

    An existing ``final`` is replaced only once the new content is complete; if
    the swap itself fails, the old folder is put back. The folder is created
    with the process umask (not 0700 as ``mkdtemp`` would), so a published
    report stays readable.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(final, "tmp")
    staging.mkdir()
    try:
        yield staging
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
