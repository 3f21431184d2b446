"""Splitting a data set's manifest into shards, the unit of work of per-image jobs, and
merging the shards' tables back.

Shards keep the number of jobs per stage small for large sets (30,000 images
make 60 jobs at the default 500 per shard, not 30,000).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipeline.io import write_parquet


def shard_name(index: int) -> str:
    return f"{index:04d}"


def shard_count(n_images: int, shard_size: int) -> int:
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    return max(1, math.ceil(n_images / shard_size))


def manifest_shards(manifest_path: str | Path, shard_size: int) -> list[str]:
    """Names of the shards of a manifest; an empty set still has one (empty) shard."""
    n_rows = len(pd.read_parquet(manifest_path, columns=["image_id"]))
    return [shard_name(i) for i in range(shard_count(n_rows, shard_size))]


def select_shard(manifest: pd.DataFrame, shard: str | int, shard_size: int) -> pd.DataFrame:
    """Rows of shard ``shard``: the manifest sorted by image_id, cut in runs of shard_size."""
    index = int(shard)
    ordered = manifest.sort_values("image_id", kind="stable").reset_index(drop=True)
    if index < 0 or index >= shard_count(len(ordered), shard_size):
        raise IndexError(f"shard {shard} out of range for {len(ordered)} images")
    return ordered.iloc[index * shard_size : (index + 1) * shard_size].reset_index(drop=True)


def merge_tables(parts: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Concatenate per-shard parquet tables (in the given order) into one: the merge stages."""
    frames = [pd.read_parquet(path) for path in parts]
    merged = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    write_parquet(out, merged)
    return merged
