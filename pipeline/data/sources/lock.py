"""The lock file of fetched files, their hashes, and the errors of a fetch.

Every fetched file (a download, an npm tarball, a local file, a checkpoint) is
recorded in ``resources/sources.lock.json`` with its sha256 and size, keyed by
URL, ``npm:<package>@<version>``, ``gdrive:<id>`` or absolute path, and checked
on every later fetch: a different file is an error, never a silent overwrite.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pipeline.io import InputError, write_json

log = logging.getLogger(__name__)

LOCK_NAME = "sources.lock.json"
LOCK_FORMAT = 1


class DownloadError(RuntimeError):
    """A download that failed; the message names the URL and what to do."""


class SourceRefused(DownloadError):
    """The host refused (403/429, a login or quota page): the file must be placed by hand."""


class HashMismatch(DownloadError):
    """A fetched file whose sha256 is not the expected one."""

    def __init__(self, message: str, observed: str, expected: str) -> None:
        super().__init__(message)
        self.observed = observed
        self.expected = expected


class LockMismatch(DownloadError):
    """A file that differs from the one the lock file recorded for the same source."""


# --------------------------------------------------------------------------- hashing


def normalized_hash(value: str | None) -> str | None:
    return value.strip().lower() if value else None


# torch.hub's check_hash convention: a published file named ``<stem>-<hex>.<ext>``
# carries the first hex digits (at least 8 here) of its own sha256.
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")


def hash_prefix(name: str) -> str | None:
    """The sha256 prefix a file name carries (``...-61556be5.pth`` -> ``61556be5``), or None."""
    match = HASH_IN_NAME.search(name)
    return match.group(1) if match else None


# --------------------------------------------------------------------------- lock file


def _data_folder(workdir: Path) -> tuple[Path, tuple[str, ...]] | None:
    """The ``data`` folder one or two levels above ``workdir``, and the names below it."""
    workdir = workdir.absolute()
    for depth in (1, 2):
        folder = workdir.parents[depth - 1] if len(workdir.parents) >= depth else None
        if folder is not None and folder.name == "data":
            return folder, workdir.parts[len(folder.parts) :]
    return None


def default_lock_file(workdir: str | Path) -> Path:
    """``resources/sources.lock.json`` for a fetch folder ``resources/data/<name>[/<role>]``.

    Without a ``data`` folder one or two levels up, the lock file goes beside ``workdir``.
    """
    found = _data_folder(Path(workdir))
    return (found[0].parent if found else Path(workdir).absolute().parent) / LOCK_NAME


def default_config_key(workdir: str | Path) -> str:
    """The config key a fetch folder stands for, for messages.

    ``data/<name>/<role>`` -> ``datasets.<name>.<role>``; ``data/<name>`` ->
    ``datasets.<name>.source``.
    """
    found = _data_folder(Path(workdir))
    if not found:
        return "datasets.<name>.source"
    below = found[1]
    return f"datasets.{below[0]}.{below[1] if len(below) > 1 else 'source'}"


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on a sidecar of ``lock_file`` (one writer at a time).

    The sidecar, not the lock file itself, is locked because the lock file is
    replaced by rename on every write, and a lock on a replaced inode guards nothing.
    """
    guard = lock_file.with_name(lock_file.name + ".lock")
    guard.parent.mkdir(parents=True, exist_ok=True)
    with open(guard, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_lock(lock_file: str | Path) -> dict[str, dict[str, Any]]:
    """The lock file's entries (key -> ``{"sha256", "bytes", "kind", "recorded"}``); {} if none."""
    lock_file = Path(lock_file)
    if not lock_file.exists():
        return {}
    try:
        data = json.loads(lock_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(
            lock_file, f"lock file is not valid JSON ({exc}); repair or delete it"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise InputError(lock_file, 'lock file has no "files" object; repair or delete it')
    return data["files"]


def lock_mismatch(
    what: str, key: str, lock_file: Path, observed: str, size: int | None, entry: Mapping
) -> LockMismatch:
    size_note = f" ({size} bytes)" if size is not None else ""
    return LockMismatch(
        f"{what}: sha256 {observed}{size_note} differs from the sha256 recorded for it in "
        f"{lock_file}: {entry.get('sha256')} ({entry.get('bytes')} bytes, recorded "
        f"{entry.get('recorded', 'earlier')}). The file changed since it was first fetched: "
        "the upstream file was replaced, or this copy is corrupt or a different file. "
        "Nothing was overwritten. If the upstream file legitimately changed, delete the "
        f'entry "{key}" from {lock_file} and run again: the new file is then recorded. '
        "Otherwise restore the original file."
    )


def record_in_lock(
    lock_file: str | Path,
    key: str,
    sha256: str,
    size: int,
    kind: str,
    what: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Record ``key``'s sha256 and size, or check them against an earlier record.

    Safe against concurrent jobs: the read-compare-write runs under an exclusive
    file lock and the new lock file replaces the old one by rename. Raises
    ``LockMismatch`` when ``key`` was recorded with another sha256.
    """
    lock_file = Path(lock_file)
    with _exclusive(lock_file):
        files = read_lock(lock_file)
        entry = files.get(key)
        if entry is not None:
            if entry.get("sha256") != sha256:
                raise lock_mismatch(what or key, key, lock_file, sha256, size, entry)
            return entry
        recorded = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        entry = {"sha256": sha256, "bytes": size, "kind": kind, "recorded": recorded, **extra}
        files[key] = entry
        write_json(
            lock_file,
            {
                "comment": "sha256 and size of every fetched source file, written by "
                "pipeline/data/sources/; delete an entry to accept a changed upstream file",
                "format": LOCK_FORMAT,
                "files": files,
            },
        )
        log.info("recorded %s in %s (sha256 %s, %d bytes)", key, lock_file, sha256, size)
        return entry


def check_pin_against_lock(
    pin: str | None, entry: Mapping | None, key: str, lock_file: Path, where: str
) -> None:
    if pin and entry is not None and entry.get("sha256") != pin:
        raise LockMismatch(
            f"{key}: {where}.sha256 pins {pin}, but {lock_file} recorded "
            f"{entry.get('sha256')} for it. If you changed the pin because the upstream file "
            f'changed, delete the entry "{key}" from {lock_file} and run again; otherwise '
            "restore the pin."
        )


# --------------------------------------------------------------------------- messages


def _config_example(where: str, path: str) -> str:
    """``--config`` text that sets ``<where>.path``: ``datasets={yale: {source: {path: p}}}``."""
    top, *rest = where.split(".")
    inner = f"{{path: {path}}}"
    for part in reversed(rest):
        inner = f"{{{part}: {inner}}}"
    return f"{top}={inner}"


def hand_placement(
    dest: Path,
    where: str,
    kind: str = "url",
    how: str = "fetch the file another way (a web browser, another machine)",
) -> str:
    example = f"--config '{_config_example(where, f'/data/{dest.name}')}'"
    if where.startswith("weights."):
        # A checkpoint's destination is the fetch rule's output: Snakemake takes
        # a file placed there as done and never runs the checks on it.
        return (
            f"To go on without this download, {how} and either save it anywhere and set "
            f"{where}.path to it instead of {where}.{kind} (it is then checked and recorded "
            f"in the lock file), e.g. {example}, or save it as {dest} (the expected path; the "
            "workflow then uses it as it is, unchecked)."
        )
    return (
        f"To go on without this download, {how} and either save it as {dest} (the "
        f"expected path: it is used "
        f"from there on the next run and recorded in the lock file), or save it anywhere "
        f"and set {where}.path to it instead of {where}.{kind}, e.g. {example}."
    )
