"""The report's images: thumbnails and full-size copies, written once per source image.

Thumbnails are WebP (lossy, fixed quality; the nearest-neighbour LR
enlargements lossless so their pixel blocks stay exact), each a link to the
full-size image: the source file itself (hard link, else a copy) when browsers
show its format, otherwise a PNG. Asset names derive from the recorded path and
the transform, so rendering the same inputs twice gives identical files.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from pipeline.io import InputError, load_rgb, save_png
from pipeline.report.model import Tile
from pipeline.report.text import has_path, short_digest, slug

THUMB_MAX = 256
"""Longest side of a thumbnail, in pixels."""
WEBP_QUALITY = 90
"""Lossy WebP quality of thumbnails: high, since the report compares image quality."""

# Formats every current browser displays; other sources are converted to PNG.
WEB_SAFE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif"}


def square(size: Any) -> tuple[int, int] | None:
    try:
        n = int(size)
    except (TypeError, ValueError):
        return None
    return (n, n) if n > 0 else None


def fit(size: tuple[int, int], limit: int) -> tuple[int, int]:
    """Shrink ``size`` to fit in ``limit`` x ``limit``, keeping the aspect ratio."""
    w, h = size
    scale = min(1.0, limit / max(w, h))
    return (max(1, round(w * scale)), max(1, round(h * scale)))


@dataclass(frozen=True)
class Asset:
    """Files written for one source image; ``problem`` says why there are none."""

    thumb: str | None = None
    full: str | None = None
    width: int = 0
    height: int = 0
    full_width: int = 0
    full_height: int = 0
    source_size: tuple[int, int] | None = None
    problem: str | None = None

    def tile(self, alt: str) -> Tile:
        """A fresh tile: each use gets its own alt text and captions; the files are shared."""
        return Tile(
            alt=alt,
            thumb=self.thumb,
            full=self.full,
            width=self.width,
            height=self.height,
            problem=self.problem,
        )


class AssetWriter:
    """Writes thumbnails and full-size images into ``<report>/assets``, once per source."""

    def __init__(self, folder: Path, root: Path) -> None:
        self.folder = folder
        self.root = root
        self._done: dict[tuple[Any, ...], Asset] = {}
        self._copies: dict[str, str | None] = {}

    def image(self, path_value: Any, dataset: str, stem: str) -> Asset:
        """Thumbnail + full-size copy of an image as it is (SR output, HR, source)."""
        return self._cached(path_value, None, None, dataset, stem)

    def enlarged(
        self,
        path_value: Any,
        dataset: str,
        stem: str,
        target: tuple[int, int] | None,
        thumb_size: tuple[int, int] | None,
    ) -> Asset:
        """The LR image enlarged with nearest neighbour: full size to ``target``, thumbnail
        to ``thumb_size``, both straight from the LR pixels so the blocks stay crisp."""
        return self._cached(path_value, target, thumb_size, dataset, stem)

    def copy(self, path_value: Any, dataset: str, stem: str) -> str | None:
        """A full-size copy without a thumbnail (extra seeds, animations); None if unreadable."""
        if not has_path(path_value):
            return None
        source = str(path_value)
        if source not in self._copies:
            resolved = self._resolve(Path(source))
            if resolved.is_file() and resolved.suffix.lower() in WEB_SAFE_SUFFIXES:
                rel = self._full_name(dataset, stem, source, None, resolved.suffix)
                link_or_copy(resolved, self.folder / rel)
                self._copies[source] = rel
            else:
                self._copies[source] = self._cached(path_value, None, None, dataset, stem).full
        return self._copies[source]

    def _resolve(self, source: Path) -> Path:
        return source if source.is_absolute() else self.root / source

    def _cached(
        self,
        path_value: Any,
        target: tuple[int, int] | None,
        thumb_size: tuple[int, int] | None,
        dataset: str,
        stem: str,
    ) -> Asset:
        if not has_path(path_value):
            return Asset(problem="no image path recorded")
        key = (str(path_value), target, thumb_size)
        cached = self._done.get(key)
        if cached is None:
            cached = self._write(Path(str(path_value)), target, thumb_size, dataset, stem)
            self._done[key] = cached
        return cached

    def _full_name(self, dataset: str, stem: str, source: str, target: Any, suffix: str) -> str:
        suffix = ".jpg" if suffix.lower() == ".jpeg" else suffix.lower()
        return f"assets/full/{slug(dataset)}/{slug(stem)}-{short_digest(source, target)}{suffix}"

    def _write(
        self,
        source: Path,
        target: tuple[int, int] | None,
        thumb_size: tuple[int, int] | None,
        dataset: str,
        stem: str,
    ) -> Asset:
        resolved = self._resolve(source)
        try:
            image = load_rgb(resolved)
        except InputError as exc:
            # Name the file as the table records it; the resolved path is machine-specific.
            return Asset(problem=f"{source}: {exc.problem}")
        except OSError as exc:  # e.g. permission denied, I/O error
            return Asset(problem=f"{source}: {exc.strerror or exc}")

        enlarge = target is not None and target != image.size
        name = f"{slug(stem)}-{short_digest(str(source), target, thumb_size)}"
        thumb_rel = f"assets/thumbs/{slug(dataset)}/{name}.webp"
        if enlarge:
            assert target is not None
            full_image = image.resize(target, Image.Resampling.NEAREST)
            full_rel = self._full_name(dataset, stem, str(source), target, ".png")
            save_png(self.folder / full_rel, full_image)
            thumb_size = thumb_size or fit(target, THUMB_MAX)
            # Nearest only where the thumbnail enlarges; a reduction would just drop pixels.
            shrink = thumb_size[0] < image.width or thumb_size[1] < image.height
            filter_ = Image.Resampling.LANCZOS if shrink else Image.Resampling.NEAREST
            thumb = image.resize(thumb_size, filter_)
            save_webp(self.folder / thumb_rel, thumb, lossless=True)
            full_size = target
        else:
            suffix = resolved.suffix.lower()
            if suffix in WEB_SAFE_SUFFIXES - {".gif"}:
                full_rel = self._full_name(dataset, stem, str(source), None, suffix)
                link_or_copy(resolved, self.folder / full_rel)
            else:
                full_rel = self._full_name(dataset, stem, str(source), None, ".png")
                save_png(self.folder / full_rel, image)
            thumb = image.copy()
            thumb.thumbnail((THUMB_MAX, THUMB_MAX), Image.Resampling.LANCZOS)
            save_webp(self.folder / thumb_rel, thumb, lossless=False)
            full_size = image.size
        return Asset(
            thumb=thumb_rel,
            full=full_rel,
            width=thumb.width,
            height=thumb.height,
            full_width=full_size[0],
            full_height=full_size[1],
            source_size=image.size,
        )


_SVG_LENGTH = re.compile(r'\b(width|height)="([0-9.]+)(px|pt)?"')
_PX_PER_UNIT = {"px": 1.0, "pt": 4.0 / 3.0, None: 1.0}


def svg_size(path: Path) -> tuple[int, int] | None:
    """Width and height of an SVG's root element in CSS pixels (1 pt = 4/3 px), if given."""
    head = path.read_bytes()[:4096].decode("utf-8", "replace")
    root = re.search(r"<svg\b[^>]*>", head)
    if root is None:
        return None
    sizes = {
        name: float(value) * _PX_PER_UNIT[unit]
        for name, value, unit in _SVG_LENGTH.findall(root[0])
    }
    if "width" not in sizes or "height" not in sizes:
        return None
    return (round(sizes["width"]), round(sizes["height"]))


def save_webp(target: Path, image: Image.Image, lossless: bool) -> None:
    """Deterministic WebP: fixed quality and effort, no metadata."""
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, format="WEBP", quality=WEBP_QUALITY, method=4, lossless=lossless)


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (no bytes copied), else copy it.

    The target lies in the report's staging folder, which is swapped into place
    as a whole, so the copy need not be atomic by itself.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:  # other file system, no permission, links unsupported
        shutil.copyfile(source, target)
