"""The training pairs of a data set split, decoded once into arrays.

A training job reads thousands of small images many times over; decoding PNGs
each iteration would keep a GPU waiting. The rule ``training_crops`` stacks a
split's aligned HR crops and the LR inputs the prepare stage made of them
(``results/<dataset>/aligned/<hr>/`` and ``lr<lr>/<kernel>/from<size>/``, the
very files the evaluation reads) into a folder of ``.npy`` arrays, once per
data set, split, task and kernel; the training loop memory-maps them.

Folder layout: ``hr.npy`` (N, hr, hr, 3) uint8 RGB, ``lr.npy`` (N, lr, lr, 3)
uint8 RGB, ``image_ids.txt`` (N lines, sorted). An image is in a split when its
manifest row's ``split`` says so and the prepare stage made its aligned crop
(faces that were neither found nor framed have none).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.io import InputError, atomic_dir, load_array

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Crops:
    """A split's pairs: ``hr`` (N, H, H, 3) and ``lr`` (N, h, h, 3) uint8 RGB, their ids."""

    hr: np.ndarray
    lr: np.ndarray
    image_ids: list[str]

    def __len__(self) -> int:
        return len(self.image_ids)


def cache_crops(
    manifest: str | Path,
    aligned_dirs: Sequence[str | Path],
    lr_dirs: Sequence[str | Path],
    split: str,
    out_dir: str | Path,
) -> int:
    """Stack the pairs of ``split`` into ``out_dir`` (layout in the module docstring).

    ``aligned_dirs`` and ``lr_dirs``: every shard's folder of aligned crops and
    of LR inputs. Raises ``InputError`` naming the manifest when the split holds
    no image with an aligned crop, and naming the LR folder when an aligned crop
    has no LR input. Returns the number of pairs.
    """
    frame = pd.read_parquet(manifest, columns=["image_id", "split"])
    wanted = set(frame.loc[frame["split"] == split, "image_id"].astype(str))
    hr_paths = {p.stem: p for d in aligned_dirs for p in Path(d).glob("*.png") if p.stem in wanted}
    lr_paths = {p.stem: p for d in lr_dirs for p in Path(d).glob("*.png") if p.stem in hr_paths}
    if not hr_paths:
        counts = frame["split"].value_counts().to_dict()
        raise InputError(
            manifest,
            f"no aligned image of split {split!r} (the manifest's splits: {counts}); set the "
            "data set's split options, or the model's split / val_split",
        )
    missing = sorted(set(hr_paths) - set(lr_paths))
    if missing:
        raise InputError(lr_dirs[0], f"no LR input for {len(missing)} aligned crops: {missing[:5]}")
    ids = sorted(hr_paths)
    hr = np.stack([load_array(hr_paths[i]) for i in ids])
    lr = np.stack([load_array(lr_paths[i]) for i in ids])
    with atomic_dir(out_dir) as staging:
        np.save(staging / "hr.npy", hr)
        np.save(staging / "lr.npy", lr)
        (staging / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    log.info("%s: %d pairs %s -> %s", split, len(ids), lr.shape[1:3], hr.shape[1:3])
    return len(ids)


def read_crops(folder: str | Path, limit: int | None = None) -> Crops:
    """The pairs cached in ``folder`` (memory-mapped), the first ``limit`` only if set."""
    folder = Path(folder)
    ids = (folder / "image_ids.txt").read_text(encoding="utf-8").split()
    hr = np.load(folder / "hr.npy", mmap_mode="r")
    lr = np.load(folder / "lr.npy", mmap_mode="r")
    if not (len(ids) == len(hr) == len(lr)):
        raise InputError(folder, f"{len(ids)} ids, {len(hr)} HR and {len(lr)} LR images differ")
    if limit is not None:
        ids, hr, lr = ids[:limit], hr[:limit], lr[:limit]
    return Crops(hr=hr, lr=lr, image_ids=ids)
