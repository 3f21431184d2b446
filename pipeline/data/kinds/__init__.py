"""Data set kinds: how a fetched source becomes a manifest.

Each kind is a function ``catalog(root, options) -> manifest`` registered in
``KINDS``. ``root`` is the folder the download stage made available;
``options`` is the validated ``datasets.<name>`` config (``limit``, ``split``
and the kind's own keys, ``KIND_OPTIONS``), with ``max_pixels`` (the config's
``max_image_pixels``: larger images are ``error`` rows). The manifest has at least the
columns of ``pipeline.vocabulary.MANIFEST_COLUMNS``, one row per source image,
sorted by ``image_id``, every unusable image kept with a ``status`` and ``reason``.

A kind whose images are face crops already declares the square its images are
used through (``TEMPLATES``, a :class:`pipeline.geometry.Template`); such a kind is
``prealigned`` by default, every other one ``detect`` (see ``pipeline.vocabulary``).

A new kind: a module here with its ``catalog`` (and ``OPTIONS``, ``REQUIRED``,
``TEMPLATE`` if it has them), registered below, and its name in the config
schema's ``kind`` enum.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.data.kinds import celebahq, croppedyale, emoji, yale
from pipeline.data.kinds.images import build_manifest
from pipeline.geometry import CENTRE_SQUARE, Template
from pipeline.vocabulary import DETECT, PREALIGNED

Catalog = Callable[[Path, Mapping[str, Any]], pd.DataFrame]


def _images(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Every decodable image under ``root``; no subjects or categories."""
    return build_manifest(
        root,
        split=options.get("split", "test"),
        limit=options.get("limit"),
        max_pixels=options.get("max_pixels"),
    )


KINDS: dict[str, Catalog] = {
    "images": _images,
    "yale": yale.catalog,
    "croppedyale": croppedyale.catalog,
    "celebahq": celebahq.catalog,
    "emoji": emoji.catalog,
}


# Options that only some kinds read (anything else is a config error), and those they need.
KIND_OPTIONS: dict[str, frozenset[str]] = {"celebahq": celebahq.OPTIONS, "emoji": emoji.OPTIONS}
REQUIRED_OPTIONS: dict[str, tuple[str, ...]] = {"emoji": emoji.REQUIRED}

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


def alignment_options(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """How a data set (its config block) is framed: ``{"policy", "template"}`` for detection.

    ``template`` is the kind's :class:`pipeline.geometry.Template` as plain
    values (``Template.as_dict``) under ``prealigned``, None under ``detect``;
    being a rule param, a changed template reruns what depends on it.
    """
    policy = dataset["alignment"]
    template = template_of(dataset["kind"]).as_dict() if policy == PREALIGNED else None
    return {"policy": policy, "template": template}


def catalog_dataset(kind: str, root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    if kind not in KINDS:
        raise KeyError(f"unknown data set kind {kind!r}; known: {sorted(KINDS)}")
    return KINDS[kind](Path(root), options)
