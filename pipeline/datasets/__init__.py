"""Data set kinds: how a fetched source becomes a manifest.

Each kind is a function ``catalog(root, options) -> manifest`` registered in
``KINDS``. ``root`` is the folder the download stage made available;
``options`` is the validated ``datasets.<name>`` config (``limit``, ``split``
and the kind's own keys). The manifest has at least the columns of
``pipeline.catalog.MANIFEST_COLUMNS``, one row per source image, sorted by
``image_id``, every unusable image kept with a ``status`` and ``reason``.

A kind whose images are face crops already declares the square its images are
used through (``TEMPLATES``, a :class:`pipeline.align.Template`); such a kind is
``prealigned`` by default, every other one ``detect`` (see ``pipeline.status``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.align import CENTRE_SQUARE, Template
from pipeline.catalog import build_manifest
from pipeline.datasets import celebahq, croppedyale, emoji, yale
from pipeline.status import DETECT, PREALIGNED

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


# Kinds whose images are pre-aligned face crops, with the square each is used through.
TEMPLATES: dict[str, Template] = {"croppedyale": croppedyale.TEMPLATE}


def default_alignment(kind: str) -> str:
    """A kind's alignment policy when the config names none: ``prealigned`` for kinds
    that declare a template, else ``detect``."""
    return PREALIGNED if kind in TEMPLATES else DETECT


def template_of(kind: str) -> Template:
    """The square a ``prealigned`` data set of this kind is used through; kinds that
    declare none use the largest centred square."""
    return TEMPLATES.get(kind, CENTRE_SQUARE)


def catalog_dataset(kind: str, root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    if kind not in KINDS:
        raise KeyError(f"unknown data set kind {kind!r}; known: {sorted(KINDS)}")
    return KINDS[kind](Path(root), options)
