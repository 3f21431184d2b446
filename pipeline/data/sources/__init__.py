"""Fetching a data set's source: a URL, an npm package, or a local file, archive or folder.

The result of a fetch is a folder of source files on local disk, described by a
JSON record; nothing after the download stage needs the network.

Source kinds (``datasets.<name>.source``; when several are given, ``path`` wins
over ``npm``, which wins over ``url``):

- ``{"url": "https://...", "sha256"?: "<hex>"}``: downloaded over HTTP(S) with
  resume (``Range``), retries and timeouts.
- ``{"npm": "<package>", "version": "<x.y.z>", "registry"?: "<url>", "sha256"?}``,
  or ``{"npm": "https://.../<name>.tgz"}``: fetched with ``npm pack``.
- ``{"path": "<file, archive or folder>", "sha256"?}``: used in place (folders)
  or unpacked / copied (files).

Every fetched file (a download, an npm tarball, a local file) is recorded in a
lock file (``resources/sources.lock.json``) with its sha256 and size, keyed by
URL, ``npm:<package>@<version>`` or absolute path, and checked on every later
fetch: a different file is an error, never a silent overwrite. A local folder
is recorded as one entry, the digest of its files' names and hashes. The
weights stage (``pipeline.data.weights``) records checkpoints in the same lock
file (Google Drive files as ``gdrive:<id>``). A local path is fetched again
whenever its fingerprint changes (:mod:`pipeline.data.sources.fingerprint`);
a content that differs from the lock file's record is then refused with a
message that says how to accept it (:mod:`pipeline.data.sources.lock`).

Archives (zip, tar, tar.gz, tgz) are unpacked into ``<workdir>/files`` (an npm
tarball's content lands in ``files/package/``); macOS litter (``__MACOSX/``,
``._*``, ``.DS_Store``) is skipped at that point, so it never reaches the catalog.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.data.sources.archives import is_archive, is_archive_litter, unpack, unpack_archive
from pipeline.data.sources.fingerprint import folder_hashes, local_fingerprint, tree_digest
from pipeline.data.sources.http import download, download_file, partial_path, url_filename
from pipeline.data.sources.lock import (
    DownloadError,
    HashMismatch,
    LockMismatch,
    SourceRefused,
    check_pin_against_lock,
    default_config_key,
    default_lock_file,
    hand_placement,
    hash_prefix,
    local_change,
    lock_mismatch,
    normalized_hash,
    read_lock,
    record_in_lock,
)
from pipeline.data.sources.npm import check_npm, npm_pack, npm_tarball_name
from pipeline.io import InputError, atomic_dir, sha256_file, write_json

__all__ = [
    "DATASET_KINDS",
    "SOURCE_KINDS",
    "WEIGHTS_KINDS",
    "DownloadError",
    "HashMismatch",
    "LockMismatch",
    "SourceRefused",
    "download",
    "download_source",
    "effective_source",
    "fetch_source",
    "hash_prefix",
    "is_archive",
    "is_archive_litter",
    "local_fingerprint",
    "npm_pack",
    "npm_tarball_name",
    "partial_path",
    "read_lock",
    "record_in_lock",
    "sha256_file",
    "source_kind",
    "unpack",
    "unpack_archive",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- precedence

# When a source block names several kinds (an override merged onto a default,
# e.g. a local copy given on top of a default URL), the first wins. Each kind
# keeps its own keys; ``sha256``, if given, checks the winner.
SOURCE_KINDS: dict[str, tuple[str, ...]] = {
    "path": ("path", "sha256"),
    "npm": ("npm", "version", "registry", "sha256"),
    "url": ("url", "sha256"),
    "gdrive": ("gdrive", "sha256"),
}
# What data sets and checkpoints may be fetched from (``gdrive``: checkpoints only).
DATASET_KINDS = ("path", "npm", "url")
WEIGHTS_KINDS = ("path", "url", "gdrive")


def source_kind(
    source: Mapping[str, Any],
    where: str = "datasets.<name>.source",
    allowed: tuple[str, ...] = DATASET_KINDS,
) -> str:
    """The kind a source block fetches: the first of ``SOURCE_KINDS`` it names among ``allowed``."""
    for kind in SOURCE_KINDS:
        if kind in allowed and source.get(kind):
            return kind
    raise InputError(where, f"needs one of {', '.join(allowed)}")


def effective_source(
    source: Mapping[str, Any], allowed: tuple[str, ...] = tuple(SOURCE_KINDS)
) -> dict[str, Any]:
    """The part of a source block a fetch uses: its winning kind's keys (see ``SOURCE_KINDS``).

    A rule passes this rather than the whole block, so that a default left
    under an override (a URL under a local ``path``) reruns nothing.
    """
    kind = source_kind(source, "source", allowed)
    return {key: source[key] for key in SOURCE_KINDS[kind] if key in source}


# --------------------------------------------------------------------------- fetching


def _existing_ok(
    local: Path,
    what: str,
    key: str,
    pin: str | None,
    entry: Mapping | None,
    lock_file: Path,
    where: str,
) -> str:
    """Check a file already at the expected path (an earlier fetch, or placed by hand)."""
    observed = sha256_file(local)
    if pin and observed != pin:
        raise HashMismatch(
            f"{local}: sha256 is {observed}, but {where}.sha256 pins {pin}. "
            "It is not the pinned file: delete it to fetch again, or fix the pin.",
            observed,
            pin,
        )
    if entry is not None and entry.get("sha256") != observed:
        raise lock_mismatch(what, key, lock_file, observed, local.stat().st_size, entry)
    log.info("using %s (fetched earlier or placed by hand; sha256 %s)", local, observed)
    return observed


def _fetch_url(
    source: Mapping[str, Any], workdir: Path, lock_file: Path, where: str, **options: Any
) -> tuple[Path, dict[str, Any]]:
    url = source["url"]
    dest = workdir / "download" / url_filename(url)
    pin = normalized_hash(source.get("sha256"))
    entry = read_lock(lock_file).get(url)
    check_pin_against_lock(pin, entry, url, lock_file, where)
    what = f"{url} (local copy {dest})"
    if dest.is_file():
        observed = _existing_ok(dest, what, url, pin, entry, lock_file, where)
    else:
        expected = pin or (entry or {}).get("sha256")
        try:
            observed = download_file(url, dest, expected, **options, where=where)
        except HashMismatch as exc:
            if pin or entry is None:
                raise
            raise lock_mismatch(url, url, lock_file, exc.observed, None, entry) from exc
    record_in_lock(lock_file, url, observed, dest.stat().st_size, "url", what)
    return dest, {"kind": "url", "url": url, "sha256": observed, "lock_key": url}


def _fetch_npm(
    source: Mapping[str, Any], workdir: Path, lock_file: Path, where: str
) -> tuple[Path, dict[str, Any]]:
    spec, key, filename = check_npm(source, where)
    registry = source.get("registry")
    dest = workdir / "download" / filename
    pin = normalized_hash(source.get("sha256"))
    entry = read_lock(lock_file).get(key)
    check_pin_against_lock(pin, entry, key, lock_file, where)
    what = f"npm package {spec} (tarball {dest})"
    extra: dict[str, Any] = {}
    if dest.is_file():
        observed = _existing_ok(dest, what, key, pin, entry, lock_file, where)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            tarball, described = npm_pack(spec, dest.parent, registry)
        except DownloadError as exc:
            how = f"run `npm pack {spec}` where the registry is reachable"
            hint = hand_placement(dest, where, "npm", how)
            raise type(exc)(f"{exc}. {hint}") from exc
        try:
            observed = sha256_file(tarball)
            if pin and observed != pin:
                raise HashMismatch(
                    f"npm package {spec}: sha256 mismatch: expected {pin}, got {observed}; "
                    f"check {where}.sha256.",
                    observed,
                    pin,
                )
            if entry is not None and entry.get("sha256") != observed:
                raise lock_mismatch(what, key, lock_file, observed, tarball.stat().st_size, entry)
            os.replace(tarball, dest)
        finally:
            shutil.rmtree(tarball.parent, ignore_errors=True)
        if described.get("integrity"):
            extra["integrity"] = described["integrity"]
    record_in_lock(lock_file, key, observed, dest.stat().st_size, "npm", what, **extra)
    info = {"kind": "npm", "npm": source["npm"], "sha256": observed, "lock_key": key}
    info.update({k: source[k] for k in ("version", "registry") if source.get(k)})
    return dest, info


def _fetch_path(
    source: Mapping[str, Any], lock_file: Path, where: str
) -> tuple[Path, dict[str, Any]]:
    local = Path(source["path"]).expanduser().resolve()
    if not local.exists():
        raise InputError(local, f"source path does not exist ({where}.path)")
    info: dict[str, Any] = {"kind": "path", "path": str(local)}
    key = str(local)
    if local.is_file():
        observed = sha256_file(local)
        size = local.stat().st_size
        pin = normalized_hash(source.get("sha256"))
        if pin and observed != pin:
            raise InputError(
                local,
                f"sha256 is {observed}, the config pins {pin} "
                f"({where}.sha256): a different file, or a stale pin",
            )

        def changed(entry: Mapping[str, Any]) -> LockMismatch:
            return local_change(local, where, key, lock_file, observed, size, entry)

        record_in_lock(lock_file, key, observed, size, "path", mismatch=changed)
        info.update(sha256=observed, lock_key=key)
    else:
        # A folder is one entry: the digest of its files' names and contents,
        # with the listing that names the files of a later change.
        files = folder_hashes(local)
        digest = tree_digest(files)
        size = sum((local / name).stat().st_size for name in files)

        def changed(entry: Mapping[str, Any]) -> LockMismatch:
            return local_change(local, where, key, lock_file, digest, size, entry, files)

        record_in_lock(lock_file, key, digest, size, "folder", mismatch=changed, files=files)
        info.update(sha256=digest, files=len(files), lock_key=key)
        info["lock_file"] = str(lock_file.resolve())
    return local, info


def fetch_source(
    source: Mapping[str, Any],
    workdir: str | Path,
    record: str | Path,
    lock_file: str | Path | None = None,
    *,
    config_key: str | None = None,
    timeout: float = 60.0,
    attempts: int = 5,
    backoff: float = 1.0,
    archive_limits: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Make a data set's source available locally and describe it in ``record`` (JSON).

    ``source`` is the effective ``datasets.<name>.source`` block (see the module
    docstring for the kinds). ``workdir`` is the fetch's own folder (e.g.
    ``resources/data/<name>/<role>``): downloads go to ``<workdir>/download/``,
    unpacked archives and copied single files to ``<workdir>/files/``.
    ``lock_file`` should be given (the workflow's ``resources/sources.lock.json``);
    by default it is found from ``workdir`` (``default_lock_file``).
    ``config_key`` is the dotted config key of ``source`` (``datasets.yale.source``),
    named in messages; by default it is guessed from ``workdir``. ``timeout``
    (seconds per connect/read), ``attempts`` and ``backoff`` apply to HTTP.
    ``archive_limits`` (the config's ``archives``) bound what an archive may
    unpack to (:func:`unpack_archive`).

    The record holds ``root`` (the folder the catalog walks), ``kind``, the
    source's own keys and, for a file, ``file``, ``sha256``, ``bytes`` and
    ``lock_key``/``lock_file``; archives add ``skipped_entries``.
    """
    workdir = Path(workdir)
    lock_file = Path(lock_file) if lock_file is not None else default_lock_file(workdir)
    where = config_key or default_config_key(workdir)
    kind = source_kind(source, where, DATASET_KINDS)
    if kind == "path":
        local, info = _fetch_path(source, lock_file, where)
    elif kind == "npm":
        local, info = _fetch_npm(source, workdir, lock_file, where)
    else:
        options = {"timeout": timeout, "attempts": attempts, "backoff": backoff}
        local, info = _fetch_url(source, workdir, lock_file, where, **options, max_backoff=60.0)
    if local.is_dir():
        root = local
    elif is_archive(local):
        root = workdir / "files"
        info["skipped_entries"] = unpack_archive(local, root, archive_limits)
    else:
        root = workdir / "files"
        with atomic_dir(root) as staging:
            shutil.copyfile(local, staging / local.name)
    info["root"] = str(root.resolve())
    if local.is_file():
        info.update(file=str(local.resolve()), bytes=local.stat().st_size)
        info["lock_file"] = str(lock_file.resolve())
    write_json(record, info)
    return info


def download_source(
    source: Mapping[str, Any],
    record: str | Path,
    lock_file: str | Path,
    config_key: str,
    archive_limits: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The download stage: :func:`fetch_source` into the folder of ``record``."""
    record = Path(record)
    return fetch_source(
        source, record.parent, record, lock_file, config_key=config_key,
        archive_limits=archive_limits,
    )  # fmt: skip
