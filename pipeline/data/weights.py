"""The weights stage: every checkpoint fetched and checked before any GPU job.

Compute nodes are often offline, so GPU jobs only ever read files this stage
put under ``resources/weights/``.

Source kinds (``weights.<name>``; when several are given, as after an
override, ``path`` wins over ``url``, which wins over ``gdrive``), each with
an optional ``sha256``:

- ``{"path": "<file>"}``: a local copy.
- ``{"url": "https://..."}``: downloaded with ``pipeline.data.sources.download``
  (resume, retries, refusals recognised).
- ``{"gdrive": "<file id>"}``: a Google Drive file, downloaded with ``gdown``
  (which knows Drive's confirmation pages), see :mod:`pipeline.data.sources.drive`.

A file appears under its final name only once it has passed every check:

1. its sha256 equals ``sha256`` when pinned, else the hash the lock file
   recorded at the first fetch; when no hash is pinned and the file's name
   carries the prefix of its own sha256 (``...-61556be5.pth``, the torch.hub
   convention OpenMMLab, BasicSR and torchvision publish with), it starts with
   that prefix;
2. it loads as a weights-only PyTorch checkpoint;
3. its sha256 and size are recorded in the lock file
   (``resources/sources.lock.json``, shared with the data sources) under the
   URL, ``gdrive:<id>`` or the local file's absolute path; a later fetch that
   finds another file there fails instead of replacing it.

A local ``path`` is fetched again whenever its content changes (the rule's
fingerprint param, :mod:`pipeline.data.sources.fingerprint`): a checkpoint
replaced at the same path is then refused with the message that says how to
accept it, never used unseen.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipeline.data.sources import WEIGHTS_KINDS, download, drive, source_kind
from pipeline.data.sources.http import looks_like_html, url_filename
from pipeline.data.sources.lock import (
    HashMismatch,
    LockMismatch,
    SourceRefused,
    check_pin_against_lock,
    hand_placement,
    hash_prefix,
    local_change,
    lock_mismatch,
    normalized_hash,
    read_lock,
    record_in_lock,
)
from pipeline.io import InputError, atomic_path, sha256_file
from pipeline.torch_io import load_weights_file

log = logging.getLogger(__name__)

KINDS = WEIGHTS_KINDS


def check_checkpoint(path: Path, origin: str | Path | None = None) -> None:
    """Fail unless ``path`` is a loadable PyTorch checkpoint (plain tensors, no pickled code).

    The error names ``origin`` (where the file came from) when given.
    """
    try:
        load_weights_file(path)
    except InputError as exc:
        raise InputError(
            origin or path, f"not a loadable PyTorch checkpoint ({exc.problem})"
        ) from exc


def fetch_weights(name: str, source: Mapping[str, Any], out: Path, lock_file: Path) -> Path:
    """Place checkpoint ``name`` at ``out`` from its source, checked (see the module docstring).

    ``lock_file`` is the workflow's ``resources/sources.lock.json``. An
    interrupted download resumes on the next run (from ``<out>.part``, or
    gdown's own partial file for Drive). Errors name the source, ``out`` and
    the config key to set instead (``weights.<name>.path``).
    """
    out, lock_file = Path(out), Path(lock_file)
    where = f"weights.{name}"
    kind = source_kind(source, where, WEIGHTS_KINDS)
    pin = normalized_hash(source.get("sha256"))
    if kind == "path":
        _copy_local(name, Path(source["path"]).expanduser(), pin, out, lock_file, where)
    elif kind == "url":
        _download_url(name, source["url"], pin, out, lock_file, where)
    else:
        _download_drive(name, str(source["gdrive"]), pin, out, lock_file, where)
    return out


def _verifier(
    name: str, key: str, kind: str, origin: str | Path, lock_file: Path
) -> Callable[[Path, str], None]:
    """Checks 2 and 3 of the module docstring, for a complete file and its sha256."""

    def verify(path: Path, observed: str) -> None:
        check_checkpoint(path, origin=origin)
        what = f"checkpoint {name!r} ({origin})"
        record_in_lock(lock_file, key, observed, path.stat().st_size, kind, what, weights=name)

    return verify


def _copy_local(
    name: str, local: Path, pin: str | None, out: Path, lock_file: Path, where: str
) -> None:
    if not local.is_file():
        raise InputError(
            local,
            f"checkpoint {name!r} not found; set {where}.path to a local copy ({where}.sha256 "
            f"pins its hash), or put the file at {out} by hand (then used unchecked)",
        )
    key = str(local.resolve())
    check_pin_against_lock(pin, read_lock(lock_file).get(key), key, lock_file, where)
    prefix = None if pin else hash_prefix(local.name)
    with atomic_path(out) as tmp:
        shutil.copyfile(local, tmp)
        observed = sha256_file(tmp)
        if pin and observed != pin:
            raise InputError(local, f"sha256 is {observed}, {where}.sha256 pins {pin}")
        if prefix and not observed.startswith(prefix):
            raise InputError(
                local,
                f"sha256 is {observed}, but the file name ends in -{prefix}, which by the "
                "torch.hub convention begins the sha256 of the published file: this is another "
                f"file (a partial download?). If it is right, pin its hash in {where}.sha256.",
            )
        check_checkpoint(tmp, origin=local)
        size = tmp.stat().st_size

        def changed(entry: Mapping[str, Any]) -> LockMismatch:
            return local_change(local.resolve(), where, key, lock_file, observed, size, entry)

        what = f"checkpoint {name!r} ({local})"
        record_in_lock(lock_file, key, observed, size, "path", what, mismatch=changed, weights=name)


def _download_url(
    name: str, url: str, pin: str | None, out: Path, lock_file: Path, where: str
) -> None:
    entry = read_lock(lock_file).get(url)
    check_pin_against_lock(pin, entry, url, lock_file, where)
    expected = pin or (entry or {}).get("sha256")
    prefix = None if pin else hash_prefix(url_filename(url))
    verify = _verifier(name, url, "url", url, lock_file)
    try:
        download(url, out, expected, config_key=where, sha256_prefix=prefix, verify=verify)
    except HashMismatch as exc:
        if pin or entry is None or exc.expected != entry.get("sha256"):
            raise
        raise lock_mismatch(url, url, lock_file, exc.observed, None, entry) from exc


def _download_drive(
    name: str, file_id: str, pin: str | None, out: Path, lock_file: Path, where: str
) -> None:
    key = f"gdrive:{file_id}"
    entry = read_lock(lock_file).get(key)
    check_pin_against_lock(pin, entry, key, lock_file, where)
    url = drive.DRIVE_URL.format(id=file_id)
    how = (
        f"download {url} in a web browser (signed in to Google if Drive asks; past a quota, "
        "a copy in your own Drive has its own)"
    )
    hint = hand_placement(out, where, "gdrive", how)
    # gdown writes its partial file beside this name and renames it here when complete.
    staged = out.with_name(f".{out.name}.gdrive-{file_id}")
    out.parent.mkdir(parents=True, exist_ok=True)
    drive.gdown_download(url, staged, hint)
    try:
        with open(staged, "rb") as handle:
            head = handle.read(4096)
        if looks_like_html(head):
            raise SourceRefused(
                f"{url}: Google Drive sent an HTML page instead of the file (its download "
                f"quota, virus-scan or sign-in page). Nothing was kept. {hint}"
            )
        observed = sha256_file(staged)
        expected = pin or (entry or {}).get("sha256")
        if expected and observed != expected:
            if pin:
                raise HashMismatch(
                    f"{url}: sha256 mismatch: expected {pin}, got {observed}. The Drive file "
                    f"differs from the pinned one; check {where}.gdrive or update "
                    f"{where}.sha256.",
                    observed,
                    pin,
                )
            raise lock_mismatch(url, key, lock_file, observed, staged.stat().st_size, entry)
        _verifier(name, key, "gdrive", url, lock_file)(staged, observed)
        os.replace(staged, out)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
