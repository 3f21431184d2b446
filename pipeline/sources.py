"""Fetching a data set's source: a URL (with sha256) or a local file, archive or folder.

The result of a fetch is a folder of source files on local disk, described by
``source.json``; nothing after the download stage needs the network.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from pipeline.io import InputError, atomic_path, write_json

log = logging.getLogger(__name__)

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download that failed; the message names the URL and what to do."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    url: str,
    dest: Path,
    sha256: str | None = None,
    timeout: float = 60.0,
    attempts: int = 3,
    backoff: float = 2.0,
) -> Path:
    """Download ``url`` to ``dest`` atomically and check its sha256 when given.

    Transient failures (connection errors, 5xx) are retried with exponential
    backoff; a 4xx answer or a hash mismatch fails at once. The partial file
    never appears under ``dest``.
    """
    last_error: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            with atomic_path(dest) as tmp:
                _stream_to(url, tmp, timeout)
                observed = sha256_file(tmp)
                if sha256 and observed.lower() != sha256.lower():
                    raise DownloadError(
                        f"{url}: sha256 mismatch: expected {sha256.lower()}, got {observed}. "
                        "The file on the server differs from the one the config pins; "
                        "check the URL or update datasets.<name>.source.sha256."
                    )
            return dest
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise DownloadError(
                    f"{url}: the server answered HTTP {exc.code} ({exc.reason}). "
                    f"Download the file by hand and set its local path as the source "
                    f"(datasets.<name>.source.path), or place it at {dest}."
                ) from exc
            last_error = exc
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            last_error = exc
        if attempt < attempts:
            delay = backoff ** (attempt - 1)
            log.warning(
                "download of %s failed (%s); retry %d in %.0f s", url, last_error, attempt, delay
            )
            time.sleep(delay)
    raise DownloadError(f"{url}: download failed after {attempts} attempts: {last_error}")


def _stream_to(url: str, target: Path, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "facebench"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(target, "wb") as out:
        total = response.headers.get("Content-Length")
        expected = int(total) if total and total.isdigit() else None
        received = 0
        with tqdm(
            total=expected, unit="B", unit_scale=True, desc=Path(target).name, leave=False
        ) as bar:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received != expected:
        raise ConnectionError(f"{url}: connection closed after {received} of {expected} bytes")


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


def is_archive(path: Path) -> bool:
    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)


def unpack(archive: Path, target: Path) -> Path:
    """Unpack a zip or tar archive into ``target`` safely and atomically.

    Members with absolute paths or ``..`` are rejected (the whole archive is
    refused); tar links and device files are refused by tarfile's ``data`` filter.
    """
    staging = target.with_name(f".{target.name}.unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                for name in bundle.namelist():
                    _check_member(archive, name)
                bundle.extractall(staging)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as bundle:
                for member in bundle.getmembers():
                    _check_member(archive, member.name)
                try:
                    bundle.extractall(staging, filter="data")
                except tarfile.FilterError as exc:
                    raise InputError(archive, f"unsafe archive member: {exc}") from exc
        else:
            raise InputError(archive, "not a zip or tar archive")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def fetch_source(source: dict[str, Any], workdir: Path, record: Path) -> dict[str, Any]:
    """Make a data set's source available locally and describe it in ``record`` (JSON).

    ``source`` is the validated ``datasets.<name>.source`` config: ``{"url", "sha256"?}``
    or ``{"path"}``. ``workdir`` is the data set's folder under ``resources/``.
    The record holds ``root``, the folder the catalog walks.
    """
    workdir = Path(workdir)
    if "url" in source:
        url = source["url"]
        name = Path(urllib.parse.urlparse(url).path).name or "download"
        local = download(url, workdir / "download" / name, source.get("sha256"))
        origin = {"url": url}
    else:
        local = Path(source["path"]).expanduser().resolve()
        if not local.exists():
            raise InputError(local, "source path does not exist (datasets.<name>.source.path)")
        expected = source.get("sha256")
        if expected and local.is_file() and sha256_file(local) != expected.lower():
            raise InputError(
                local,
                f"sha256 is {sha256_file(local)}, the config pins {expected.lower()} "
                "(datasets.<name>.source.sha256): a different file, or a stale pin",
            )
        origin = {"path": str(local)}
    if local.is_dir():
        root = local
    elif is_archive(local):
        root = unpack(local, workdir / "files")
    else:
        root = workdir / "files"
        root.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, root / local.name)
    info = {**origin, "root": str(root.resolve())}
    if local.is_file():
        info["sha256"] = sha256_file(local)
        info["bytes"] = local.stat().st_size
    write_json(record, info)
    return info
