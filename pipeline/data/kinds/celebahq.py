"""Kind ``celebahq``: CelebA-HQ faces, as laid out by CelebAMask-HQ, or any folder of faces.

Layouts, tried in this order:

1. CelebAMask-HQ: a folder ``CelebA-HQ-img/`` of ``<n>.jpg`` (n = 0..29999, 1024x1024),
   at the source root or up to three levels down (``CelebAMask-HQ/CelebA-HQ-img``),
   or the root itself. Only that folder is cataloged (the segmentation masks of
   ``CelebAMask-HQ-mask-anno/`` are not source images). Ids are the number,
   zero-padded to five digits (``00042``), so ids sort in numeric order. Other
   image files in the folder get status ``skipped``.
2. Any other folder of images (e.g. ``shared/data/celeba_hq``): every image file
   under the root, ids from the relative path as in ``pipeline.data.kinds.images``.
   No attributes unless ``attributes_file`` is given or the attribute file lies
   at the root.

Attributes: ``CelebAMask-HQ-attribute-anno.txt`` beside ``CelebA-HQ-img/`` (or at
the source root, or the ``attributes_file`` option). Format: a first line with the
number of entries (optional), a line of attribute names, then one line per image:
the file name and one value per attribute, separated by any whitespace (or commas,
as in the CSV copies). 1 is true; -1 and 0 are false (copies differ). Lines are
matched to images by file name, else by number (``0.jpg`` = ``0.png`` = id 00000).
Each attribute becomes a nullable boolean column ``attr_<Name>`` (null for an
image without an attribute line); each true one a category ``attr:<Name>``.
No attribute file, no ``attr_`` columns.

Split (``split_rule``):

- ``official`` (what ``auto`` picks when both files are found beside
  ``CelebA-HQ-img/`` or at the root, or given as ``mapping_file`` and
  ``partition_file``): CelebA's own partition of the image each CelebA-HQ image
  was made from, via ``CelebA-HQ-to-CelebA-mapping.txt`` (``idx orig_idx
  orig_file``) and CelebA's ``list_eval_partition.txt`` (``<file> 0|1|2`` for
  train/val/test; the ``.csv`` copy works too). On the 30,000 images this gives
  24,183 / 2,993 / 2,824. Images the files do not cover fall back to ``seeded``.
- ``seeded`` (what ``auto`` picks otherwise): the images are ranked by
  ``sha256("<split_seed>:<image_id>")``; the first round(n/30) are test, the next
  round(n/30) val, the rest train: 28,000 / 1,000 / 1,000 for the full set. An
  image's split depends only on its id, the seed and the set size's cut points,
  not on the platform or library versions.
- ``fixed``: every image gets the ``split`` option.

The rule each row got is in the ``split_rule`` column. Splits are assigned over
the whole set first; then ``splits`` (a list) keeps only the images of those
splits (the others are left out of the manifest and counted in the log), and
``limit`` keeps the first N rows by id.

Options: ``split`` (default ``test``, for ``fixed``), ``split_rule`` (``auto``),
``split_seed`` (0), ``splits`` (null = all), ``limit`` (null),
``attributes_file``, ``mapping_file``, ``partition_file`` (null = look beside the
images; a relative path is looked up under the source root, then in the working
directory).

Byte-identical files get status ``duplicate`` (the first by id stays ``ok``): no
labels tell them apart, so each would count one image twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.data.kinds.images import IMAGE_SUFFIXES, image_id_for, is_ignored
from pipeline.data.kinds.photos import (
    LITTER,
    SPLITS,
    check_limit,
    check_split,
    files_under,
    finish,
    inspect_rows,
    is_litter,
    mark_duplicates,
    safe_id,
    search_layout,
    unique_ids,
)
from pipeline.io import InputError
from pipeline.vocabulary import SKIPPED

log = logging.getLogger(__name__)

# The options of this kind (datasets.<name>.<option>), besides every kind's own.
OPTIONS = frozenset(
    {"split_rule", "split_seed", "splits", "attributes_file", "mapping_file", "partition_file"}
)

IMAGE_FOLDER = "CelebA-HQ-img"
ATTRIBUTE_FILE = "CelebAMask-HQ-attribute-anno.txt"
MAPPING_FILE = "CelebA-HQ-to-CelebA-mapping.txt"
PARTITION_FILES = ("list_eval_partition.txt", "list_eval_partition.csv")
# The proportions of the 30,000-image set: 28,000 train, 1,000 val, 1,000 test.
HELD_OUT_FRACTION = 1000 / 30000
SPLIT_RULES = ("auto", "official", "seeded", "fixed")
PARTITION_CODES = {"0": "train", "1": "val", "2": "test"}
ATTRIBUTE_VALUES = {"1": True, "-1": False, "0": False}
# Header words some copies (the CSV ones) put above the file-name column.
FILE_COLUMN_LABELS = {"image_id", "image", "file", "filename", "file_name", "idx", "name"}
EXPECTED = (
    f"CelebAMask-HQ's {IMAGE_FOLDER}/<n>.jpg (e.g. CelebAMask-HQ/{IMAGE_FOLDER}/0.jpg), "
    "or a folder of face images"
)
SKIP_NAME = f"name in {IMAGE_FOLDER}/ is not <number>.<image extension>"


def read_attributes(path: Path) -> tuple[list[str], dict[str, list[bool]]]:
    """Attribute names and the values per file name of a CelebA(-HQ) attribute file.

    Raises ``InputError`` naming the file and line for anything malformed.
    """
    lines = [
        (number, line.replace(",", " ").split())
        for number, line in enumerate(
            Path(path).read_text(encoding="utf-8-sig").splitlines(), start=1
        )
        if line.strip()
    ]
    if not lines:
        raise InputError(path, "attribute file is empty")
    declared = None
    if len(lines[0][1]) == 1 and lines[0][1][0].isdecimal():
        declared = int(lines[0][1][0])
        lines = lines[1:]
    if not lines:
        raise InputError(path, "attribute file has no line of attribute names")
    names, entries = lines[0][1], lines[1:]
    if names and names[0].lower() in FILE_COLUMN_LABELS:
        names = names[1:]  # the header names the file column too (CSV copies: image_id)
    if len(set(names)) != len(names):
        raise InputError(path, f"attribute names repeat: {names}")
    values: dict[str, list[bool]] = {}
    for number, tokens in entries:
        if len(tokens) != len(names) + 1:
            raise InputError(
                path,
                f"line {number}: {len(tokens) - 1} values for {len(names)} attributes",
            )
        try:
            row = [ATTRIBUTE_VALUES[token] for token in tokens[1:]]
        except KeyError as exc:
            raise InputError(
                path, f"line {number}: value {exc.args[0]!r} is not 1, -1 or 0"
            ) from None
        if tokens[0] in values:
            raise InputError(path, f"line {number}: {tokens[0]} is listed twice")
        values[tokens[0]] = row
    if declared is not None and declared != len(values):
        raise InputError(
            path, f"the first line says {declared} entries, the file has {len(values)}"
        )
    return names, values


def read_mapping(path: Path) -> dict[int, int]:
    """CelebA-HQ index -> number of the CelebA file it was made from (``119614.jpg`` -> 119614)."""
    mapping: dict[int, int] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        tokens = line.split()
        if not tokens or not tokens[0].isdecimal():
            continue  # header (idx orig_idx orig_file) or blank
        try:
            # orig_idx counts from 0, CelebA file names from 1: prefer the file name.
            source = int(Path(tokens[2]).stem) if len(tokens) > 2 else int(tokens[1]) + 1
        except (IndexError, ValueError):
            raise InputError(path, f"line {number}: expected 'idx orig_idx orig_file'") from None
        mapping[int(tokens[0])] = source
    if not mapping:
        raise InputError(path, "no mapping lines (idx orig_idx orig_file) found")
    return mapping


def read_partition(path: Path) -> dict[int, str]:
    """CelebA file number -> split, from ``list_eval_partition.txt`` (or its ``.csv`` copy)."""
    partition: dict[int, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8-sig").splitlines(), 1):
        tokens = line.replace(",", " ").split()
        if len(tokens) != 2 or not Path(tokens[0]).stem.isdecimal():
            if number == 1 or not tokens:
                continue  # header of the CSV copy, or blank
            raise InputError(path, f"line {number}: expected '<file> <0|1|2>'")
        if tokens[1] not in PARTITION_CODES:
            raise InputError(path, f"line {number}: partition {tokens[1]!r} is not 0, 1 or 2")
        partition[int(Path(tokens[0]).stem)] = PARTITION_CODES[tokens[1]]
    if not partition:
        raise InputError(path, "no partition lines (<file> <0|1|2>) found")
    return partition


def seeded_splits(image_ids: Sequence[str], seed: int) -> list[str]:
    """The ``seeded`` rule: train/val/test for each id, 28:1:1 (see the module docstring)."""
    held_out = int(len(image_ids) * HELD_OUT_FRACTION + 0.5)
    rank = sorted(
        range(len(image_ids)),
        key=lambda i: hashlib.sha256(f"{seed}:{image_ids[i]}".encode()).hexdigest(),
    )
    splits = ["train"] * len(image_ids)
    for position, index in enumerate(rank[: 2 * held_out]):
        splits[index] = "test" if position < held_out else "val"
    return splits


def catalog(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Catalog CelebA-HQ (or a folder of faces) into a manifest (see the module docstring)."""
    limit, split = check_limit(options), check_split(options)
    rule, seed, keep = _split_options(options)
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "source folder not found")
    folders = search_layout(root, lambda f: f.name.lower() == IMAGE_FOLDER.lower(), 3)
    if len(folders) > 1:
        names = ", ".join(str(f.relative_to(root)) for f in folders)
        raise InputError(root, f"several {IMAGE_FOLDER} folders: {names}; point the source at one")
    if folders:
        frame, not_candidates = _structured(root, folders[0])
        beside = [folders[0].parent, root]
    else:
        frame, not_candidates = _plain(root)
        beside = [root]
    if frame.empty:
        raise InputError(root, f"no image files found; expected {EXPECTED}")
    frame["image_id"] = unique_ids(frame["image_id"], frame["relpath"])
    frame = frame.sort_values("image_id", kind="stable").reset_index(drop=True)
    _assign_splits(frame, rule, seed, split, options, root, beside)
    frame = _keep_splits(frame, keep)
    if limit is not None:
        frame = frame.iloc[:limit].copy()
    attribute_columns = _attach_attributes(frame, options, root, beside)
    frame = inspect_rows(
        frame, desc=f"catalog celebahq {root.name}", max_pixels=options.get("max_pixels")
    )
    mark_duplicates(frame)
    columns = ["split_rule", "duplicate_of", *attribute_columns]
    return finish(frame, "celebahq", root, columns, not_candidates)


def _split_options(options: Mapping[str, Any]) -> tuple[str, int, list[str] | None]:
    rule = options.get("split_rule", "auto")
    if rule not in SPLIT_RULES:
        raise ValueError(f"datasets.<name>.split_rule must be one of {SPLIT_RULES}, not {rule!r}")
    seed = options.get("split_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"datasets.<name>.split_seed must be a non-negative integer, not {seed!r}")
    keep = options.get("splits")
    if keep is not None and (not keep or any(s not in SPLITS for s in keep)):
        raise ValueError(
            f"datasets.<name>.splits must be a non-empty list of {SPLITS}, not {keep!r}"
        )
    return rule, seed, None if keep is None else list(keep)


def _row(root: Path, path: Path, image_id: str, number: int | None) -> dict[str, Any]:
    return {
        "image_id": image_id,
        "path": str(path),
        "relpath": str(path.relative_to(root)),
        "number": number,
        "status": None,
        "reason": None,
        "subject": None,
        "condition": None,
    }


def _structured(root: Path, folder: Path) -> tuple[pd.DataFrame, Counter[str]]:
    rows, not_candidates = [], Counter()
    files = files_under(folder)
    width = max([5, *(len(str(int(p.stem))) for p in files if p.stem.isdecimal())])
    for path in files:
        relative = path.relative_to(folder)
        if is_litter(relative):
            not_candidates[LITTER] += 1
        elif is_ignored(relative):
            not_candidates["document or metadata file"] += 1
        elif path.stem.isdecimal() and path.suffix.lower() in IMAGE_SUFFIXES:
            rows.append(_row(root, path, f"{int(path.stem):0{width}d}", int(path.stem)))
        else:
            row = _row(root, path, safe_id(str(relative)), None)
            row.update(status=SKIPPED, reason=SKIP_NAME)
            rows.append(row)
    log.info("celebahq: CelebAMask-HQ layout; cataloging %s only", folder)
    return pd.DataFrame.from_records(rows, columns=list(_row(root, root, "", None))), not_candidates


def _plain(root: Path) -> tuple[pd.DataFrame, Counter[str]]:
    rows, not_candidates = [], Counter()
    files = [p.relative_to(root) for p in files_under(root)]
    kept = [rel for rel in files if not is_litter(rel) and not is_ignored(rel)]
    not_candidates[LITTER] = sum(1 for rel in files if is_litter(rel))
    not_candidates["document or metadata file"] = len(files) - len(kept) - not_candidates[LITTER]
    # One top folder common to every file (an unpacked archive's) adds nothing to the ids.
    tops = {rel.parts[0] for rel in kept}
    common = len(tops) == 1 and all(len(rel.parts) > 1 for rel in kept)
    for rel in kept:
        short = Path(*rel.parts[1:]) if common else rel
        number = int(rel.stem) if rel.stem.isdecimal() else None
        rows.append(_row(root, root / rel, image_id_for(short), number))
    log.info("celebahq: no %s folder; cataloging every image under %s", IMAGE_FOLDER, root)
    not_candidates = Counter({k: v for k, v in not_candidates.items() if v})
    return pd.DataFrame.from_records(rows, columns=list(_row(root, root, "", None))), not_candidates


def _option_file(options: Mapping[str, Any], key: str, root: Path) -> Path | None:
    value = options.get(key)
    if value is None:
        return None
    path = Path(value).expanduser()
    tried = [path] if path.is_absolute() else [root / path, Path.cwd() / path]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise InputError(
        value, f"datasets.<name>.{key} not found (looked at {', '.join(map(str, tried))})"
    )


def _beside(names: Iterable[str], folders: Sequence[Path]) -> Path | None:
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def _assign_splits(
    frame: pd.DataFrame,
    rule: str,
    seed: int,
    split: str,
    options: Mapping[str, Any],
    root: Path,
    beside: Sequence[Path],
) -> None:
    if rule == "fixed":
        frame["split"] = split
        frame["split_rule"] = "fixed"
        return
    official: dict[int, str] = {}
    if rule in ("auto", "official"):
        mapping_path = _option_file(options, "mapping_file", root) or _beside(
            [MAPPING_FILE], beside
        )
        partition_path = _option_file(options, "partition_file", root) or _beside(
            PARTITION_FILES, beside
        )
        if mapping_path and partition_path:
            mapping, partition = read_mapping(mapping_path), read_partition(partition_path)
            official = {hq: partition[src] for hq, src in mapping.items() if src in partition}
            log.info("celebahq: CelebA partition from %s and %s", mapping_path, partition_path)
        elif rule == "official":
            raise InputError(
                root,
                f"split_rule official needs {MAPPING_FILE} and {PARTITION_FILES[0]} "
                "(beside the images, at the root, or as mapping_file / partition_file)",
            )
    numbers = [None if n is None or pd.isna(n) else int(n) for n in frame["number"]]
    splits = [official.get(n) if n is not None else None for n in numbers]
    rules = ["official" if s is not None else "seeded" for s in splits]
    rest = [i for i, s in enumerate(splits) if s is None]
    seeded = seeded_splits([frame["image_id"].iat[i] for i in rest], seed)
    for i, value in zip(rest, seeded, strict=True):
        splits[i] = value
    frame["split"] = splits
    frame["split_rule"] = rules
    if official and len(rest):
        log.warning("celebahq: %d images not in the CelebA partition: seeded split", len(rest))
    log.info(
        "celebahq: splits %s by rule %s",
        frame["split"].value_counts().to_dict(), frame["split_rule"].value_counts().to_dict(),
    )  # fmt: skip


def _keep_splits(frame: pd.DataFrame, keep: list[str] | None) -> pd.DataFrame:
    if keep is None:
        return frame
    left_out = frame.loc[~frame["split"].isin(keep), "split"].value_counts().to_dict()
    if left_out:
        log.info("celebahq: splits option %s leaves out %s", keep, left_out)
    return frame[frame["split"].isin(keep)].reset_index(drop=True)


def _attach_attributes(
    frame: pd.DataFrame, options: Mapping[str, Any], root: Path, beside: Sequence[Path]
) -> list[str]:
    """Add ``attr_<Name>`` columns and ``attr:`` categories; return the column names."""
    path = _option_file(options, "attributes_file", root) or _beside([ATTRIBUTE_FILE], beside)
    frame["categories"] = [[] for _ in range(len(frame))]
    if path is None:
        log.info("celebahq: no attribute file; no attributes")
        return []
    names, values = read_attributes(path)
    by_number = {
        int(Path(name).stem): row for name, row in values.items() if Path(name).stem.isdecimal()
    }
    found = []
    for file, number in zip(frame["path"], frame["number"], strict=True):
        row = values.get(Path(file).name)
        if row is None and number is not None and not pd.isna(number):
            row = by_number.get(int(number))
        found.append(row)
    missing = sum(row is None for row in found)
    if missing:
        log.warning("celebahq: %d of %d images have no line in %s", missing, len(frame), path)
    columns = [f"attr_{name}" for name in names]
    for position, column in enumerate(columns):
        frame[column] = pd.array(
            [None if row is None else row[position] for row in found], dtype="boolean"
        )
    frame["categories"] = [
        [] if row is None else [f"attr:{name}" for name, on in zip(names, row, strict=True) if on]
        for row in found
    ]
    log.info("celebahq: %d attributes from %s", len(names), path)
    return columns
