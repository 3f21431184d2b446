"""Splitting a data set's manifest into shards, the unit of work of per-image jobs, and
merging the shards' tables back.

Shards keep the number of jobs per stage small for large sets (30,000 images
make 60 jobs at the default 500 per shard, not 30,000).

**Lost shards.** A merged table records the shard tables it was made from
(parquet metadata, ``PARTS_KEY``). Snakemake does not make a missing
intermediate file again while the file made from it is up to date (it treats
it as a removed temporary file), so a shard job killed after Snakemake
deleted its old table (under ``--forcerun``, say) would leave the merged
table quietly holding rows nothing backs, run after run. The merge rules'
inputs therefore pass through :func:`check_merge_inputs`, which fails, naming
the lost shards and the command that rebuilds them, when that is the case.
A shard older than its own inputs needs no such check: Snakemake compares
every job's inputs with its outputs and makes it again.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.io import atomic_path


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


# The parquet metadata key under which a merged table lists its parts (JSON, as given).
PARTS_KEY = b"facebench.parts"


class LostShards(RuntimeError):
    """Shard tables a merged table was made from are gone; the message says how to rebuild them."""


def merge_tables(parts: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Concatenate per-shard parquet tables (in the given order) into one: the merge stages.

    The merged table records its parts (``PARTS_KEY``; see the module docstring).
    """
    frames = [pd.read_parquet(path) for path in parts]
    merged = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    table = pa.Table.from_pandas(merged, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), PARTS_KEY: json.dumps([str(p) for p in parts])}
    with atomic_path(out) as tmp:
        pq.write_table(table.replace_schema_metadata(metadata), tmp)
    return merged


def merged_parts(merged: str | Path) -> list[str] | None:
    """The parts a merged table records, or None (written before parts were recorded)."""
    metadata = pq.read_schema(merged).metadata or {}
    if PARTS_KEY not in metadata:
        return None
    return [str(part) for part in json.loads(metadata[PARTS_KEY])]


def lost_shards(merged: str | Path, parts: Sequence[str | Path]) -> list[str]:
    """The ``parts`` of an existing ``merged`` table that are gone and that Snakemake would
    not make again.

    None when ``merged`` does not exist, when it was made from another set of
    parts or when one of them is newer (either way the merge runs again, and
    Snakemake first makes the parts it lacks); else every part that is missing.
    """
    merged = Path(merged)
    if not merged.is_file():
        return []
    wanted = [os.path.normpath(part) for part in parts]
    recorded = merged_parts(merged)
    if recorded is not None and {os.path.normpath(part) for part in recorded} != set(wanted):
        return []
    made = merged.stat().st_mtime
    present = [part for part in wanted if os.path.exists(part)]
    if any(os.stat(part).st_mtime > made for part in present):
        return []
    return [part for part in wanted if not os.path.exists(part)]


def check_merge_inputs(merged: str | Path, parts: Sequence[str], rule: str) -> list[str]:
    """``parts``, once checked for lost shards (:func:`lost_shards`); the merge rule's input.

    Raises :class:`LostShards` naming ``merged``, the lost shards, and the
    commands that rebuild them (``--forcerun <rule>``, or the files as targets).
    """
    lost = lost_shards(merged, parts)
    if not lost:
        return list(parts)
    shown = " ".join(lost[:10]) + (f" ... ({len(lost)} in all)" if len(lost) > 10 else "")
    raise LostShards(
        f"{merged} was merged from {len(parts)} shard tables, and {len(lost)} of them are gone: "
        f"{shown}. A job killed after Snakemake deleted its old table (under --forcerun, say) "
        f"leaves this, and Snakemake does not make a missing intermediate file again while the "
        f"file made from it is up to date: {merged} would keep rows that nothing backs. Rebuild "
        f"the shards and merge them again: run the workflow with `--forcerun {rule}` added "
        f"(with the options of your run); or make the shards alone with `snakemake --cores all "
        f"<the files above>`, then run the workflow again."
    )
