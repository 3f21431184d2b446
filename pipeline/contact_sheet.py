"""Contact sheets of aligned faces: one PNG per data set to check alignment by eye.

Each tile is an aligned output of the workflow with two marks drawn on it:
the FFHQ template's eye positions (green crosses, where the recipe puts the eyes
of an upright frontal face) and the detected eye centres mapped into the tile
(red dots). When alignment works the dots sit on the crosses. Tiles of images
without a detected face (centre-crop fallback) get an orange frame and no dots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from pipeline import align as face_align
from pipeline.io import InputError, load_array, save_png

TEMPLATE_COLOUR = (0, 200, 0)
DETECTED_COLOUR = (230, 0, 0)
FALLBACK_COLOUR = (255, 140, 0)
LABEL_HEIGHT = 14
GAP = 2


def pick_rows(faces: pd.DataFrame, max_images: int) -> pd.DataFrame:
    """Rows to show: detected faces first, then fallbacks, at most ``max_images``.

    Fallbacks get up to a quarter of the sheet so that failures stay visible
    without crowding out the faces the sheet is meant to check.
    """
    aligned = faces[faces["status"].isin(["ok", "fallback"])].sort_values("image_id")
    found = aligned[aligned["status"] == "ok"]
    fallback = aligned[aligned["status"] == "fallback"]
    n_fallback = min(len(fallback), max(max_images // 4, max_images - len(found)))
    return pd.concat([found.head(max_images - n_fallback), fallback.head(n_fallback)])


def _mark_tile(tile: Image.Image, row: pd.Series, aligned_size: int) -> Image.Image:
    """Draw the template eyes and the detected eyes onto a tile (tile size may differ)."""
    scale = tile.width / aligned_size
    draw = ImageDraw.Draw(tile)
    arm = max(2, round(tile.width / 40))
    if row["status"] == "fallback":
        draw.rectangle((0, 0, tile.width - 1, tile.height - 1), outline=FALLBACK_COLOUR, width=3)
        return tile
    for x, y in face_align.template_eye_positions(aligned_size):
        x, y = (x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5
        draw.line((x - arm, y, x + arm, y), fill=TEMPLATE_COLOUR, width=1)
        draw.line((x, y - arm, x, y + arm), fill=TEMPLATE_COLOUR, width=1)
    landmarks = np.asarray(row["landmarks"], dtype=np.float64).reshape(68, 2)
    quad = np.asarray(row["quad"], dtype=np.float64).reshape(4, 2)
    eyes = face_align.map_to_aligned(face_align.eye_centres(landmarks), quad, aligned_size)
    radius = max(1.5, arm / 2)
    for x, y in (eyes + 0.5) * scale - 0.5:
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=DETECTED_COLOUR)
    return tile


def contact_sheet(
    faces: pd.DataFrame,
    aligned_dirs: Sequence[str | Path],
    aligned_size: int,
    out: str | Path,
    columns: int = 8,
    max_images: int = 64,
    tile_size: int = 128,
) -> int:
    """Write a contact sheet PNG of aligned faces; return the number of tiles.

    faces: rows of ``faces.parquet`` (image_id, status, landmarks, quad).
    aligned_dirs: the shard folders of the ``aligned_size`` outputs.
    Tiles are ``tile_size`` px (resized with Lanczos when different from
    ``aligned_size``), captioned with the image id; see the module docstring
    for the marks. A data set with no aligned image gives a one-tile sheet
    saying so, so that the file always exists.
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
    sheet = Image.new("RGB", (n_columns * cell[0] + GAP, n_rows * cell[1] + GAP), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if rows.empty:
        draw.text((GAP + 4, GAP + 4), "no aligned images", fill=(0, 0, 0))
    for index, (_, row) in enumerate(rows.iterrows()):
        path = paths[row["image_id"]]
        array = load_array(path)
        if array.shape[:2] != (aligned_size, aligned_size):
            raise InputError(path, f"expected {aligned_size}x{aligned_size}, got {array.shape}")
        tile = Image.fromarray(array)
        if tile_size != aligned_size:
            tile = tile.resize((tile_size, tile_size), Image.Resampling.LANCZOS)
        tile = _mark_tile(tile, row, aligned_size)
        left = GAP + (index % n_columns) * cell[0]
        top = GAP + (index // n_columns) * cell[1]
        sheet.paste(tile, (left, top))
        label = str(row["image_id"])
        max_chars = max(4, tile_size // 6)
        if len(label) > max_chars:  # keep the distinctive end of long ids
            label = ".." + label[-(max_chars - 2) :]
        draw.text((left, top + tile_size + 1), label, fill=(0, 0, 0))
    save_png(out, sheet)
    return len(rows)
