"""Archives unpacked safely: no absolute paths, no ``..``, no links outside, no macOS litter,
and no archive bombs.

**Limits** (the config's ``archives``; :func:`pipeline.config.schema_defaults`
when none are given): ``max_bytes`` (total uncompressed bytes), ``max_members``
and ``max_ratio`` (uncompressed bytes over the archive's size, checked once
an archive unpacks to more than ``RATIO_FLOOR`` bytes: a small archive cannot
fill a disk, whatever its ratio). The sizes an archive declares are checked
before anything is unpacked (a tar's headers are read one by one, so a member
declaring a terabyte is refused before its data is decompressed); then the
bytes written are counted, and unpacking stops at the limit, since a zip's
declared sizes can lie. A refused archive leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from pipeline.config import schema_defaults
from pipeline.io import InputError, atomic_dir

log = logging.getLogger(__name__)

# Bytes under which an archive is never refused for its compression ratio.
RATIO_FLOOR = 100_000_000
_CHUNK = 1 << 20


class _Budget:
    """The limits of one unpacking, and what the archive has used of them so far."""

    def __init__(self, archive: Path, limits: Mapping[str, Any] | None) -> None:
        limits = {**schema_defaults("archives"), **(limits or {})}
        self.archive = archive
        self.max_bytes = int(limits["max_bytes"])
        self.max_members = int(limits["max_members"])
        self.max_ratio = float(limits["max_ratio"])
        self.size = max(archive.stat().st_size, 1)
        self.members = 0
        self.declared = 0
        self.written = 0

    def _refuse(self, problem: str, key: str) -> InputError:
        return InputError(
            self.archive,
            f"{problem}; refusing to unpack it (an archive bomb, or a limit too low for this "
            f"data set: if the archive is right, raise archives.{key} in the config)",
        )

    def declare(self, name: str, size: int) -> None:
        """Count one member and the size it declares; raise past a limit."""
        self.members += 1
        self.declared += max(size, 0)
        if self.members > self.max_members:
            raise self._refuse(
                f"has more than archives.max_members = {self.max_members:,} members", "max_members"
            )
        if self.declared > self.max_bytes:
            raise self._refuse(
                f"its members declare more than archives.max_bytes = {self.max_bytes:,} bytes "
                f"({self.declared:,} up to {name!r})",
                "max_bytes",
            )
        ratio = self.declared / self.size
        if self.declared > RATIO_FLOOR and ratio > self.max_ratio:
            raise self._refuse(
                f"its members declare {self.declared:,} bytes up to {name!r}, {ratio:,.0f} times "
                f"its own {self.size:,} bytes, above archives.max_ratio = {self.max_ratio:g}",
                "max_ratio",
            )

    def write(self, name: str, size: int) -> None:
        """Count ``size`` bytes about to be written for member ``name``; raise past the limit."""
        self.written += size
        if self.written > self.max_bytes:
            raise self._refuse(
                f"unpacked more than archives.max_bytes = {self.max_bytes:,} bytes while "
                f"writing {name!r} (more than its members declared: their sizes lie)",
                "max_bytes",
            )


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


def _copy_zip_member(
    bundle: zipfile.ZipFile, info: zipfile.ZipInfo, target: str, budget: _Budget
) -> None:
    """Write one zip member to ``target``, counting every byte against the budget."""
    if info.is_dir():
        os.makedirs(target, exist_ok=True)
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with bundle.open(info) as source, open(target, "wb") as sink:
        while chunk := source.read(_CHUNK):
            budget.write(info.filename, len(chunk))
            sink.write(chunk)


def _unpack_zip(archive: Path, staging: Path, budget: _Budget) -> int:
    skipped = 0
    base = os.path.realpath(staging)
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        for info in members:
            _check_member(archive, info.filename)
            budget.declare(info.filename, info.file_size)
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
            _copy_zip_member(bundle, info, target, budget)
    return skipped


def _unpack_tar(archive: Path, staging: Path, budget: _Budget) -> int:
    with tarfile.open(archive) as bundle:
        # Headers are read one at a time, so a member declaring a huge size is
        # refused before its data is decompressed to reach the next header.
        members = []
        for member in bundle:
            _check_member(archive, member.name)
            budget.declare(member.name, member.size if member.isfile() else 0)
            members.append(member)
        kept = [member for member in members if not is_archive_litter(member.name)]

        def data_within_budget(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
            # The "data" filter refuses links that point outside, device files
            # and setuid bits, and drops owners; a tar member's size is exactly
            # what is written, so counting it before extraction stops in time.
            checked = tarfile.data_filter(member, path)
            if checked is not None and checked.isfile():
                budget.write(member.name, checked.size)
            return checked

        try:
            bundle.extractall(
                staging,
                members=tqdm(kept, desc=f"unpack {archive.name}", unit="file", mininterval=2),
                filter=data_within_budget,
            )
        except tarfile.FilterError as exc:
            raise InputError(archive, f"unsafe archive member: {exc}") from exc
    return len(members) - len(kept)


def unpack_archive(
    archive: str | Path, target: str | Path, limits: Mapping[str, Any] | None = None
) -> int:
    """Unpack a zip or tar archive into ``target`` safely and atomically; return entries skipped.

    The whole archive is refused (``InputError``) if any member has an absolute
    path or ``..``, or is a link pointing outside ``target``, or if it passes one
    of ``limits`` (the config's ``archives``: ``max_bytes``, ``max_members``,
    ``max_ratio``; the schema's defaults for those not given; see the module
    docstring). ``__MACOSX/``, ``._*`` and ``.DS_Store`` entries are skipped.
    ``target`` is replaced only once everything is unpacked.
    """
    archive, target = Path(archive), Path(target)
    budget = _Budget(archive, limits)
    with atomic_dir(target) as staging:
        try:
            if zipfile.is_zipfile(archive):
                skipped = _unpack_zip(archive, staging, budget)
            elif tarfile.is_tarfile(archive):
                skipped = _unpack_tar(archive, staging, budget)
            else:
                raise InputError(archive, "not a zip or tar archive")
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
            raise InputError(archive, f"corrupt or truncated archive ({exc})") from exc
    if skipped:
        log.info("%s: skipped %d macOS metadata entries (__MACOSX, ._*)", archive, skipped)
    log.info("%s: %d members, %d bytes unpacked", archive, budget.members, budget.written)
    return skipped


def unpack(
    archive: str | Path, target: str | Path, limits: Mapping[str, Any] | None = None
) -> Path:
    """Unpack ``archive`` into ``target`` (see ``unpack_archive``) and return ``target``."""
    unpack_archive(archive, target, limits)
    return Path(target)
