"""Catalogs of the photo sets: Yale, Cropped Extended Yale B, CelebA-HQ (pipeline.data.kinds).

The two Yale sets are read from the upstream-layout archives in ../shared/mirror;
CelebA-HQ's CelebAMask-HQ layout is made here, and its plain-folder form is read
from ../shared/data/celeba_hq. Tests that need ../shared skip when it is absent.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.data.kinds import KINDS, catalog_dataset, celebahq, croppedyale, yale
from pipeline.data.sources import unpack
from pipeline.io import InputError, load_rgb, write_parquet
from pipeline.vocabulary import MANIFEST_COLUMNS

SHARED = Path(__file__).resolve().parents[2] / "shared"
YALE_ZIP = SHARED / "mirror" / "yalefaces.zip"
CROPPED_ZIP = SHARED / "mirror" / "CroppedYale.zip"
CELEBA_FOLDER = SHARED / "data" / "celeba_hq"

ATTRIBUTES = [
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
]  # fmt: skip


def _needs(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is absent (the real data lives in ../shared beside the checkout)")


@pytest.fixture(scope="module")
def yale_root(tmp_path_factory) -> Path:
    _needs(YALE_ZIP)
    return unpack(YALE_ZIP, tmp_path_factory.mktemp("yale") / "files")


@pytest.fixture(scope="module")
def yale_manifest(yale_root) -> pd.DataFrame:
    return yale.catalog(yale_root, {"split": "test"})


@pytest.fixture(scope="module")
def cropped_manifest(tmp_path_factory) -> pd.DataFrame:
    _needs(CROPPED_ZIP)
    root = unpack(CROPPED_ZIP, tmp_path_factory.mktemp("cropped") / "files")
    return croppedyale.catalog(root, {})


def gray(seed: int, size: tuple[int, int] = (16, 12)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0]), dtype=np.uint8))


# ----------------------------------------------------------------------------- Yale


def test_yale_archive_has_165_usable_images(yale_manifest):
    m = yale_manifest
    usable = m[m["status"] == "ok"]
    assert len(usable) == 165
    assert sorted(usable["subject"].unique()) == [f"{n:02d}" for n in range(1, 16)]
    assert set(zip(usable["subject"], usable["condition"], strict=True)) == {
        (f"{n:02d}", c) for n in range(1, 16) for c in yale.CONDITIONS
    }
    assert list(m.columns[: len(MANIFEST_COLUMNS)]) == MANIFEST_COLUMNS
    assert list(m["image_id"]) == sorted(m["image_id"])
    assert (usable["width"] == 320).all() and (usable["height"] == 243).all()
    assert (usable["format"] == "GIF").all() and (usable["mode"] == "L").all()
    assert (m["split"] == "test").all()


def test_yale_upstream_quirks(yale_manifest):
    m = yale_manifest.set_index("image_id")
    # subject01.gif is subject01's centerlight image, under the canonical id.
    assert m.loc["subject01.centerlight", "relpath"] == "yalefaces/subject01.gif"
    assert m.loc["subject01.centerlight", "status"] == "ok"
    # subject01.glasses.gif is recorded as a duplicate, not counted.
    copy = m.loc["subject01.glasses.gif"]
    assert copy["status"] == "duplicate" and copy["duplicate_of"] == "subject01.glasses"
    assert "subject01.glasses" in copy["reason"]
    assert copy["sha256"] == m.loc["subject01.glasses", "sha256"]
    assert len(m) == 166  # 165 images + the duplicate; Readme.txt has no row
    assert not any("Readme" in rel for rel in m["relpath"])


def test_yale_same_bytes_different_conditions_stay_usable(yale_manifest):
    m = yale_manifest.set_index("image_id")
    sad = m.loc["subject04.sad"]
    assert sad["status"] == "ok" and sad["duplicate_of"] == "subject04.normal"
    assert sad["sha256"] == m.loc["subject04.normal", "sha256"]
    assert pd.isna(m.loc["subject04.normal", "duplicate_of"])
    assert m.loc["subject02.normal", "duplicate_of"] == "subject02.noglasses"
    # Every usable row with duplicate_of shares the bytes of the row it names.
    linked = m[(m["status"] == "ok") & m["duplicate_of"].notna()]
    assert len(linked) == 9
    assert (linked["sha256"] == m.loc[linked["duplicate_of"], "sha256"].to_numpy()).all()


def test_yale_categories_and_label_columns(yale_manifest):
    m = yale_manifest.set_index("image_id")
    assert m.loc["subject01.glasses", "categories"] == ["subject:01", "glasses:yes"]
    assert m.loc["subject02.noglasses", "categories"] == ["subject:02", "glasses:no"]
    assert m.loc["subject03.leftlight", "categories"] == ["subject:03", "lighting:left"]
    assert m.loc["subject15.happy", "categories"] == ["subject:15", "expression:happy"]
    assert m.loc["subject05.normal", "categories"] == ["subject:05", "expression:normal"]
    assert bool(m.loc["subject01.glasses", "glasses"]) is True
    assert bool(m.loc["subject01.noglasses", "glasses"]) is False
    assert pd.isna(m.loc["subject01.happy", "glasses"])
    assert m.loc["subject07.rightlight", "lighting"] == "right"
    assert m.loc["subject07.wink", "expression"] == "wink"
    assert pd.isna(m.loc["subject07.wink", "lighting"])


def test_yale_leftlight_lights_the_left_of_the_image(yale_manifest):
    m = yale_manifest.set_index("image_id")
    for subject in ("01", "05", "10"):
        left = np.asarray(Image.open(m.loc[f"subject{subject}.leftlight", "path"]), float)
        half = left.shape[1] // 2
        assert left[:, :half].mean() > left[:, half:].mean()


def test_yale_limit_takes_the_first_ids(yale_root, yale_manifest):
    limited = yale.catalog(yale_root, {"limit": 4})
    assert list(limited["image_id"]) == list(yale_manifest["image_id"][:4])


def test_yale_name_parsing():
    assert yale.parse_name("subject01.happy") == ("01", "happy", True)
    assert yale.parse_name("subject01.gif") == ("01", "centerlight", False)
    assert yale.parse_name("subject01.glasses.gif") == ("01", "glasses", False)
    assert yale.parse_name("subject12.Wink.png") == ("12", "wink", False)
    assert yale.parse_name("subject01.smiling") is None
    assert yale.parse_name("Readme.txt") is None


def test_yale_folder_quirks_made_by_hand(tmp_path):
    folder = tmp_path / "download" / "archive" / "yalefaces"  # two levels down
    folder.mkdir(parents=True)
    gray(1).save(folder / "subject02.happy", format="GIF")
    gray(2).save(folder / "subject02.sad.gif")  # alias alone: it is the sad image
    gray(3).save(folder / "subject02.wink", format="GIF")
    gray(4).save(folder / "subject02.wink.gif")  # a different second file: skipped
    gray(5).save(folder / "subject02.smiling", format="GIF")  # unknown condition
    (folder / "subject02.normal").write_bytes(b"")  # empty: error, kept
    (folder / "._subject02.happy").write_bytes(b"\x00\x05\x16\x07")
    macosx = tmp_path / "download" / "archive" / "__MACOSX" / "yalefaces"
    macosx.mkdir(parents=True)
    (macosx / "._subject02.happy").write_bytes(b"\x00\x05\x16\x07")
    (folder / "Readme.txt").write_text("readme\n")
    m = yale.catalog(tmp_path / "download", {"split": "val"}).set_index("image_id")
    assert m.loc["subject02.sad", "relpath"].endswith("yalefaces/subject02.sad.gif")
    assert m.loc["subject02.sad", "status"] == "ok"
    assert m.loc["subject02.wink", "status"] == "ok"
    assert m.loc["subject02.wink.gif", "status"] == "skipped"
    assert "subject02.wink is used" in m.loc["subject02.wink.gif", "reason"]
    assert m.loc["subject02.smiling", "status"] == "skipped"
    assert m.loc["subject02.normal", "status"] == "error"
    assert "empty" in m.loc["subject02.normal", "reason"]
    assert sorted(m.index) == [
        "subject02.happy", "subject02.normal", "subject02.sad", "subject02.smiling",
        "subject02.wink", "subject02.wink.gif",
    ]  # fmt: skip
    assert (m["split"] == "val").all()


# ----------------------------------------------------------------------- CroppedYale


def test_croppedyale_archive_has_2414_usable_images(cropped_manifest):
    m = cropped_manifest
    usable = m[m["status"] == "ok"]
    assert len(usable) == 2414
    assert usable["subject"].nunique() == 38 and "yaleB14" not in set(m["subject"])
    per_subject = usable.groupby("subject").size()
    assert per_subject.drop(["yaleB11", "yaleB12", "yaleB13", "yaleB15", "yaleB16",
                             "yaleB17", "yaleB18"]).eq(64).all()  # fmt: skip
    assert per_subject[["yaleB11", "yaleB12", "yaleB13", "yaleB15", "yaleB16", "yaleB17",
                        "yaleB18"]].tolist() == [60, 59, 60, 63, 62, 63, 63]  # fmt: skip
    assert (usable["width"] == 168).all() and (usable["height"] == 192).all()
    assert list(m["image_id"]) == sorted(m["image_id"])


def test_croppedyale_ambient_and_bad_files_are_skipped_and_counted(cropped_manifest):
    skipped = cropped_manifest[cropped_manifest["status"] == "skipped"]
    counts = skipped["reason"].value_counts().to_dict()
    assert counts == {croppedyale.SKIP_AMBIENT: 38, croppedyale.SKIP_BAD: 18}
    assert len(cropped_manifest) == 2414 + 56  # nothing else is a candidate
    bad = skipped[skipped["reason"] == croppedyale.SKIP_BAD].set_index("image_id")
    assert bad.loc["yaleB11_P00A+050E-40.pgm.bad", "azimuth"] == 50
    assert bad.loc["yaleB11_P00A+050E-40.pgm.bad", "elevation"] == -40
    relpaths = " ".join(cropped_manifest["relpath"])
    assert ".info" not in relpaths and "WS_FTP" not in relpaths and "DEADJOE" not in relpaths


def test_croppedyale_light_direction_is_parsed(cropped_manifest):
    m = cropped_manifest.set_index("image_id")
    expected = {
        "yaleB01_P00A+000E+00": (0, 0, "P00A+000E+00", ["lighting:frontal", "azimuth:0-20",
                                                        "elevation:level"]),
        "yaleB05_P00A-130E+20": (-130, 20, "P00A-130E+20", ["lighting:right", "azimuth:91-180",
                                                            "elevation:level"]),
        "yaleB39_P00A+000E+90": (0, 90, "P00A+000E+90", ["lighting:above", "azimuth:0-20",
                                                         "elevation:above"]),
        "yaleB20_P00A+050E-40": (50, -40, "P00A+050E-40", ["lighting:left", "azimuth:21-60",
                                                           "elevation:below"]),
        "yaleB02_P00A+000E-35": (0, -35, "P00A+000E-35", ["lighting:below", "azimuth:0-20",
                                                          "elevation:below"]),
    }  # fmt: skip
    for image_id, (azimuth, elevation, condition, lighting) in expected.items():
        row = m.loc[image_id]
        assert (row["azimuth"], row["elevation"], row["condition"]) == (
            azimuth,
            elevation,
            condition,
        )
        assert row["categories"] == [f"subject:{image_id[:7]}", *lighting]
        assert row["pose"] == 0
    assert m["azimuth"].dtype == "Int64"


def test_croppedyale_positive_azimuth_lights_the_left_of_the_image(cropped_manifest):
    m = cropped_manifest.set_index("image_id")
    for image_id, brighter_left in (
        ("yaleB01_P00A+085E+20", True),
        ("yaleB01_P00A-085E+20", False),
    ):
        pixels = np.asarray(Image.open(m.loc[image_id, "path"]), float)
        half = pixels.shape[1] // 2
        assert bool(pixels[:, :half].mean() > pixels[:, half:].mean()) is brighter_left
        assert ("lighting:left" in m.loc[image_id, "categories"]) is brighter_left


def test_croppedyale_limit_applies_before_decoding(tmp_path):
    folder = tmp_path / "CroppedYale" / "yaleB03"
    folder.mkdir(parents=True)
    for index, name in enumerate(["A+000E+00", "A+010E-20", "A-025E+00"]):
        gray(index).save(folder / f"yaleB03_P00{name}.pgm")
    (folder / "yaleB03_P00A+035E+65.pgm").write_bytes(b"P5\n168 192\n255\n")  # truncated
    (folder / "yaleB03_P00_Ambient.pgm").write_bytes(b"P5\n")
    (folder / "notes.pgm").write_bytes(b"")
    full = croppedyale.catalog(tmp_path, {}).set_index("image_id")
    assert full["status"].to_dict() == {
        "notes.pgm": "skipped",
        "yaleB03_P00A+000E+00": "ok",
        "yaleB03_P00A+010E-20": "ok",
        "yaleB03_P00A+035E+65": "error",
        "yaleB03_P00A-025E+00": "ok",
        "yaleB03_P00_Ambient": "skipped",
    }
    assert list(croppedyale.catalog(tmp_path, {"limit": 2})["image_id"]) == [
        "notes.pgm",
        "yaleB03_P00A+000E+00",
    ]


# ------------------------------------------------------------------------ CelebA-HQ


def make_celebamask(root: Path, count: int, zero_one: bool = False) -> dict[str, list[bool]]:
    """A CelebAMask-HQ layout with ``count`` small JPEGs, the attribute file and some masks."""
    base = root / "CelebAMask-HQ"
    (base / "CelebA-HQ-img").mkdir(parents=True)
    masks = base / "CelebAMask-HQ-mask-anno" / "0"
    masks.mkdir(parents=True)
    rng = np.random.default_rng(0)
    truth = {}
    lines = [str(count), " ".join(ATTRIBUTES)]
    for number in range(count):
        pixels = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(base / "CelebA-HQ-img" / f"{number}.jpg", quality=90)
        gray(number).save(masks / f"{number:05d}_hair.png")
        values = rng.random(len(ATTRIBUTES)) < 0.3
        truth[f"{number:05d}"] = [bool(v) for v in values]
        false = "0" if zero_one else "-1"
        # The real file pads with two spaces after the name and before positive values.
        lines.append(f"{number}.jpg  " + " ".join(" 1" if v else false for v in values))
    (base / "CelebAMask-HQ-attribute-anno.txt").write_text("\n".join(lines) + "\n")
    (base / "README.txt").write_text("CelebAMask-HQ\n")
    return truth


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory) -> tuple[Path, dict[str, list[bool]]]:
    root = tmp_path_factory.mktemp("celebamask") / "files"
    return root, make_celebamask(root, 60)


def test_celebahq_attributes_become_columns_and_categories(celeba_root):
    root, truth = celeba_root
    m = celebahq.catalog(root, {})
    assert list(m["image_id"]) == [f"{n:05d}" for n in range(60)]
    assert (m["status"] == "ok").all()
    assert not m["relpath"].str.contains("mask-anno").any()
    columns = [f"attr_{name}" for name in ATTRIBUTES]
    assert [c for c in m.columns if c.startswith("attr_")] == columns
    assert all(m[c].dtype == "boolean" for c in columns)
    for row in m.itertuples():
        values = truth[row.image_id]
        assert [bool(getattr(row, c)) for c in columns] == values
        assert row.categories == [f"attr:{n}" for n, v in zip(ATTRIBUTES, values, strict=True) if v]


def test_celebahq_zero_one_attribute_values_read_the_same(tmp_path, celeba_root):
    _, truth = celeba_root
    make_celebamask(tmp_path, 60, zero_one=True)
    m = celebahq.catalog(tmp_path, {})
    assert m["attr_Smiling"].tolist() == [truth[i][ATTRIBUTES.index("Smiling")] for i in m.image_id]


def test_celebahq_seeded_split_is_deterministic(celeba_root):
    root, _ = celeba_root
    first = celebahq.catalog(root, {"split_seed": 7})
    again = celebahq.catalog(root, {"split_seed": 7})
    other = celebahq.catalog(root, {"split_seed": 8})
    assert first["split"].tolist() == again["split"].tolist()
    assert first["split"].value_counts().to_dict() == {"train": 56, "val": 2, "test": 2}
    assert first["split"].tolist() != other["split"].tolist()
    assert (first["split_rule"] == "seeded").all()
    limited = celebahq.catalog(root, {"split_seed": 7, "limit": 5})
    assert limited["image_id"].tolist() == [f"{n:05d}" for n in range(5)]
    assert limited["split"].tolist() == first["split"][:5].tolist()  # limit keeps splits
    tests = celebahq.catalog(root, {"split_seed": 7, "splits": ["test"]})
    assert tests["image_id"].tolist() == first.loc[first["split"] == "test", "image_id"].tolist()
    fixed = celebahq.catalog(root, {"split_rule": "fixed", "split": "val"})
    assert (fixed["split"] == "val").all() and (fixed["split_rule"] == "fixed").all()


def test_celebahq_seeded_proportions_scale_with_the_set():
    full = pd.Series(celebahq.seeded_splits([f"{n:05d}" for n in range(30000)], 0))
    assert full.value_counts().to_dict() == {"train": 28000, "val": 1000, "test": 1000}
    small = pd.Series(celebahq.seeded_splits([str(n) for n in range(3000)], 0))
    assert small.value_counts().to_dict() == {"train": 2800, "val": 100, "test": 100}
    assert celebahq.seeded_splits(["a"], 0) == ["train"]


def test_celebahq_official_partition_when_available(tmp_path):
    make_celebamask(tmp_path, 12)
    base = tmp_path / "CelebAMask-HQ"
    # CelebA-HQ idx n comes from CelebA file 1000 + n; CelebA puts 1000..1003 in val,
    # 1004..1007 in test, the rest in train; idx 10 and 11 are not in the partition.
    mapping = ["idx         orig_idx    orig_file"]
    mapping += [f"{n}       {999 + n}    {1000 + n:06d}.jpg" for n in range(12)]
    (base / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(mapping) + "\n")
    codes = {**dict.fromkeys(range(1000, 1004), 1), **dict.fromkeys(range(1004, 1008), 2)}
    partition = [f"{f:06d}.jpg {codes.get(f, 0)}" for f in range(990, 1010)]
    (base / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    m = celebahq.catalog(tmp_path, {}).set_index("image_id")
    expected = ["val"] * 4 + ["test"] * 4 + ["train"] * 2
    assert m["split"].iloc[:10].tolist() == expected
    assert (m["split_rule"].iloc[:10] == "official").all()
    assert (m["split_rule"].iloc[10:] == "seeded").all()
    make_celebamask(tmp_path / "bare", 2)
    with pytest.raises(InputError, match="split_rule official needs"):
        celebahq.catalog(tmp_path / "bare", {"split_rule": "official"})


def test_celebahq_attributes_file_option_and_bad_attribute_files(tmp_path, celeba_root):
    root, truth = celeba_root
    moved = tmp_path / "elsewhere.txt"
    moved.write_text((root / "CelebAMask-HQ" / "CelebAMask-HQ-attribute-anno.txt").read_text())
    only_images = root / "CelebAMask-HQ" / "CelebA-HQ-img"
    m = celebahq.catalog(only_images, {"attributes_file": str(moved)})
    assert m["attr_Young"].tolist() == [truth[i][ATTRIBUTES.index("Young")] for i in m.image_id]
    with pytest.raises(InputError, match="attributes_file not found"):
        celebahq.catalog(only_images, {"attributes_file": "missing.txt"})
    bad = tmp_path / "bad.txt"
    bad.write_text("2\nSmiling Young\n0.jpg 1 -1\n1.jpg 1 2\n")
    with pytest.raises(InputError, match=r"bad.txt: line 4: value '2' is not 1, -1 or 0"):
        celebahq.read_attributes(bad)
    bad.write_text("3\nSmiling Young\n0.jpg 1 -1\n1.jpg 1 1\n")
    with pytest.raises(InputError, match="the first line says 3 entries, the file has 2"):
        celebahq.read_attributes(bad)
    bad.write_text("Smiling Young\n0.jpg 1\n")
    with pytest.raises(InputError, match="line 2: 1 values for 2 attributes"):
        celebahq.read_attributes(bad)
    csv = tmp_path / "list_attr.csv"
    csv.write_text("image_id,Smiling,Young\n0.jpg,1,-1\n1.jpg,-1,1\n")
    assert celebahq.read_attributes(csv) == (
        ["Smiling", "Young"],
        {"0.jpg": [True, False], "1.jpg": [False, True]},
    )


def test_celebahq_plain_folder_of_real_photos():
    _needs(CELEBA_FOLDER)
    m = celebahq.catalog(CELEBA_FOLDER, {})
    images = [p for p in CELEBA_FOLDER.iterdir() if p.suffix.lower() in (".jpg", ".png")]
    assert len(m) == len(images) == 101
    assert (m["status"] == "ok").all()
    assert not [c for c in m.columns if c.startswith("attr_")]
    assert m["categories"].map(len).eq(0).all()
    assert set(m["split"]) <= {"train", "val", "test"} and (m["split_rule"] == "seeded").all()


# ------------------------------------------------------------------------ bad input


def test_unusual_and_broken_files_keep_rows_with_the_right_status(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "plain.jpg")
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (folder / "zero.png").write_bytes(b"")
    deep = (rng.integers(0, 65536, size=(20, 24))).astype(np.uint16)
    Image.fromarray(deep).save(folder / "deep16.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    Image.fromarray(np.dstack([rgb, rgb[..., 0]]), mode="RGBA").save(folder / "alpha.png")
    (folder / "not_an_image.jpg").write_bytes(b"hello")
    m = celebahq.catalog(tmp_path, {}).set_index("image_id")
    assert m["status"].to_dict() == {
        "alpha": "ok", "cmyk": "ok", "deep16": "ok", "not_an_image": "error", "palette": "ok",
        "plain": "ok", "truncated": "error", "zero": "error",
    }  # fmt: skip
    assert m.loc["cmyk", "mode"] == "CMYK" and m.loc["palette", "mode"] == "P"
    assert m.loc["alpha", "mode"] == "RGBA" and m.loc["deep16", "mode"].startswith("I")
    assert "empty" in m.loc["zero", "reason"]
    assert "truncated" in m.loc["truncated", "reason"]
    assert "not a decodable image" in m.loc["not_an_image", "reason"]
    for image_id in ("alpha", "cmyk", "deep16", "palette"):
        converted = load_rgb(m.loc[image_id, "path"])
        assert converted.mode == "RGB" and converted.size == (24, 20)


def test_byte_identical_unlabelled_files_are_duplicates(tmp_path):
    gray(0).save(tmp_path / "a.png")
    gray(0).save(tmp_path / "b.png")
    gray(1).save(tmp_path / "c.png")
    m = celebahq.catalog(tmp_path, {}).set_index("image_id")
    assert m["status"].to_dict() == {"a": "ok", "b": "duplicate", "c": "ok"}
    assert m.loc["b", "duplicate_of"] == "a" and pd.isna(m.loc["a", "duplicate_of"])


def _zip(tmp_path: Path, members: dict[str, bytes]) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    archive = tmp_path / "odd.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return unpack(archive, tmp_path / "files")


def test_an_archive_with_an_unexpected_layout_is_a_clear_error(tmp_path):
    buffer = io.BytesIO()
    gray(0).save(buffer, format="PNG")
    root = _zip(tmp_path, {"stuff/readme.txt": b"hi", "photos/face.png": buffer.getvalue()})
    with pytest.raises(InputError, match=r"files: expected layout not found: .*subjectNN"):
        yale.catalog(root, {})
    with pytest.raises(InputError, match=r"files: expected layout not found: .*yaleBNN") as info:
        croppedyale.catalog(root, {})
    assert "photos, stuff" in str(info.value)
    empty = _zip(tmp_path / "e", {"docs/readme.txt": b"hi"})
    with pytest.raises(InputError, match=r"files: no image files found; expected CelebAMask"):
        celebahq.catalog(empty, {})


def test_kinds_are_registered_and_manifests_store_as_parquet(tmp_path, celeba_root):
    assert {"yale", "croppedyale", "celebahq"} <= set(KINDS)
    root, _ = celeba_root
    manifest = catalog_dataset("celebahq", root, {"limit": 3})
    write_parquet(tmp_path / "manifest.parquet", manifest)
    back = pd.read_parquet(tmp_path / "manifest.parquet")
    assert back["image_id"].tolist() == ["00000", "00001", "00002"]
    assert back["attr_Male"].dtype == "boolean"
    assert [list(c) for c in back["categories"]] == list(manifest["categories"])
    with pytest.raises(ValueError, match="split_rule"):
        celebahq.catalog(root, {"split_rule": "random"})
    with pytest.raises(ValueError, match="limit"):
        yale.catalog(root, {"limit": 0})
