"""Data set kinds: how a fetched source becomes a manifest.

Each kind is a function ``catalog(root, options) -> manifest`` registered in
``KINDS``. ``root`` is the folder the download stage made available;
``options`` is the validated ``datasets.<name>`` config (``limit``, ``split``
and the kind's own keys). The manifest has at least the columns of
``pipeline.catalog.MANIFEST_COLUMNS``, one row per source image, sorted by
``image_id``, every unusable image kept with a ``status`` and ``reason``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.catalog import build_manifest
from pipeline.datasets import celebahq, croppedyale, emoji, yale

Catalog = Callable[[Path, Mapping[str, Any]], pd.DataFrame]


def _images(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Every decodable image under ``root``; no subjects or categories."""
    return build_manifest(root, split=options.get("split", "test"), limit=options.get("limit"))


KINDS: dict[str, Catalog] = {
    "images": _images,
    "yale": yale.catalog,
    "croppedyale": croppedyale.catalog,
    "celebahq": celebahq.catalog,
    "emoji": emoji.catalog,
}


def catalog_dataset(kind: str, root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    if kind not in KINDS:
        raise KeyError(f"unknown data set kind {kind!r}; known: {sorted(KINDS)}")
    return KINDS[kind](Path(root), options)
