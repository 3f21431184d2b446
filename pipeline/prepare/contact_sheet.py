"""Contact sheets of aligned faces: one PNG per data set to check alignment by eye.

Each tile is an aligned output of the workflow, framed and marked by how it was
made (its ``alignment``, see :mod:`pipeline.vocabulary`):

- ``aligned`` (face detected, FFHQ alignment): the FFHQ template's eye positions
  (green crosses, where the recipe puts the eyes of an upright frontal face) and
  the detected eye centres mapped into the tile (red dots). When alignment works
  the dots sit on the crosses.
- ``prealigned`` (the data set's own crop, through its declared template
  square): a blue frame; green crosses where the template says the set's eyes
  typically are (when it says), red dots on the detected eyes when a face was
  found (many pre-aligned images have none).
- ``centre_crop`` (no face found): an orange frame and no marks.

A legend under the tiles names the marks that appear on the sheet.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from pipeline.geometry import Template, map_to_aligned
from pipeline.io import InputError, load_array, save_png
from pipeline.prepare.align import eye_centres, template_eye_positions
from pipeline.vocabulary import ALIGNED, ALIGNMENTS, CENTRE_CROP, FALLBACK, OK, PREALIGNED

log = logging.getLogger(__name__)

TEMPLATE_COLOUR = (0, 200, 0)
DETECTED_COLOUR = (230, 0, 0)
FALLBACK_COLOUR = (255, 140, 0)
PREALIGNED_COLOUR = (0, 90, 255)
FRAME_WIDTH = 3
LABEL_HEIGHT = 14
LEGEND_LINE = 14
GAP = 2
LEGEND = {
    "template": (TEMPLATE_COLOUR, "green cross: where the template puts the eyes"),
    "detected": (DETECTED_COLOUR, "red dot: detected eye centre"),
    PREALIGNED: (
        PREALIGNED_COLOUR,
        "blue frame: prealigned (the data set's crop, template square)",
    ),
    CENTRE_CROP: (FALLBACK_COLOUR, "orange frame: no face found, centre crop"),
}


def _alignments(faces: pd.DataFrame) -> pd.Series:
    """Each row's alignment; tables without the column (older runs) derive it from status."""
    if "alignment" in faces.columns:
        return faces["alignment"]
    return faces["status"].map({OK: ALIGNED, FALLBACK: CENTRE_CROP})


def pick_rows(faces: pd.DataFrame, max_images: int) -> pd.DataFrame:
    """Rows to show: framed faces (aligned, prealigned) first, then centre crops, at most
    ``max_images``.

    Centre crops get up to a quarter of the sheet so that failures stay visible
    without crowding out the faces the sheet is meant to check.
    """
    faces = faces.assign(alignment=_alignments(faces))
    shown = faces[faces["alignment"].isin(ALIGNMENTS)].sort_values("image_id")
    found = shown[shown["alignment"] != CENTRE_CROP]
    fallback = shown[shown["alignment"] == CENTRE_CROP]
    n_fallback = min(len(fallback), max(max_images // 4, max_images - len(found)))
    return pd.concat([found.head(max_images - n_fallback), fallback.head(n_fallback)])


def _has_landmarks(row: pd.Series) -> bool:
    value = row.get("landmarks")
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _cross(draw: ImageDraw.ImageDraw, x: float, y: float, arm: int) -> None:
    draw.line((x - arm, y, x + arm, y), fill=TEMPLATE_COLOUR, width=1)
    draw.line((x, y - arm, x, y + arm), fill=TEMPLATE_COLOUR, width=1)


def _mark_tile(
    tile: Image.Image,
    row: pd.Series,
    aligned_size: int,
    template: Template | None = None,
) -> set[str]:
    """Draw the row's marks onto a tile (tile size may differ); return the legend keys used."""
    scale = tile.width / aligned_size
    draw = ImageDraw.Draw(tile)
    arm = max(2, round(tile.width / 40))
    used: set[str] = set()
    alignment = row["alignment"]
    if alignment == CENTRE_CROP:
        box = (0, 0, tile.width - 1, tile.height - 1)
        draw.rectangle(box, outline=FALLBACK_COLOUR, width=FRAME_WIDTH)
        return {CENTRE_CROP}
    if alignment == PREALIGNED:
        box = (0, 0, tile.width - 1, tile.height - 1)
        draw.rectangle(box, outline=PREALIGNED_COLOUR, width=FRAME_WIDTH)
        used.add(PREALIGNED)
        eyes = template.eye_positions(aligned_size) if template is not None else None
        crosses = [] if eyes is None else [tuple(eye) for eye in eyes]
    else:
        crosses = list(template_eye_positions(aligned_size))
    for x, y in crosses:
        _cross(draw, (x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5, arm)
        used.add("template")
    if _has_landmarks(row):
        landmarks = np.asarray(row["landmarks"], dtype=np.float64).reshape(68, 2)
        quad = np.asarray(row["quad"], dtype=np.float64).reshape(4, 2)
        eyes = map_to_aligned(eye_centres(landmarks), quad, aligned_size)
        radius = max(1.5, arm / 2)
        for x, y in (eyes + 0.5) * scale - 0.5:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=DETECTED_COLOUR)
        used.add("detected")
    return used


def contact_sheet(
    faces: pd.DataFrame,
    aligned_dirs: Sequence[str | Path],
    aligned_size: int,
    out: str | Path,
    columns: int = 8,
    max_images: int = 64,
    tile_size: int = 128,
    template: Template | None = None,
) -> int:
    """Write a contact sheet PNG of aligned faces; return the number of tiles.

    faces: rows of ``faces.parquet`` (image_id, status, alignment, landmarks, quad).
    aligned_dirs: the shard folders of the ``aligned_size`` outputs.
    template: the data set's template when it is ``prealigned`` (its typical eye
    positions are marked), else None.
    Tiles are ``tile_size`` px (resized with Lanczos when different from
    ``aligned_size``), captioned with the image id; see the module docstring
    for the marks and the legend. A data set with no aligned image gives a
    one-tile sheet saying so, so that the file always exists.
    """
    if columns < 1 or max_images < 1 or tile_size < 16:
        raise ValueError(
            f"columns and max_images must be >= 1 and tile_size >= 16, "
            f"got {columns}, {max_images}, {tile_size}"
        )
    paths = {path.stem: path for folder in aligned_dirs for path in Path(folder).glob("*.png")}
    rows = pick_rows(faces, max_images)
    rows = rows[rows["image_id"].isin(paths)]
    n_tiles = max(len(rows), 1)
    n_columns = min(columns, n_tiles)
    n_rows = math.ceil(n_tiles / n_columns)
    cell = (tile_size + GAP, tile_size + LABEL_HEIGHT + GAP)
    tiles: list[tuple[Image.Image, str]] = []
    used: set[str] = set()
    for _, row in rows.iterrows():
        path = paths[row["image_id"]]
        array = load_array(path)
        if array.shape[:2] != (aligned_size, aligned_size):
            raise InputError(path, f"expected {aligned_size}x{aligned_size}, got {array.shape}")
        tile = Image.fromarray(array)
        if tile_size != aligned_size:
            tile = tile.resize((tile_size, tile_size), Image.Resampling.LANCZOS)
        used |= _mark_tile(tile, row, aligned_size, template)
        tiles.append((tile, str(row["image_id"])))
    legend = [LEGEND[key] for key in LEGEND if key in used]
    grid_height = n_rows * cell[1] + GAP
    width = max(n_columns * cell[0] + GAP, _legend_width(legend))
    sheet = Image.new("RGB", (width, grid_height + len(legend) * LEGEND_LINE), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if rows.empty:
        draw.text((GAP + 4, GAP + 4), "no aligned images", fill=(0, 0, 0))
    for index, (tile, label) in enumerate(tiles):
        left = GAP + (index % n_columns) * cell[0]
        top = GAP + (index // n_columns) * cell[1]
        sheet.paste(tile, (left, top))
        max_chars = max(4, tile_size // 6)
        if len(label) > max_chars:  # keep the distinctive end of long ids
            label = ".." + label[-(max_chars - 2) :]
        draw.text((left, top + tile_size + 1), label, fill=(0, 0, 0))
    for line, (colour, text) in enumerate(legend):
        top = grid_height + line * LEGEND_LINE
        draw.rectangle((GAP + 1, top + 2, GAP + 9, top + 10), fill=colour)
        draw.text((GAP + 14, top + 1), text, fill=(0, 0, 0))
    save_png(out, sheet)
    return len(rows)


def write_contact_sheet(
    faces_path: str | Path,
    aligned_dirs: Sequence[str | Path],
    size: int,
    out: str | Path,
    options: Mapping[str, Any],
    template: Mapping[str, Any] | None = None,
) -> int:
    """The contact sheet stage: :func:`contact_sheet` of a data set's ``faces.parquet``.

    ``options``: ``prepare.contact_sheet`` (columns, max_images, tile_size);
    ``template``: a prealigned data set's template (``Template.as_dict``), else None.
    """
    faces = pd.read_parquet(faces_path)
    known = Template.from_dict(template) if template else None
    shown = contact_sheet(faces, aligned_dirs, int(size), out, **options, template=known)
    log.info("contact sheet %s: %d of %d images", out, shown, len(faces))
    return shown


def _legend_width(legend: Sequence[tuple[tuple[int, int, int], str]]) -> int:
    """Pixels the legend's longest line needs (Pillow's default bitmap font)."""
    if not legend:
        return 0
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    return GAP + 14 + max(round(probe.textlength(text)) for _, text in legend) + 2 * GAP
