"""The catalog stage: a data set's fetched source becomes its ``manifest.parquet``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.data.kinds import catalog_dataset
from pipeline.io import write_parquet


def catalog(
    source_record: Path,
    dataset: Mapping[str, Any],
    out: Path,
    metadata_record: Path | None = None,
    max_pixels: int | None = None,
) -> pd.DataFrame:
    """Catalog the fetched source of one data set into ``manifest.parquet``.

    Sets whose images are rendered (vector emoji) cache them in ``rendered/``
    beside the manifest; file names there hash their inputs, so the cache
    never goes stale. ``max_pixels`` (the config's ``max_image_pixels``):
    larger images are ``error`` rows, refused before they are decoded.
    """
    root = Path(json.loads(Path(source_record).read_text())["root"])
    options = {**dataset, "render_dir": str(Path(out).parent / "rendered")}
    options["max_pixels"] = max_pixels
    if metadata_record:
        options["metadata_root"] = json.loads(Path(metadata_record).read_text())["root"]
    manifest = catalog_dataset(dataset["kind"], root, options)
    write_parquet(out, manifest)
    return manifest
