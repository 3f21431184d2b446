"""Fingerprints of local sources: what makes a changed local file or folder rerun its fetch.

A source given as a local ``path`` is read where it lies, so Snakemake sees
no file of its own change when the user edits it. The download and weights
rules therefore carry the path's fingerprint as a param, computed when
Snakemake builds its DAG, and a new fingerprint reruns the fetch (and, by
modification times, everything made from it); the fetch then checks the new
content against the lock file (:mod:`pipeline.data.sources.lock`).

- **A file** (an archive, an image, a checkpoint): its sha256. Hashing is
  done only when the file's size, modification time, inode or status-change
  time differ from the last hash's (a small cache, ``FINGERPRINT_CACHE``), so
  a DAG build costs a ``stat`` per file; a file touched or copied again with
  the same bytes reruns nothing.
- **A folder**: the digest of the relative name, size and modification time
  (ns) of every file under it (symlinked folders followed, each once; hidden
  files and ``__MACOSX``, which no catalog reads, left out). No
  byte is read, so 30,000 files cost a fraction of a second; an added,
  removed, changed or merely touched file reruns the fetch, which hashes the
  files and compares them with the lock file's record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.io import sha256_file, write_json

log = logging.getLogger(__name__)

# Where a DAG build keeps the sha256 of local files with the stat it was computed for
# (relative to the workflow's working folder); deleting it costs a rehash, nothing else.
FINGERPRINT_CACHE = "resources/fingerprints.json"
# The fingerprint of a path that is not there (the fetch then fails naming it).
MISSING = "missing"


def _unread(name: str) -> bool:
    """Hidden files and folders and macOS resource forks: no catalog reads them, and
    Finder rewrites ``.DS_Store`` whenever a folder is looked at."""
    return name.startswith(".") or name == "__MACOSX"


def walk_files(folder: str | os.PathLike[str]) -> Iterator[tuple[str, os.stat_result]]:
    """``(relative posix name, stat)`` of every regular file under ``folder``, sorted by name.

    Hidden files and folders and ``__MACOSX`` are left out (no catalog reads
    them). Symlinks are followed (a link to a folder is walked once, however
    many links lead to it); a broken link is skipped.
    """
    root = Path(folder)
    found: list[tuple[str, os.stat_result]] = []
    seen: set[tuple[int, int]] = set()
    pending = [(root, "")]
    while pending:
        directory, prefix = pending.pop()
        status = directory.stat()
        if (status.st_dev, status.st_ino) in seen:
            continue
        seen.add((status.st_dev, status.st_ino))
        with os.scandir(directory) as entries:
            for entry in entries:
                if _unread(entry.name):
                    continue
                name = f"{prefix}{entry.name}"
                try:
                    if entry.is_dir():
                        pending.append((Path(entry.path), f"{name}/"))
                    elif entry.is_file():
                        found.append((name, entry.stat()))
                except OSError:  # a broken link, or a file gone meanwhile
                    continue
    found.sort(key=lambda item: item[0])
    return iter(found)


def folder_fingerprint(folder: str | os.PathLike[str]) -> str:
    """Digest of the names, sizes and modification times of the files under ``folder``."""
    digest = hashlib.sha256()
    for name, status in walk_files(folder):
        digest.update(f"{name}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return f"folder:{digest.hexdigest()}"


def folder_hashes(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``{relative posix name: sha256}`` of every file under ``folder`` (what the lock records)."""
    root = Path(folder)
    return {name: sha256_file(root / name) for name, _ in walk_files(root)}


def tree_digest(files: dict[str, str]) -> str:
    """One sha256 for a folder's ``{name: sha256}`` listing: names and contents, in name order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{files[name]}\n".encode())
    return digest.hexdigest()


def _stat_key(status: os.stat_result) -> list[int]:
    return [status.st_size, status.st_mtime_ns, status.st_ino, status.st_ctime_ns]


def file_fingerprint(path: str | os.PathLike[str], cache: str | os.PathLike[str]) -> str:
    """The sha256 of ``path``, from ``cache`` while the file's stat has not changed."""
    path = Path(path)
    status = path.stat()
    cache = Path(cache)
    try:
        known: dict[str, Any] = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    entry = known.get(str(path))
    if isinstance(entry, dict) and entry.get("stat") == _stat_key(status):
        return f"sha256:{entry['sha256']}"
    log.info("hashing %s (new, or changed since it was last hashed)", path)
    observed = sha256_file(path)
    known[str(path)] = {"stat": _stat_key(path.stat()), "sha256": observed}
    try:
        write_json(cache, known)
    except OSError as exc:  # a read-only working folder: hash again next time
        log.warning("cannot write %s (%s)", cache, exc)
    return f"sha256:{observed}"


def local_fingerprint(
    path: str | os.PathLike[str], cache: str | os.PathLike[str] = FINGERPRINT_CACHE
) -> str:
    """The fingerprint of a local source ``path`` (see the module docstring)."""
    local = Path(path).expanduser().resolve()
    if local.is_dir():
        return folder_fingerprint(local)
    if local.is_file():
        return file_fingerprint(local, cache)
    return MISSING
