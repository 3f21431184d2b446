"""Shared pieces of the photo-set kinds (``yale``, ``croppedyale``, ``celebahq``).

Conventions every kind follows:

- A *candidate* is a file that is, or claims to be, an image of the set. Each
  candidate becomes one manifest row with a ``status``:

  ``ok``         decoded fully; usable through ``pipeline.io.load_rgb`` (16-bit,
                 CMYK, palette and alpha images are usable too: ``mode`` keeps the
                 mode of the file, before any conversion);
  ``error``      cannot be used (empty, truncated, not decodable); ``reason`` says why;
  ``skipped``    a file of the set that is not one of its images by the set's own rules
                 (e.g. Extended Yale B's ambient frames), or a name the kind does not know;
  ``duplicate``  a byte-identical copy of another candidate with the same labels
                 (same ``subject`` and ``condition``), which would count one image twice.

- Byte-identical images with *different* labels (Yale's ``subject04.sad`` is a copy
  of ``subject04.normal``) stay ``ok``: the data set defines them as two images.
  ``duplicate_of`` names, for every row whose bytes equal an earlier usable row
  (by ``image_id``), that row's id; it is null for the first of each content.

- Files that are not candidates (archive litter such as ``__MACOSX/`` and ``._*``,
  documentation, per-folder metadata) get no row; the kind logs their count by reason.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from pipeline.data.kinds.images import inspect_file, reason_family
from pipeline.io import InputError, load_rgb
from pipeline.vocabulary import DUPLICATE, ERROR, MANIFEST_COLUMNS, OK, SKIPPED

log = logging.getLogger(__name__)

# The statuses of photo kinds (every catalog status but the emoji sets' `missing`).
STATUSES = (OK, ERROR, SKIPPED, DUPLICATE)
SPLITS = ("train", "val", "test")
# Modes load_rgb turns into RGB by a plain, lossless expansion; any other mode is
# converted once during the catalog to prove it can be.
PLAIN_MODES = {"L", "RGB"}
LITTER = "archive litter (__MACOSX/, hidden or ._ files)"
NULLABLE_TEXT = ("subject", "condition", "duplicate_of", "expression", "lighting", "split_rule")
DUPLICATE_REASON = "byte-identical copy of another file with the same labels (see duplicate_of)"


def safe_id(text: str) -> str:
    """A file-name-safe id: '/' becomes '__', anything outside [A-Za-z0-9._+-] becomes '_'."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text.replace("/", "__"))


def is_litter(relpath: Path) -> bool:
    """macOS resource forks and hidden files, which archives carry by accident."""
    return any(part == "__MACOSX" or part.startswith(".") for part in relpath.parts)


def files_under(folder: Path) -> list[Path]:
    """Every file under ``folder``, recursively, sorted by path."""
    return sorted(path for path in folder.rglob("*") if path.is_file())


def find_layout(
    root: Path, matches: Callable[[Path], bool], expected: str, max_depth: int = 2
) -> Path:
    """The folder under ``root`` (itself, or up to ``max_depth`` levels down) that ``matches``.

    The shallowest match wins; two matches at the same depth are ambiguous and
    raise. ``expected`` describes the layout for the error message.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "source folder not found")
    found = search_layout(root, matches, max_depth)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = ", ".join(str(folder.relative_to(root)) for folder in found)
        raise InputError(
            root, f"several folders look like {expected}: {names}; point the source at one"
        )
    entries = sorted(child.name for child in root.iterdir())
    shown = ", ".join(entries[:12]) + (", ..." if len(entries) > 12 else "")
    raise InputError(
        root,
        f"expected layout not found: {expected}, at the top or up to {max_depth} levels "
        f"down; the folder holds: {shown or 'nothing'}",
    )


def search_layout(root: Path, matches: Callable[[Path], bool], max_depth: int = 2) -> list[Path]:
    """The shallowest folders under ``root`` (itself included) that ``matches``; [] if none."""
    level = [Path(root)]
    for _ in range(max_depth + 1):
        found = [folder for folder in level if matches(folder)]
        if found:
            return found
        level = [
            child
            for folder in level
            for child in sorted(folder.iterdir())
            if child.is_dir() and not is_litter(Path(child.name))
        ]
    return []


def check_limit(options: Mapping[str, Any]) -> int | None:
    limit = options.get("limit")
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"datasets.<name>.limit must be a positive integer or null, not {limit!r}")
    return limit


def check_split(options: Mapping[str, Any]) -> str:
    split = options.get("split", "test")
    if split not in SPLITS:
        raise ValueError(f"datasets.<name>.split must be one of {SPLITS}, not {split!r}")
    return split


def inspect_files(paths: Sequence[str], desc: str, max_pixels: int | None = None) -> pd.DataFrame:
    """Decode each file fully; one row per path with the columns of ``inspect_file``.

    A decodable image in a mode other than L or RGB is also converted with
    ``load_rgb`` (what every later stage does), so that a mode the pipeline
    cannot convert is an ``error`` here rather than a crash later. Images of
    more than ``max_pixels`` pixels are ``error`` rows.
    """
    records = []
    for path in tqdm(paths, desc=desc, unit="img", mininterval=5):
        info = inspect_file(Path(path), max_pixels)
        if info["status"] == OK and info["mode"] not in PLAIN_MODES:
            try:
                load_rgb(path, max_pixels)
            except (ValueError, OSError) as exc:
                info.update(
                    status=ERROR,
                    reason=f"cannot convert mode {info['mode']} to RGB ({Path(path).name}: {exc})",
                )
        records.append(info)
    columns = [
        "bytes", "width", "height", "mode", "format", "exif_orientation", "status", "reason",
        "sha256",
    ]  # fmt: skip
    return pd.DataFrame.from_records(records, columns=columns)


def inspect_rows(frame: pd.DataFrame, desc: str, max_pixels: int | None = None) -> pd.DataFrame:
    """Fill the decode columns of ``frame`` (which has ``path`` and may have a preset status).

    Rows whose ``status`` is already set (e.g. ``skipped`` by a naming rule) keep
    it and their reason; they are still read for size and sha256.
    """
    details = inspect_files(list(frame["path"]), desc, max_pixels)
    details.index = frame.index
    preset = frame["status"].notna() if "status" in frame else pd.Series(False, index=frame.index)
    out = frame.drop(columns=[c for c in details.columns if c in frame.columns]).join(details)
    if preset.any():
        out.loc[preset, "status"] = frame.loc[preset, "status"]
        out.loc[preset, "reason"] = frame.loc[preset, "reason"]
    return out


def mark_duplicates(frame: pd.DataFrame, labels: Iterable[str] = ("subject", "condition")) -> None:
    """Set ``duplicate_of`` and turn same-label copies into ``duplicate`` rows, in place.

    Only ``ok`` rows are compared and changed; a ``duplicate_of`` the kind set
    before (on rows it resolved itself) is kept.

    Among usable rows with the same sha256, the first by ``image_id`` is the
    original. A later row with equal labels is a duplicate (``status`` duplicate);
    one with different labels stays ``ok`` and only records ``duplicate_of``.
    """
    labels = list(labels)
    if "duplicate_of" not in frame:
        frame["duplicate_of"] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    usable = frame[frame["status"] == OK]
    shared = usable[usable["sha256"].duplicated(keep=False)].sort_values("image_id", kind="stable")
    for _, group in shared.groupby("sha256", sort=False):
        first = group.iloc[0]
        for index, row in group.iloc[1:].iterrows():
            frame.at[index, "duplicate_of"] = first["image_id"]
            same_labels = all(_same(row[name], first[name]) for name in labels)
            if same_labels:
                frame.at[index, "status"] = DUPLICATE
                frame.at[index, "reason"] = DUPLICATE_REASON


def _same(a: Any, b: Any) -> bool:
    if a is None or (isinstance(a, float) and pd.isna(a)):
        return b is None or (isinstance(b, float) and pd.isna(b))
    return a == b


def finish(
    frame: pd.DataFrame,
    kind: str,
    root: Path,
    extra_columns: Sequence[str],
    not_candidates: Counter[str],
) -> pd.DataFrame:
    """Order the columns, check ids and statuses, sort by id and log the counts per reason."""
    frame = frame.sort_values("image_id", kind="stable").reset_index(drop=True)
    repeated = frame["image_id"][frame["image_id"].duplicated()].tolist()
    if repeated:
        raise InputError(root, f"{kind}: image ids are not unique: {repeated[:5]}")
    unknown = set(frame["status"]) - set(STATUSES)
    if unknown:
        raise AssertionError(f"{kind}: unknown status values {sorted(unknown)}")
    frame = frame.astype(
        {"width": "Int64", "height": "Int64", "bytes": "Int64", "exif_orientation": "Int64"}
    )
    frame["reason"] = frame["reason"].fillna("")
    # Text columns that may hold only nulls would otherwise be stored with parquet's null
    # type; "string" keeps nulls as nulls (a plain str cast would write "None" on pandas 2).
    frame = frame.astype({name: "string" for name in NULLABLE_TEXT if name in frame})
    columns = list(MANIFEST_COLUMNS) + [c for c in extra_columns if c not in MANIFEST_COLUMNS]
    frame = frame[columns]
    by_status = frame["status"].value_counts().to_dict()
    by_reason = Counter(
        f"{status}: {reason_family(reason)}"
        for status, reason in zip(frame["status"], frame["reason"], strict=True)
        if status != OK
    )
    log.info(
        "%s: cataloged %d candidate images under %s: %s; not ok by reason: %s; "
        "files that are not candidates: %s",
        kind, len(frame), root, by_status, dict(by_reason) or "none",
        dict(not_candidates) or "none",
    )  # fmt: skip
    return frame


def unique_ids(ids: pd.Series, relpaths: pd.Series) -> pd.Series:
    """``ids``, with every id that is not unique replaced by the safe form of its relpath."""
    clash = ids.duplicated(keep=False)
    return ids.where(~clash, relpaths.map(safe_id))
