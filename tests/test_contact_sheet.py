"""Contact sheets: layout, eye marks where the alignment puts the eyes, fallbacks and
prealigned images flagged, a legend of the marks used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_align import synthetic_landmarks

from pipeline import geometry
from pipeline.io import InputError, save_png
from pipeline.prepare import align as face_align
from pipeline.prepare.contact_sheet import (
    DETECTED_COLOUR,
    FALLBACK_COLOUR,
    GAP,
    LABEL_HEIGHT,
    LEGEND_LINE,
    PREALIGNED_COLOUR,
    TEMPLATE_COLOUR,
    contact_sheet,
    pick_rows,
)

SIZE = 128


ALIGNMENT_OF = {"ok": "aligned", "fallback": "centre_crop"}


def face_row(image_id: str, status: str = "ok") -> dict:
    alignment = ALIGNMENT_OF.get(status)
    if status != "ok":
        quad = geometry.center_square_quad(200, 200)
        return {
            "image_id": image_id,
            "status": status,
            "alignment": alignment,
            "landmarks": None,
            "quad": quad.ravel(),
        }
    landmarks = synthetic_landmarks((100.0, 90.0), 40.0, 1.03, 0.0)
    quad = face_align.ffhq_quad(landmarks)
    return {
        "image_id": image_id,
        "status": status,
        "alignment": alignment,
        "landmarks": landmarks.ravel(),
        "quad": quad.ravel(),
    }


@pytest.fixture
def shard(tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    folder = tmp_path / "aligned" / str(SIZE) / "shard-0000"
    rows = [face_row(f"img{i}") for i in range(5)] + [face_row("blank", "fallback")]
    rows.append(
        {
            "image_id": "broken",
            "status": "error",
            "alignment": None,
            "landmarks": None,
            "quad": None,
        }
    )
    for row in rows[:-1]:
        save_png(folder / f"{row['image_id']}.png", np.full((SIZE, SIZE, 3), 128, np.uint8))
    return pd.DataFrame(rows), folder


def test_sheet_layout_and_marks(shard, tmp_path: Path) -> None:
    faces, folder = shard
    out = tmp_path / "sheet.png"
    shown = contact_sheet(faces, [folder], SIZE, out, columns=4, tile_size=SIZE)
    assert shown == 6  # the error row has no aligned image
    sheet = np.asarray(Image.open(out))
    cell_w, cell_h = SIZE + GAP, SIZE + LABEL_HEIGHT + GAP
    # Under the tiles, one legend line per mark used: template, detected, centre crop.
    assert sheet.shape == (2 * cell_h + GAP + 3 * LEGEND_LINE, 4 * cell_w + GAP, 3)

    # The synthetic face is upright and frontal: its detected eyes land on the template.
    (left_x, eye_y), _ = face_align.template_eye_positions(SIZE)
    x, y = GAP + round(left_x), GAP + round(eye_y)
    patch = sheet[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3)
    assert any((p == DETECTED_COLOUR).all() for p in patch)
    # The template cross's arms reach past the dot.
    row = sheet[y - 1 : y + 2, x - 3 : x + 4].reshape(-1, 3)
    assert (row == TEMPLATE_COLOUR).all(axis=1).sum() >= 2

    # The fallback tile (sixth: second row, second column) is framed, with no eye dots.
    fallback = sheet[GAP + cell_h : GAP + cell_h + SIZE, GAP + cell_w : GAP + cell_w + SIZE]
    assert (fallback[0, SIZE // 2] == FALLBACK_COLOUR).all()
    assert not (fallback.reshape(-1, 3) == DETECTED_COLOUR).all(axis=1).any()


def test_sheet_is_deterministic_and_resizes_tiles(shard, tmp_path: Path) -> None:
    faces, folder = shard
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    contact_sheet(faces, [folder], SIZE, first, tile_size=96)
    contact_sheet(faces, [folder], SIZE, second, tile_size=96)
    assert first.read_bytes() == second.read_bytes()
    assert Image.open(first).width == 6 * (96 + GAP) + GAP


def test_pick_rows_prefers_faces_but_keeps_some_failures() -> None:
    faces = pd.DataFrame(
        [face_row(f"f{i:02d}") for i in range(20)]
        + [face_row(f"x{i}", "fallback") for i in range(6)]
    )
    picked = pick_rows(faces, 8)
    assert list(picked["status"]).count("fallback") == 2
    assert list(picked["image_id"][:6]) == [f"f{i:02d}" for i in range(6)]
    only_failures = pick_rows(faces[faces["status"] == "fallback"], 8)
    assert len(only_failures) == 6


def test_empty_data_set_still_gives_a_sheet(tmp_path: Path) -> None:
    faces = pd.DataFrame([{"image_id": "a", "status": "no_face", "landmarks": None, "quad": None}])
    out = tmp_path / "sheet.png"
    assert contact_sheet(faces, [], SIZE, out) == 0
    assert Image.open(out).size[0] > 0


def test_wrong_aligned_size_names_the_file(shard, tmp_path: Path) -> None:
    faces, folder = shard
    with pytest.raises(InputError, match=r"img0\.png"):
        contact_sheet(faces, [folder], 64, tmp_path / "sheet.png")
    assert not (tmp_path / "sheet.png").exists()


def test_tables_without_alignment_derive_it_from_status(shard, tmp_path: Path) -> None:
    faces, folder = shard
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    contact_sheet(faces, [folder], SIZE, first)
    contact_sheet(faces.drop(columns="alignment"), [folder], SIZE, second)
    assert first.read_bytes() == second.read_bytes()


def test_prealigned_tiles_are_framed_blue_with_the_template_eyes(tmp_path: Path) -> None:
    """A prealigned tile: blue frame, the template's eyes as crosses, detected eyes as dots."""
    template = geometry.Template(
        "demo", (200, 240), left=0, top=20, side=200, eyes=((60.0, 90.0), (140.0, 90.0))
    )
    quad = template.quad(200, 240)
    # The detected face's eyes sit exactly where the template says.
    landmarks = synthetic_landmarks((100.0, 90.0), 80.0, 1.03, 0.0)
    folder = tmp_path / "aligned"
    rows = []
    for image_id, found in (("found", True), ("missed", False)):
        save_png(folder / f"{image_id}.png", np.full((SIZE, SIZE, 3), 128, np.uint8))
        rows.append(
            {
                "image_id": image_id,
                "status": "ok" if found else "fallback",
                "alignment": "prealigned",
                "landmarks": landmarks.ravel() if found else None,
                "quad": quad.ravel(),
            }
        )
    out = tmp_path / "sheet.png"
    assert contact_sheet(pd.DataFrame(rows), [folder], SIZE, out, template=template) == 2
    sheet = np.asarray(Image.open(out))
    cell_w = SIZE + GAP
    found, missed = (
        sheet[GAP : GAP + SIZE, GAP + i * cell_w : GAP + i * cell_w + SIZE] for i in (0, 1)
    )
    for tile in (found, missed):
        assert (tile[SIZE // 2, 0] == PREALIGNED_COLOUR).all()
        assert not (tile.reshape(-1, 3) == FALLBACK_COLOUR).all(axis=1).any()
    (x, y), _ = template.eye_positions(SIZE)
    near = found[round(y) - 1 : round(y) + 2, round(x) - 1 : round(x) + 2].reshape(-1, 3)
    assert any((p == DETECTED_COLOUR).all() for p in near)
    # Crosses on both tiles (the template's), dots only where a face was found.
    assert (missed.reshape(-1, 3) == TEMPLATE_COLOUR).all(axis=1).sum() >= 4
    assert not (missed.reshape(-1, 3) == DETECTED_COLOUR).all(axis=1).any()
    # Legend: template cross, detected eye, prealigned frame.
    assert sheet.shape[0] == SIZE + LABEL_HEIGHT + 2 * GAP + 3 * LEGEND_LINE
