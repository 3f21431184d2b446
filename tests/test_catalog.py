from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import make_image_folder

from pipeline.data.kinds.images import build_manifest, image_id_for
from pipeline.io import InputError
from pipeline.shards import select_shard, shard_count


def test_manifest_keeps_broken_files_with_reasons(tmp_path):
    expected = make_image_folder(tmp_path / "imgs")
    manifest = build_manifest(tmp_path / "imgs", split="val")
    assert dict(zip(manifest["image_id"], manifest["status"], strict=True)) == expected
    reasons = manifest.set_index("image_id")["reason"]
    assert "empty" in reasons["empty"]
    assert "truncated" in reasons["truncated"] or "corrupt" in reasons["truncated"]
    assert (manifest["split"] == "val").all()
    assert list(manifest["image_id"]) == sorted(manifest["image_id"])
    extensionless = manifest.set_index("image_id").loc["subject01.happy"]
    assert extensionless["format"] == "GIF" and extensionless["width"] == 60


def test_single_top_folder_is_not_part_of_ids(tmp_path):
    make_image_folder(tmp_path / "root" / "yalefaces")
    ids = set(build_manifest(tmp_path / "root")["image_id"])
    assert "subject01.happy" in ids


def test_limit_takes_first_ids(tmp_path):
    make_image_folder(tmp_path / "imgs")
    full = build_manifest(tmp_path / "imgs")
    assert list(build_manifest(tmp_path / "imgs", limit=3)["image_id"]) == list(
        full["image_id"][:3]
    )


def test_image_ids_are_file_name_safe():
    assert image_id_for(Path("a b/c.JPG")) == "a_b__c"
    assert image_id_for(Path("yaleB01_P00A+000E+00.pgm")) == "yaleB01_P00A+000E+00"
    assert image_id_for(Path("subject01.glasses")) == "subject01.glasses"


def test_shards_cover_every_row_once():
    manifest = pd.DataFrame({"image_id": [f"img{i:02d}" for i in range(10)][::-1]})
    assert shard_count(10, 4) == 3 and shard_count(0, 4) == 1
    parts = [select_shard(manifest, shard, 4) for shard in range(3)]
    assert [len(p) for p in parts] == [4, 4, 2]
    assert sorted(pd.concat(parts)["image_id"]) == sorted(manifest["image_id"])
    with pytest.raises(IndexError):
        select_shard(manifest, 3, 4)


def test_a_source_without_images_is_a_clear_error(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README.txt").write_text("hello")
    with pytest.raises(InputError, match=r"docs: no candidate image files found \(1 non-image"):
        build_manifest(tmp_path / "docs")
