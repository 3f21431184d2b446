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
fetch: a different file is an error, never a silent overwrite. The weights
stage (``pipeline.weights``) records checkpoints in the same lock file
(Google Drive files as ``gdrive:<id>``).

Archives (zip, tar, tar.gz, tgz) are unpacked into ``<workdir>/files`` (an npm
tarball's content lands in ``files/package/``); macOS litter (``__MACOSX/``,
``._*``, ``.DS_Store``) is skipped at that point, so it never reaches the catalog.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import ssl
import stat
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from pipeline.io import InputError, atomic_dir, write_json

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "facebench/0.1 (python-urllib)"
LOCK_NAME = "sources.lock.json"
LOCK_FORMAT = 1
# Statuses worth another try: the server or a proxy is busy or briefly broken.
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
# Local failures that another try cannot fix.
LOCAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
# Semantic version, exact (no ranges or tags: a fetch must name one tarball).
EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
NPM_NAME = re.compile(r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$", re.IGNORECASE)

_sleep = time.sleep  # tests replace it to observe the backoff without waiting


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


class _Restart(Exception):
    """The partial file cannot be resumed; start again from byte 0 at once."""


# --------------------------------------------------------------------------- hashing


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _normalized_hash(value: str | None) -> str | None:
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


def _config_example(where: str, path: str) -> str:
    """``--config`` text that sets ``<where>.path``: ``datasets={yale: {source: {path: p}}}``."""
    top, *rest = where.split(".")
    inner = f"{{path: {path}}}"
    for part in reversed(rest):
        inner = f"{{{part}: {inner}}}"
    return f"{top}={inner}"


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


def _lock_mismatch(
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
                raise _lock_mismatch(what or key, key, lock_file, sha256, size, entry)
            return entry
        recorded = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        entry = {"sha256": sha256, "bytes": size, "kind": kind, "recorded": recorded, **extra}
        files[key] = entry
        write_json(
            lock_file,
            {
                "comment": "sha256 and size of every fetched source file, written by "
                "pipeline/sources.py; delete an entry to accept a changed upstream file",
                "format": LOCK_FORMAT,
                "files": files,
            },
        )
        log.info("recorded %s in %s (sha256 %s, %d bytes)", key, lock_file, sha256, size)
        return entry


# --------------------------------------------------------------------------- HTTP download


def partial_path(dest: str | Path) -> Path:
    """Where an unfinished download of ``dest`` is kept: ``<name>.part`` beside it."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def _meta_path(part: Path) -> Path:
    # The URL and validators the partial bytes came from, so that a later run
    # resumes only a download of the same URL and of the same upstream file.
    return part.with_name(part.name + ".json")


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _meta_path(part).unlink(missing_ok=True)


def _resume_state(url: str, part: Path) -> tuple[int, str | None]:
    """Bytes already downloaded for ``url`` and the ``If-Range`` validator, or (0, None)."""
    if not part.exists():
        return 0, None
    try:
        meta = json.loads(_meta_path(part).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = None
    if not isinstance(meta, dict) or meta.get("url") != url:
        log.info("%s: partial file of unknown origin; starting again", part)
        _discard(part)
        return 0, None
    etag = meta.get("etag")
    # If-Range needs a strong validator; a weak ETag would never match.
    validator = etag if etag and not etag.startswith("W/") else meta.get("last_modified")
    return part.stat().st_size, validator


def _hand_placement(
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


def _is_html_url(url: str) -> bool:
    return urllib.parse.urlparse(url).path.lower().endswith((".html", ".htm", ".xhtml"))


def _is_html_type(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media in ("text/html", "application/xhtml+xml")


def _looks_like_html(head: bytes) -> bool:
    start = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html"))


def _looks_binary(head: bytes) -> bool:
    # Archives and images carry NUL bytes in their first kilobytes; HTML never does.
    return b"\x00" in head[:4096]


def _read_head(read: Any, size: int = 4096) -> bytes:
    """The first ``size`` bytes of a body (fewer at its end), from a ``read1``-like function."""
    head = b""
    while len(head) < size and (chunk := read(size - len(head))):
        head += chunk
    return head


def _refuse_html(content_type: str | None, head: bytes, url: str, dest: Path, where: str) -> None:
    """Raise ``SourceRefused`` if a body that should be a file is an HTML page.

    An HTML content type alone is not enough when the bytes are clearly binary
    (a misconfigured server); an ``<html`` start is enough whatever the type.
    """
    if _looks_like_html(head):
        raise _refused_by_html(url, dest, where, "the content starts with <html")
    if _is_html_type(content_type) and not _looks_binary(head):
        raise _refused_by_html(url, dest, where, f"Content-Type {content_type}")


def _refused_by_html(url: str, dest: Path, where: str, how: str) -> SourceRefused:
    return SourceRefused(
        f"{url}: the server sent an HTML page ({how}) where a file was expected. Hosts such "
        "as Google Drive, Dropbox or institutional servers answer this way when a download "
        "quota is exceeded, a virus-scan or licence confirmation is required, or a login is "
        f"needed. {_hand_placement(dest, where)}"
    )


def _http_failure(exc: urllib.error.HTTPError, url: str, dest: Path, where: str) -> DownloadError:
    """The error to raise for an HTTP error status that retrying cannot fix."""
    page = " (an HTML page)" if _is_html_type(exc.headers.get("Content-Type")) else ""
    answer = f"the server answered HTTP {exc.code} {exc.reason}{page}"
    if exc.code in (401, 403, 429):
        why = {
            401: "it wants a login",
            403: "it refuses this client (a login, licence page or blocked host)",
            429: "too many requests (a rate limit or download quota)",
        }[exc.code]
        return SourceRefused(f"{url}: {answer}: {why}. {_hand_placement(dest, where)}")
    if exc.code in (404, 410):
        return DownloadError(
            f"{url}: {answer}: the file is not (or no longer) there; check "
            f"{where}.url. {_hand_placement(dest, where)}"
        )
    return DownloadError(f"{url}: {answer}. {_hand_placement(dest, where)}")


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a ``Content-Range: bytes a-b/total`` header."""
    match = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not match:
        return None, None
    first = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return first, total


def _transfer(
    url: str,
    part: Path,
    offset: int,
    validator: str | None,
    timeout: float,
    dest: Path,
    where: str,
) -> bool:
    """One request: append to (or restart) ``part``; return whether it was resumed.

    Raises on any failure; the bytes received so far stay in ``part``.
    """
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            _, total = _content_range(exc.headers.get("Content-Range"))
            exc.close()
            if total == offset:
                log.info("%s: the partial file is already complete (%d bytes)", url, offset)
                return True
            log.warning("%s: cannot resume at byte %d (HTTP 416); starting again", url, offset)
            _discard(part)
            raise _Restart from exc
        raise
    with response:
        status = getattr(response, "status", None) or 200  # file:// answers without one
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        # read1 returns what has arrived: a timeout mid-body then loses no bytes
        # already received (read() would discard a partly filled buffer).
        read = getattr(response, "read1", response.read)
        head = b""
        if status == 206:
            first, total = _content_range(response.headers.get("Content-Range"))
            if first != offset:
                log.warning("%s: server resumed at byte %s, not %d; restarting", url, first, offset)
                _discard(part)
                raise _Restart
            mode, resumed = "ab", True
            log.info("%s: resuming at byte %d", url, offset)
        else:
            if offset:
                log.warning(
                    "%s: server ignored the Range request (HTTP %d); restarting", url, status
                )
            offset, total, mode, resumed = 0, length, "wb", False
            if not _is_html_url(url):
                head = _read_head(read)
                _refuse_html(response.headers.get("Content-Type"), head, url, dest, where)
            meta = {
                "url": url,
                "etag": response.headers.get("ETag"),
                "last_modified": response.headers.get("Last-Modified"),
            }
            write_json(_meta_path(part), meta)
        with (
            open(part, mode) as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                mininterval=2,
                leave=False,
            ) as bar,
        ):
            out.write(head)
            bar.update(len(head))
            while chunk := read(CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
    received = part.stat().st_size
    if total is not None and received != total:
        raise ConnectionError(f"connection closed after {received} of {total} bytes")
    return resumed


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in TRANSIENT_STATUS
    if isinstance(exc, OSError) and exc.errno in LOCAL_ERRNOS:
        return False
    reason = getattr(exc, "reason", None)
    if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(
        reason, ssl.SSLCertVerificationError
    ):
        return False  # a certificate problem does not go away by asking again
    return isinstance(exc, (OSError, http.client.HTTPException))


def _retry_after(exc: BaseException) -> float | None:
    if isinstance(exc, urllib.error.HTTPError):
        value = exc.headers.get("Retry-After", "")
        if value.strip().isdigit():
            return float(value)
    return None


def _download(
    url: str,
    dest: Path,
    sha256: str | None,
    timeout: float,
    attempts: int,
    backoff: float,
    max_backoff: float,
    where: str,
    sha256_prefix: str | None = None,
    verify: Callable[[Path, str], None] | None = None,
) -> str:
    """Download ``url`` to ``dest`` (see ``download``); return the file's sha256."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(dest)
    expected = _normalized_hash(sha256)
    prefix = _normalized_hash(sha256_prefix)
    failures, restarted_for_hash, resumed = 0, False, False
    last_error: BaseException | None = None
    while True:
        offset, validator = _resume_state(url, part)
        try:
            resumed |= _transfer(url, part, offset, validator, timeout, dest, where)
        except _Restart:
            if offset:
                continue  # the next request asks for the whole file
            last_error = ConnectionError("the server answered a range it was not asked for")
        except urllib.error.HTTPError as exc:
            if not _is_transient(exc):
                raise _http_failure(exc, url, dest, where) from exc
            last_error = exc
        except SourceRefused:
            _discard(part)  # an HTML page is no part of the file
            raise
        except DownloadError:
            raise
        except Exception as exc:
            if not _is_transient(exc):
                raise
            last_error = exc
        else:
            observed = sha256_file(part)
            wrong = (expected and observed != expected) or (
                prefix and not observed.startswith(prefix)
            )
            if wrong:
                if resumed and not restarted_for_hash:
                    # A resumed file can be spliced from two upstream versions
                    # (a server without validators): one clean download decides.
                    log.warning("%s: sha256 mismatch after a resume; downloading again", url)
                    _discard(part)
                    restarted_for_hash, resumed, failures = True, False, 0
                    continue
                _discard(part)
                if expected and observed != expected:
                    raise HashMismatch(
                        f"{url}: sha256 mismatch: expected {expected}, got {observed}. The file "
                        "on the server differs from the pinned one; check the URL or update "
                        f"{where}.sha256.",
                        observed,
                        expected,
                    )
                raise HashMismatch(
                    f"{url}: sha256 is {observed}, but the file name ends in -{prefix}: by the "
                    "torch.hub convention the publisher put the first hex digits of the file's "
                    f"sha256 there, so the server sent another file than the one published "
                    f"(replaced, truncated or corrupt). Nothing was kept. If you have checked "
                    f"that this file is right, pin its full hash in {where}.sha256.",
                    observed,
                    prefix,
                )
            if verify is not None:
                try:
                    verify(part, observed)
                except BaseException:
                    _discard(part)
                    raise
            os.replace(part, dest)
            _meta_path(part).unlink(missing_ok=True)
            return observed
        # Only attempts that made no progress count: a flaky link that drops a
        # large file every few hundred MB still completes.
        progressed = part.exists() and part.stat().st_size > offset
        failures = 0 if progressed else failures + 1
        if failures >= attempts:
            if isinstance(last_error, urllib.error.HTTPError):
                if last_error.code == 429:
                    raise _http_failure(last_error, url, dest, where) from last_error
                cause = f"HTTP {last_error.code} {last_error.reason}"
            else:
                cause = repr(last_error)
            kept = f" The partial file {part} is kept; a rerun resumes it." if part.exists() else ""
            raise DownloadError(
                f"{url}: download failed after {attempts} attempts without progress "
                f"({cause}).{kept} {_hand_placement(dest, where)}"
            ) from last_error
        delay = 0.0 if progressed else min(max_backoff, backoff * 2 ** (failures - 1))
        delay = max(delay, min(max_backoff, _retry_after(last_error) or 0.0))
        log.warning("download of %s failed (%r); retrying in %.1f s", url, last_error, delay)
        _sleep(delay)


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    timeout: float = 60.0,
    attempts: int = 5,
    backoff: float = 1.0,
    *,
    max_backoff: float = 60.0,
    config_key: str | None = None,
    sha256_prefix: str | None = None,
    verify: Callable[[Path, str], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` atomically, resuming, and check its sha256 when given.

    Bytes go to ``<dest>.part`` (with ``<dest>.part.json``: the URL and the
    server's ETag / Last-Modified); an interrupted download, in this call or a
    later one, resumes with a ``Range`` request guarded by ``If-Range``. A server
    that ignores the range (200) or cannot satisfy it (416) restarts the file.
    Transient failures (dropped connections, timeouts, 408/429/5xx) are retried
    with exponential backoff (``backoff`` s, doubling, at most ``max_backoff``,
    at least the server's ``Retry-After``); ``attempts`` counts consecutive
    attempts that made no progress. ``timeout`` bounds the connection and each
    read, in seconds. The file is renamed to ``dest`` only once complete and
    verified. Refusals (401/403/429 after retries, an HTML page where a file was
    expected) raise ``SourceRefused``; other 4xx ``DownloadError``; a wrong
    hash ``HashMismatch``. ``config_key`` is the config block the URL comes from
    (``datasets.<name>.source``, ``weights.<name>``), for the messages.
    ``sha256_prefix`` (see ``hash_prefix``) must begin the file's sha256, like
    ``sha256``. ``verify(path, sha256)`` runs on the complete, hash-checked
    file before it is renamed; whatever it raises discards the file and
    propagates.
    """
    where = config_key or "datasets.<name>.source"
    _download(
        url, Path(dest), sha256, timeout, attempts, backoff, max_backoff, where,
        sha256_prefix, verify,
    )  # fmt: skip
    return Path(dest)


def _url_filename(url: str) -> str:
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    return name or "download"


# --------------------------------------------------------------------------- npm


def npm_tarball_name(package: str, version: str) -> str:
    """The file ``npm pack`` writes for a package: ``@scope/name`` -> ``scope-name-<v>.tgz``."""
    return f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"


def npm_pack(spec: str, destination: str | Path, registry: str | None = None) -> tuple[Path, dict]:
    """Fetch one npm tarball with ``npm pack <spec> --pack-destination <folder>``.

    ``spec`` is ``<package>@<version>`` or a tarball URL. Returns the tarball (in
    a fresh hidden folder under ``destination``; the caller moves it and removes
    the folder) and npm's JSON description of it (``filename``, ``integrity``...).
    Lifecycle scripts are never run. npm's own cache, proxy, retry and timeout
    settings apply (``npm config``); ``registry`` overrides the registry, for
    scoped packages too.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise DownloadError(
            f"npm pack {spec}: npm is not installed (not on PATH); install Node.js with npm "
            "(https://nodejs.org)"
        )
    # Absolute: npm runs with this folder as its working directory, where a
    # relative --pack-destination would point below itself.
    folder = Path(tempfile.mkdtemp(prefix=".npm-pack-", dir=Path(destination).resolve()))
    command = [npm, "pack", spec, "--pack-destination", str(folder), "--json"]
    command += ["--ignore-scripts", "--loglevel", "error"]
    if registry:
        command += ["--registry", registry]
        if spec.startswith("@"):
            # A scope-specific registry in the user's .npmrc would win over --registry.
            command.append(f"--{spec.split('/')[0]}:registry={registry}")
    log.info("running %s", " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True, cwd=folder, check=False)
    try:
        described = json.loads(result.stdout or "null")
    except ValueError:
        described = None
    if result.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        error = described.get("error", {}) if isinstance(described, dict) else {}
        last_lines = result.stderr.strip().splitlines()[-3:]
        summary = error.get("summary") or " / ".join(last_lines) or "no output"
        code = error.get("code") or f"exit status {result.returncode}"
        cls = SourceRefused if code in ("E401", "E403", "E429") else DownloadError
        raise cls(f"npm pack {spec} failed ({code}): {summary}")
    entry = described[0] if isinstance(described, list) and described else {}
    tarballs = sorted(folder.glob("*.tgz"))
    named = folder / entry.get("filename", "")
    tarball = named if entry.get("filename") and named.is_file() else None
    if tarball is None and len(tarballs) == 1:
        tarball = tarballs[0]
    if tarball is None:
        shutil.rmtree(folder, ignore_errors=True)
        raise DownloadError(f"npm pack {spec}: npm reported success but wrote no single .tgz")
    return tarball, entry


# --------------------------------------------------------------------------- archives


def is_archive_litter(name: str) -> bool:
    """macOS litter: ``__MACOSX/`` resource forks, ``._*`` AppleDouble files, ``.DS_Store``."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts:
        return False
    return "__MACOSX" in parts or parts[-1].startswith("._") or parts[-1] == ".DS_Store"


def _check_member(archive: Path, name: str) -> None:
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise InputError(
            archive, f"archive member {name!r} has an absolute path; refusing to unpack"
        )
    if ".." in posix.parts:
        raise InputError(
            archive, f"archive member {name!r} leaves the target folder (..); refusing"
        )


def _inside(path: str, base: str) -> bool:
    return os.path.commonpath([path, base]) == base


def is_archive(path: str | Path) -> bool:
    """Whether ``path`` is a zip or tar (plain, gz, bz2, xz) archive, judged by content."""
    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)


def _unpack_zip(archive: Path, staging: Path) -> int:
    skipped = 0
    base = os.path.realpath(staging)
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        for info in members:
            _check_member(archive, info.filename)
        for info in tqdm(members, desc=f"unpack {archive.name}", unit="file", mininterval=2):
            if is_archive_litter(info.filename):
                skipped += 1
                continue
            target = os.path.join(staging, info.filename)
            # realpath resolves links unpacked earlier, so no member is written through one.
            if not _inside(os.path.realpath(target), base):
                raise InputError(archive, f"archive member {info.filename!r} leaves the target")
            if stat.S_ISLNK(info.external_attr >> 16):
                link = bundle.read(info).decode("utf-8", "replace")
                pointed = os.path.realpath(os.path.join(os.path.dirname(target), link))
                if os.path.isabs(link) or not _inside(pointed, base):
                    raise InputError(
                        archive, f"archive member {info.filename!r} links outside ({link!r})"
                    )
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.symlink(link, target)
                continue
            bundle.extract(info, staging)
    return skipped


def _unpack_tar(archive: Path, staging: Path) -> int:
    with tarfile.open(archive) as bundle:
        members = bundle.getmembers()
        for member in members:
            _check_member(archive, member.name)
        kept = [member for member in members if not is_archive_litter(member.name)]
        try:
            # The "data" filter refuses links that point outside, device files
            # and setuid bits, and drops owners.
            bundle.extractall(
                staging,
                members=tqdm(kept, desc=f"unpack {archive.name}", unit="file", mininterval=2),
                filter="data",
            )
        except tarfile.FilterError as exc:
            raise InputError(archive, f"unsafe archive member: {exc}") from exc
    return len(members) - len(kept)


def unpack_archive(archive: str | Path, target: str | Path) -> int:
    """Unpack a zip or tar archive into ``target`` safely and atomically; return entries skipped.

    The whole archive is refused (``InputError``) if any member has an absolute
    path or ``..``, or is a link pointing outside ``target``. ``__MACOSX/``,
    ``._*`` and ``.DS_Store`` entries are skipped. ``target`` is replaced only
    once everything is unpacked.
    """
    archive, target = Path(archive), Path(target)
    with atomic_dir(target) as staging:
        try:
            if zipfile.is_zipfile(archive):
                skipped = _unpack_zip(archive, staging)
            elif tarfile.is_tarfile(archive):
                skipped = _unpack_tar(archive, staging)
            else:
                raise InputError(archive, "not a zip or tar archive")
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
            raise InputError(archive, f"corrupt or truncated archive ({exc})") from exc
    if skipped:
        log.info("%s: skipped %d macOS metadata entries (__MACOSX, ._*)", archive, skipped)
    return skipped


def unpack(archive: str | Path, target: str | Path) -> Path:
    """Unpack ``archive`` into ``target`` (see ``unpack_archive``) and return ``target``."""
    unpack_archive(archive, target)
    return Path(target)


# --------------------------------------------------------------------------- sources


def source_kind(source: Mapping[str, Any], where: str = "datasets.<name>.source") -> str:
    """``path``, ``npm`` or ``url``: the kind a source block fetches (in that precedence)."""
    for kind in ("path", "npm", "url"):
        if source.get(kind):
            return kind
    raise InputError(where, "needs one of url, npm or path")


def _check_npm(source: Mapping[str, Any], where: str) -> tuple[str, str, str]:
    """(npm spec, lock key, tarball file name) of an npm source, validated."""
    package, version = str(source["npm"]), source.get("version")
    registry = source.get("registry")
    if registry and not re.match(r"^https?://", str(registry)):
        raise InputError(f"{where}.registry", f"{registry!r} is not an http(s) URL")
    if re.match(r"^https?://", package):
        if version:
            raise InputError(f"{where}.version", "give no version with a tarball URL in npm")
        return package, f"npm:{package}", _url_filename(package)
    if not NPM_NAME.match(package):
        raise InputError(f"{where}.npm", f"{package!r} is not an npm package name or tarball URL")
    if not version or not EXACT_VERSION.match(str(version)):
        raise InputError(
            f"{where}.version",
            f"npm package {package} needs an exact version (like 15.1.2), not {version!r}: "
            "a range or tag would fetch a different tarball when a new release comes out",
        )
    spec = f"{package}@{version}"
    return spec, f"npm:{spec}", npm_tarball_name(package, str(version))


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
        raise _lock_mismatch(what, key, lock_file, observed, local.stat().st_size, entry)
    log.info("using %s (fetched earlier or placed by hand; sha256 %s)", local, observed)
    return observed


def _check_pin_against_lock(
    pin: str | None, entry: Mapping | None, key: str, lock_file: Path, where: str
) -> None:
    if pin and entry is not None and entry.get("sha256") != pin:
        raise LockMismatch(
            f"{key}: {where}.sha256 pins {pin}, but {lock_file} recorded "
            f"{entry.get('sha256')} for it. If you changed the pin because the upstream file "
            f'changed, delete the entry "{key}" from {lock_file} and run again; otherwise '
            "restore the pin."
        )


def _fetch_url(
    source: Mapping[str, Any], workdir: Path, lock_file: Path, where: str, **options: Any
) -> tuple[Path, dict[str, Any]]:
    url = source["url"]
    dest = workdir / "download" / _url_filename(url)
    pin = _normalized_hash(source.get("sha256"))
    entry = read_lock(lock_file).get(url)
    _check_pin_against_lock(pin, entry, url, lock_file, where)
    what = f"{url} (local copy {dest})"
    if dest.is_file():
        observed = _existing_ok(dest, what, url, pin, entry, lock_file, where)
    else:
        expected = pin or (entry or {}).get("sha256")
        try:
            observed = _download(url, dest, expected, **options, where=where)
        except HashMismatch as exc:
            if pin or entry is None:
                raise
            raise _lock_mismatch(url, url, lock_file, exc.observed, None, entry) from exc
    record_in_lock(lock_file, url, observed, dest.stat().st_size, "url", what)
    return dest, {"kind": "url", "url": url, "sha256": observed, "lock_key": url}


def _fetch_npm(
    source: Mapping[str, Any], workdir: Path, lock_file: Path, where: str
) -> tuple[Path, dict[str, Any]]:
    spec, key, filename = _check_npm(source, where)
    registry = source.get("registry")
    dest = workdir / "download" / filename
    pin = _normalized_hash(source.get("sha256"))
    entry = read_lock(lock_file).get(key)
    _check_pin_against_lock(pin, entry, key, lock_file, where)
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
            hint = _hand_placement(dest, where, "npm", how)
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
                raise _lock_mismatch(what, key, lock_file, observed, tarball.stat().st_size, entry)
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
    if local.is_file():
        observed = sha256_file(local)
        pin = _normalized_hash(source.get("sha256"))
        if pin and observed != pin:
            raise InputError(
                local,
                f"sha256 is {observed}, the config pins {pin} "
                f"({where}.sha256): a different file, or a stale pin",
            )
        record_in_lock(lock_file, str(local), observed, local.stat().st_size, "path")
        info.update(sha256=observed, lock_key=str(local))
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

    The record holds ``root`` (the folder the catalog walks), ``kind``, the
    source's own keys and, for a file, ``file``, ``sha256``, ``bytes`` and
    ``lock_key``/``lock_file``; archives add ``skipped_entries``.
    """
    workdir = Path(workdir)
    lock_file = Path(lock_file) if lock_file is not None else default_lock_file(workdir)
    where = config_key or default_config_key(workdir)
    kind = source_kind(source, where)
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
        info["skipped_entries"] = unpack_archive(local, root)
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
