"""HTTP(S) downloads that resume, retry, check hashes and recognise refusals."""

from __future__ import annotations

import errno
import http.client
import json
import logging
import os
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.data.sources.lock import (
    DownloadError,
    HashMismatch,
    SourceRefused,
    hand_placement,
    normalized_hash,
)
from pipeline.io import sha256_file, write_json

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "facebench/0.1 (python-urllib)"
# Statuses worth another try: the server or a proxy is busy or briefly broken.
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
# Local failures that another try cannot fix.
LOCAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}

_sleep = time.sleep  # tests replace it to observe the backoff without waiting


class _Restart(Exception):
    """The partial file cannot be resumed; start again from byte 0 at once."""


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


def _is_html_url(url: str) -> bool:
    return urllib.parse.urlparse(url).path.lower().endswith((".html", ".htm", ".xhtml"))


def _is_html_type(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media in ("text/html", "application/xhtml+xml")


def looks_like_html(head: bytes) -> bool:
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
    if looks_like_html(head):
        raise _refused_by_html(url, dest, where, "the content starts with <html")
    if _is_html_type(content_type) and not _looks_binary(head):
        raise _refused_by_html(url, dest, where, f"Content-Type {content_type}")


def _refused_by_html(url: str, dest: Path, where: str, how: str) -> SourceRefused:
    return SourceRefused(
        f"{url}: the server sent an HTML page ({how}) where a file was expected. Hosts such "
        "as Google Drive, Dropbox or institutional servers answer this way when a download "
        "quota is exceeded, a virus-scan or licence confirmation is required, or a login is "
        f"needed. {hand_placement(dest, where)}"
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
        return SourceRefused(f"{url}: {answer}: {why}. {hand_placement(dest, where)}")
    if exc.code in (404, 410):
        return DownloadError(
            f"{url}: {answer}: the file is not (or no longer) there; check "
            f"{where}.url. {hand_placement(dest, where)}"
        )
    return DownloadError(f"{url}: {answer}. {hand_placement(dest, where)}")


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


def download_file(
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
    expected = normalized_hash(sha256)
    prefix = normalized_hash(sha256_prefix)
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
                f"({cause}).{kept} {hand_placement(dest, where)}"
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
    download_file(
        url, Path(dest), sha256, timeout, attempts, backoff, max_backoff, where,
        sha256_prefix, verify,
    )  # fmt: skip
    return Path(dest)


def url_filename(url: str) -> str:
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    return name or "download"
