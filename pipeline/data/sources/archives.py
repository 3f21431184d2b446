"""Archives unpacked safely: no absolute paths, no ``..``, no links outside, no macOS litter."""

from __future__ import annotations

import logging
import os
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from pipeline.io import InputError, atomic_dir

log = logging.getLogger(__name__)


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
