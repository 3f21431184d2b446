"""The lock file of fetched files, their hashes, and the errors of a fetch.

Every fetched file (a download, an npm tarball, a local file, a checkpoint) is
recorded in ``resources/sources.lock.json`` with its sha256 and size, keyed by
URL, ``npm:<package>@<version>``, ``gdrive:<id>`` or absolute path, and checked
on every later fetch: a different file is an error, never a silent overwrite.
A local folder is recorded as one entry: the digest of its files' names and
hashes, with each file's sha256 under ``files`` (so a change is reported file
by file).

**Accepting a change.** The lock file records what the results were made
from. When that changed on purpose (a new upstream release, a local file or
folder edited or replaced), forget the entry and run again::

    python -m pipeline.data.sources.lock forget '<key>'

The next fetch records the new content, and everything made from the old one
is made again (a local path's fingerprint reruns its fetch, see
:mod:`pipeline.data.sources.fingerprint`). Until then the workflow refuses the
changed source and keeps the results it has.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import logging
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
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


def forget_command(key: str, lock_file: Path) -> str:
    """The shell command that removes ``key`` from ``lock_file`` (see the module docstring),
    runnable from any folder."""
    where = shlex.quote(str(Path(lock_file).absolute()))
    return f"python -m pipeline.data.sources.lock forget --lock-file {where} {shlex.quote(key)}"


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
        f'entry "{key}" from {lock_file} ({forget_command(key, lock_file)}) and run again: '
        "the new file is then recorded. Otherwise restore the original file."
    )


def _listing(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > limit else shown


def folder_changes(recorded: Mapping[str, str], found: Mapping[str, str]) -> str:
    """What differs between two ``{relative name: sha256}`` listings of a folder, in words."""
    added = sorted(set(found) - set(recorded))
    removed = sorted(set(recorded) - set(found))
    changed = sorted(name for name in set(found) & set(recorded) if found[name] != recorded[name])
    parts = [
        f"{len(names)} {label} ({_listing(names)})"
        for label, names in (("added", added), ("removed", removed), ("changed", changed))
        if names
    ]
    return "; ".join(parts) or "no file differs by name and sha256 (the digest method changed?)"


def local_change(
    path: Path,
    where: str,
    key: str,
    lock_file: Path,
    observed: str,
    size: int,
    entry: Mapping[str, Any],
    files: Mapping[str, str] | None = None,
) -> LockMismatch:
    """The error for a local ``path`` (``<where>.path``) whose content differs from its lock entry.

    For a folder, ``files`` (``{relative name: sha256}``, as found) names the
    files added, removed and changed against the entry's own listing.
    """
    recorded = entry.get("recorded", "earlier")
    if files is not None:
        what = "folder"
        change = folder_changes(entry.get("files") or {}, files)
        restore = "put those files back as they were (the lock entry lists each one's sha256)"
        pin = ""
    else:
        what = "file"
        change = (
            f"sha256 {observed} ({size:,} bytes), recorded {entry.get('sha256')} "
            f"({entry.get('bytes', 0):,} bytes)"
        )
        restore = f"put the original file back at {path} (sha256 {entry.get('sha256')})"
        pin = f" (and set {where}.sha256 to {observed} if it pins the old hash)"
    return LockMismatch(
        f"{path}: this local {what} ({where}.path) is not the one {lock_file} recorded "
        f"({recorded}): {change}. It was not used; the results made from the recorded "
        f"content stay as they are. To accept the change, delete its entry: run "
        f"`{forget_command(key, lock_file)}`{pin}, then run the workflow again: the new "
        f"content is recorded and everything made from the old one is made again. "
        f"Otherwise {restore}."
    )


def record_in_lock(
    lock_file: str | Path,
    key: str,
    sha256: str,
    size: int,
    kind: str,
    what: str | None = None,
    *,
    mismatch: Callable[[Mapping[str, Any]], LockMismatch] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Record ``key``'s sha256 and size, or check them against an earlier record.

    Safe against concurrent jobs: the read-compare-write runs under an exclusive
    file lock and the new lock file replaces the old one by rename. Raises
    ``LockMismatch`` when ``key`` was recorded with another sha256: the one
    ``mismatch(entry)`` makes, if given, else :func:`lock_mismatch`'s.
    """
    lock_file = Path(lock_file)
    with _exclusive(lock_file):
        files = read_lock(lock_file)
        entry = files.get(key)
        if entry is not None:
            if entry.get("sha256") != sha256:
                if mismatch is not None:
                    raise mismatch(entry)
                raise lock_mismatch(what or key, key, lock_file, sha256, size, entry)
            return entry
        recorded = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        entry = {"sha256": sha256, "bytes": size, "kind": kind, "recorded": recorded, **extra}
        files[key] = entry
        _write_lock(lock_file, files)
        log.info("recorded %s in %s (sha256 %s, %d bytes)", key, lock_file, sha256, size)
        return entry


def _write_lock(lock_file: Path, files: Mapping[str, Any]) -> None:
    write_json(
        lock_file,
        {
            "comment": "sha256 and size of every fetched source file, written by "
            "pipeline/data/sources/; to accept a changed source, remove its entry: "
            "python -m pipeline.data.sources.lock forget '<key>'",
            "format": LOCK_FORMAT,
            "files": dict(files),
        },
    )


def forget(lock_file: str | Path, key: str) -> dict[str, Any]:
    """Remove ``key``'s entry from ``lock_file`` (accepting a changed source); return it.

    Raises ``KeyError`` naming the keys recorded when there is no such entry.
    """
    lock_file = Path(lock_file)
    with _exclusive(lock_file):
        files = read_lock(lock_file)
        if key not in files:
            raise KeyError(f"{lock_file} has no entry {key!r}; its entries: {sorted(files)}")
        entry = files.pop(key)
        _write_lock(lock_file, files)
    return entry


def check_pin_against_lock(
    pin: str | None, entry: Mapping | None, key: str, lock_file: Path, where: str
) -> None:
    if pin and entry is not None and entry.get("sha256") != pin:
        raise LockMismatch(
            f"{key}: {where}.sha256 pins {pin}, but {lock_file} recorded "
            f"{entry.get('sha256')} for it. If you changed the pin because the upstream file "
            f'changed, delete the entry "{key}" from {lock_file} '
            f"({forget_command(key, lock_file)}) and run again; otherwise restore the pin."
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


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pipeline.data.sources.lock forget [--lock-file F] KEY...``."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.data.sources.lock",
        description="Accept a changed source: forget its lock entry, so the next run records "
        "the new content (and makes again everything made from the old one).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    forgetting = commands.add_parser("forget", help="remove entries from the lock file")
    forgetting.add_argument("keys", nargs="+", metavar="KEY", help="URL, npm:..., or path")
    forgetting.add_argument("--lock-file", default=f"resources/{LOCK_NAME}")
    args = parser.parse_args(argv)
    for key in args.keys:
        try:
            entry = forget(args.lock_file, key)
        except KeyError as exc:
            print(exc.args[0], file=sys.stderr)
            return 1
        print(f"forgot {key} (sha256 {entry.get('sha256')}, recorded {entry.get('recorded')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
