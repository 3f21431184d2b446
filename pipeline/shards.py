"""Splitting a data set's manifest into shards, the unit of work of per-image jobs, and
merging the shards' tables back.

Shards keep the number of jobs per stage small for large sets (30,000 images
make 60 jobs at the default 500 per shard, not 30,000).

**Lost shards.** A merged table records the shard tables it was made from
(parquet metadata, ``PARTS_KEY``). Snakemake does not make a missing
intermediate file again while the files made from it are up to date (it
treats it as a removed temporary file): a job killed after Snakemake deleted
its old output (under ``--forcerun``, say) leaves a hole that no later run
fills, and the merged table quietly keeps rows nothing backs. The merge rules'
inputs therefore pass through :func:`check_merge_inputs`, which fails, naming
the lost files and the command that makes them again, when a shard the merged
table was made from is gone, or an input of a shard (an upscaled folder under
a metric shard, say) is, and Snakemake would not act. A shard older than one
of its inputs needs no such check: Snakemake compares every job's inputs with
its outputs and makes it again.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
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


def output_mtime(path: str | Path) -> float | None:
    """The modification time Snakemake reads for an output (a folder's
    ``.snakemake_timestamp`` when it has one); None when it does not exist."""
    try:
        status = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if os.path.isdir(path) and not os.path.islink(path):
        try:
            return os.stat(os.path.join(path, ".snakemake_timestamp")).st_mtime
        except FileNotFoundError:
            pass
    return status.st_mtime


def lost_shards(
    merged: str | Path,
    shards: Mapping[str, Sequence[str]],
    made_from: Callable[[str], Sequence[str] | None] = lambda shard: None,
) -> list[str]:
    """The files an existing ``merged`` table depends on that are gone and that Snakemake
    would not make again: the lost shards, then the lost inputs of shards.

    ``shards`` maps each shard the merge reads to the outputs of earlier jobs it
    is made from now; ``made_from(shard)`` gives those it was made from last
    time (Snakemake's record), or None when unknown. A shard is lost when
    ``merged`` was made from it (its recorded parts, or any shard when they
    were not recorded) and it is missing, unless the merge runs again anyway
    (another set of shards, or a shard newer than ``merged``: Snakemake then
    first makes the shards it lacks). An input is lost when it is missing,
    the shard was made from it, and the shard is at least as new as every
    input it still has (so that nothing makes the shard, or the input, again);
    an input the shard was not made from is new, and Snakemake makes it.
    """
    if output_mtime(merged) is None:
        return []
    made = output_mtime(merged)
    wanted = {os.path.normpath(shard): upstream for shard, upstream in shards.items()}
    recorded = merged_parts(merged)
    known = set(wanted) if recorded is None else {os.path.normpath(part) for part in recorded}
    times = {shard: output_mtime(shard) for shard in wanted}
    rerun = known != set(wanted) or any(t is not None and t > made for t in times.values())
    lost = [] if rerun else [shard for shard, t in times.items() if t is None]
    for shard, upstream in wanted.items():
        before = made_from(shard)
        if times[shard] is None or shard not in known or before is None:
            continue
        before = {os.path.normpath(path) for path in before}
        inputs = {os.path.normpath(path): output_mtime(path) for path in upstream}
        if all(t <= times[shard] for t in inputs.values() if t is not None):
            gone = [path for path, t in inputs.items() if t is None and path in before]
            lost += [path for path in gone if path not in lost]
    return lost


def check_merge_inputs(
    merged: str | Path,
    shards: Mapping[str, Sequence[str]],
    rule: str,
    made_from: Callable[[str], Sequence[str] | None] = lambda shard: None,
) -> list[str]:
    """The shards of a merge (the keys of ``shards``), once checked for lost files
    (:func:`lost_shards`, with ``made_from``); the merge rule's input.

    Raises :class:`LostShards` naming ``merged``, the lost files, and the
    command that makes them again.
    """
    lost = lost_shards(merged, shards, made_from)
    if not lost:
        return list(shards)
    shown = " ".join(lost[:10]) + (f" ... ({len(lost)} in all)" if len(lost) > 10 else "")
    raise LostShards(
        f"{merged} was merged from shards, and {len(lost)} of the files it depends on are "
        f"gone: {shown}. A job "
        "killed after Snakemake deleted its old output (under --forcerun, say) leaves this, "
        "and Snakemake does not make a missing intermediate file again while the files made "
        f"from it are up to date: {merged} would keep rows that nothing backs. Make them "
        f"again, then run the workflow as before: snakemake --cores all {' '.join(lost)} "
        f"(with the --configfile/--config options of your run; for lost shard tables alone, "
        f"adding --forcerun {rule} to your usual command does both)."
    )
