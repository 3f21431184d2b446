"""The emoji data set kind, on tiny fake npm packages built in tmp.

The packages copy the real layouts (emoji-datasource 16, @twemoji/svg 15,
openmoji 17, @iconify-json/noto 1.2): file names, the has_img flags, U+FE0F
dropped from some SVG names, iconify chars.json and aliases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from emoji_packages import (
    KEPT_ROWS,
    TONES,
    metadata_package,
    noto_package,
    openmoji_package,
    raster_package,
    twemoji_package,
)
from PIL import Image

from pipeline.data.kinds import KINDS, catalog_dataset
from pipeline.data.kinds.emoji import (
    PLATFORMS,
    catalog,
    code_keys,
    composite,
    coverage,
    iconify_svg,
    parse_background,
    render_svg,
)
from pipeline.data.kinds.emoji_categories import RULES, name_categories, skin_tones
from pipeline.io import InputError, write_parquet


def options(tmp_path: Path, platform: str, **extra) -> dict:
    return {"platform": platform, "render_dir": str(tmp_path / "render" / platform), **extra}


# --------------------------------------------------------------------------- categories

# (Unicode name, short names, subcategory) of real emoji.json entries (emoji-datasource
# 16.0.0) and the categories they must get.
REAL_NAMES = [
    ("BABY", ["baby"], "person", ["baby"]),
    ("BABY ANGEL", ["angel"], "person-fantasy", ["baby"]),
    ("PERSON FEEDING BABY", ["person_feeding_baby"], "person-role", ["baby"]),
    ("CHILD", ["child"], "person", ["child"]),
    ("BOY", ["boy"], "person", ["child"]),
    ("GIRL", ["girl"], "person", ["child"]),
    ("OLDER ADULT", ["older_adult"], "person", ["old_age"]),
    ("OLDER WOMAN", ["older_woman"], "person", ["old_age"]),
    ("MAN: WHITE HAIR", ["white_haired_man"], "person", ["white_hair"]),
    ("WOMAN: BALD", ["bald_woman"], "person", ["bald"]),
    ("BEARDED PERSON", ["bearded_person"], "person", ["beard"]),
    ("WOMAN: BEARD", ["woman_with_beard"], "person", ["beard"]),
    ("BRIDE WITH VEIL", ["bride_with_veil"], "person-role", ["bride_veil"]),
    ("MAN WITH VEIL", ["man_with_veil"], "person-role", ["bride_veil"]),
    ("MAN COOK", ["male-cook"], "person-role", ["cook"]),
    ("PERSON: CURLY HAIR", ["curly_haired_person"], "person", ["curly_hair"]),
    ("MAN: RED HAIR", ["red_haired_man"], "person", ["red_hair"]),
    ("PERSON WITH BLOND HAIR", ["person_with_blond_hair"], "person", ["blond"]),
    ("WOMAN: BLOND HAIR", ["blond-haired-woman"], "person", ["blond"]),
    ("MAN ELF", ["male_elf"], "person-fantasy", ["elf"]),
    ("FATHER CHRISTMAS", ["santa"], "person-fantasy", ["santa"]),
    ("MOTHER CHRISTMAS", ["mrs_claus", "mother_christmas"], "person-fantasy", ["santa"]),
    ("MX CLAUS", ["mx_claus"], "person-fantasy", ["santa"]),
    ("WOMAN VAMPIRE", ["female_vampire"], "person-fantasy", ["vampire"]),
    ("ZOMBIE", ["zombie"], "person-fantasy", ["zombie"]),
    ("SKULL", ["skull"], "face-negative", ["skull"]),
    ("SKULL AND CROSSBONES", ["skull_and_crossbones"], "face-negative", ["skull"]),
    ("PERSON WITH CROWN", ["person_with_crown"], "person-role", ["crown"]),
    ("PRINCE", ["prince"], "person-role", ["crown"]),
    ("PRINCESS", ["princess"], "person-role", ["crown"]),
    ("WOMAN WEARING TURBAN", ["woman-wearing-turban"], "person-role", ["turban"]),
    ("PERSON WITH HEADSCARF", ["person_with_headscarf"], "person-role", ["headscarf"]),
    ("MAN WITH GUA PI MAO", ["man_with_gua_pi_mao"], "person-role", ["hat"]),
    ("FACE WITH COWBOY HAT", ["face_with_cowboy_hat"], "face-hat", ["hat"]),
    ("FACE WITH PARTY HORN AND PARTY HAT", ["partying_face"], "face-hat", ["hat"]),
    ("DISGUISED FACE", ["disguised_face"], "face-hat", ["hat"]),
    ("CONSTRUCTION WORKER", ["construction_worker"], "person-role", ["helmet"]),
    ("WOMAN FIREFIGHTER", ["female-firefighter"], "person-role", ["helmet"]),
    ("ASTRONAUT", ["astronaut"], "person-role", ["helmet"]),
    ("RESCUE WORKER\u2019S HELMET", ["helmet_with_white_cross"], "clothing", ["helmet"]),
    ("HEALTH WORKER", ["health_worker"], "person-role", ["health_worker"]),
    ("WOMAN HEALTH WORKER", ["female-doctor"], "person-role", ["health_worker"]),
    ("MAN TEACHER", ["male-teacher"], "person-role", ["teacher"]),
    ("SMILING FACE WITH SUNGLASSES", ["sunglasses"], "face-glasses", ["glasses"]),
    ("NERD FACE", ["nerd_face"], "face-glasses", ["glasses"]),
    ("FACE WITH MONOCLE", ["face_with_monocle"], "face-glasses", ["glasses"]),
    # Nothing to find: "white" is no hair colour, a student no teacher, a cookie no cook.
    ("WHITE SMILING FACE", ["relaxed"], "face-affection", []),
    ("STUDENT", ["student"], "person-role", []),
    ("MAN IN TUXEDO", ["person_in_tuxedo"], "person-role", []),
    ("SMILING FACE WITH HALO", ["innocent"], "face-smiling", []),
    ("COOKIE", ["cookie"], "food-sweet", []),
    ("GUARDSMAN", ["guardsman"], "person-role", []),
]


@pytest.mark.parametrize(("name", "short", "subcategory", "expected"), REAL_NAMES)
def test_category_rules_on_real_names(name, short, subcategory, expected):
    assert name_categories([name, *short], subcategory) == expected


def test_every_rule_is_exercised_by_a_real_name():
    exercised = {category for *_, expected in REAL_NAMES for category in expected}
    assert exercised == {rule.category for rule in RULES}


def test_skin_tone_modifiers_map_to_five_tones():
    assert [skin_tones(code) for code in TONES] == [[1], [2], [3], [4], [5]]
    assert skin_tones("1F3FB-1F3FF") == [1, 5]
    with pytest.raises(ValueError, match="1F600 is not a skin-tone modifier"):
        skin_tones("1F600")


def test_code_keys_drop_the_variation_selector():
    assert code_keys("1F575-FE0F") == ["1f575-fe0f", "1f575"]
    assert code_keys("1F474-1F3FB") == ["1f474-1f3fb"]


# --------------------------------------------------------------------------- raster sets


def test_raster_platform_rows_categories_and_compositing(tmp_path):
    root = raster_package(tmp_path / "src", "apple")
    manifest = catalog(root, options(tmp_path, "apple", background="#0000FF"))
    assert len(manifest) == KEPT_ROWS
    assert list(manifest["image_id"]) == sorted(manifest["image_id"])
    rows = manifest.set_index("image_id")
    assert not any("1f4a9" in i or "1f436" in i for i in rows.index)  # costume, animal

    old = rows.loc["apple__1f474__skin5"]
    assert (old["subject"], old["condition"], old["unified"]) == ("1F474", "skin:5", "1F474-1F3FF")
    assert list(old["categories"]) == ["old_age", "skin:5", "platform:apple"]
    assert old["skin_tone"] == 5 and old["status"] == "ok"
    assert old["licence"].startswith("proprietary (Apple")
    assert old["package"] == "emoji-datasource-apple@16.0.0"
    assert old["source_path"].endswith("img/apple/64/1f474-1f3ff.png")
    assert (old["width"], old["height"], old["mode"]) == (64, 64, "RGB")
    rendered = np.asarray(Image.open(old["path"]))
    assert rendered.shape == (64, 64, 3)
    assert tuple(rendered[0, 0]) == (0, 0, 255)  # transparent corner takes the background
    assert tuple(rendered[32, 32]) == (200, 120, 40)  # opaque centre keeps its colour
    assert rows.loc["apple__1f474__default", "condition"] == "default"
    assert list(rows.loc["apple__1f60e__default", "categories"]) == ["glasses", "platform:apple"]

    skull = rows.loc["apple__1f480__default"]
    assert skull["status"] == "error" and "corrupt or truncated" in skull["reason"]
    assert pd.isna(skull["path"]) and skull["source_path"].endswith("1f480.png")


def test_raster_flags_decide_what_a_platform_lacks(tmp_path):
    root = raster_package(tmp_path / "src", "facebook")
    rows = catalog(root, options(tmp_path, "facebook")).set_index("image_id")
    # The PNG files exist (fallbacks) but emoji.json says facebook does not draw them.
    for image_id in ("facebook__1fae9__default", "facebook__1f474__skin5"):
        assert rows.loc[image_id, "status"] == "missing"
        assert rows.loc[image_id, "reason"] == "not drawn on facebook"
        assert pd.isna(rows.loc[image_id, "path"])
    assert "skin:5" in rows.loc["facebook__1f474__skin5", "categories"]
    assert rows.loc["facebook__1f474__skin4", "status"] == "ok"


def test_manifest_survives_parquet(tmp_path):
    root = raster_package(tmp_path / "src", "twitter")
    manifest = catalog(root, options(tmp_path, "twitter"))
    write_parquet(tmp_path / "manifest.parquet", manifest)
    back = pd.read_parquet(tmp_path / "manifest.parquet").set_index("image_id")
    assert list(back["categories"]["twitter__1f474__skin3"]) == [
        "old_age", "skin:3", "platform:twitter",
    ]  # fmt: skip
    assert back["skin_tone"]["twitter__1f474__skin3"] == 3
    assert pd.isna(back["skin_tone"]["twitter__1f474__default"])
    assert back["status"].value_counts().to_dict() == {"ok": 15, "error": 1}


def test_limit_and_registry(tmp_path):
    root = raster_package(tmp_path / "src", "google")
    assert "emoji" in KINDS
    full = catalog_dataset("emoji", root, options(tmp_path, "google"))
    first = catalog_dataset("emoji", root, options(tmp_path, "google", limit=3, split="val"))
    assert list(first["image_id"]) == list(full["image_id"][:3])
    assert (first["split"] == "val").all()
    assert full["licence"].eq("Apache-2.0 (Noto Emoji)").all()


# --------------------------------------------------------------------------- vector sets


def test_svg_platform_finds_renders_and_reports_gaps(tmp_path):
    root = twemoji_package(tmp_path / "twemoji")
    meta = metadata_package(tmp_path / "meta")
    opts = options(tmp_path, "twemoji", size=40, metadata_root=str(meta))
    rows = catalog(root, opts).set_index("image_id")
    assert len(rows) == KEPT_ROWS
    detective = rows.loc["twemoji__1f575-fe0f__skin2"]  # 1f575-1f3fc.svg
    assert detective["status"] == "ok" and detective["source_path"].endswith("1f575-1f3fc.svg")
    assert rows.loc["twemoji__1f575-fe0f__default", "source_path"].endswith("/1f575.svg")
    assert (detective["width"], detective["height"], detective["render_size"]) == (40, 40, 40)
    assert detective["licence"] == "CC-BY-4.0 (Twemoji graphics)"
    assert detective["metadata_package"] == "emoji-datasource@16.0.0"
    missing = rows.loc["twemoji__1fae9__default"]
    assert (missing["status"], missing["reason"]) == ("missing", "not drawn on twemoji")
    broken = rows.loc["twemoji__1f480__default"]
    assert broken["status"] == "error" and "cannot render SVG" in broken["reason"]
    blank = rows.loc["twemoji__1f9df__default"]
    assert blank["status"] == "error" and "fully transparent" in blank["reason"]


def test_vector_rendering_is_deterministic_and_cached(tmp_path):
    root = openmoji_package(tmp_path / "openmoji")
    meta = metadata_package(tmp_path / "meta")
    first = catalog(root, options(tmp_path, "openmoji", size=32, metadata_root=str(meta)))
    again = catalog(
        root, {**options(tmp_path, "openmoji", size=32, metadata_root=str(meta)),
               "render_dir": str(tmp_path / "elsewhere")},
    )  # fmt: skip
    assert (first["status"] == "ok").all()
    assert list(first["sha256"]) == list(again["sha256"])
    assert set(first["path"]).isdisjoint(again["path"])
    assert first["source_path"].str.contains("/color/svg/").all()
    assert first["licence"].eq("CC-BY-SA-4.0").all()
    # Same options: the cached PNG is reused, untouched.
    path = Path(first["path"].iloc[0])
    stamp = path.stat().st_mtime_ns
    cached = catalog(root, options(tmp_path, "openmoji", size=32, metadata_root=str(meta)))
    assert cached["path"].iloc[0] == str(path) and path.stat().st_mtime_ns == stamp
    # Another background is another image.
    blue = catalog(
        root, options(tmp_path, "openmoji", size=32, metadata_root=str(meta), background="0000ff")
    )
    assert blue["path"].iloc[0] != str(path) and (blue["background"] == "0000FF").all()


def test_iconify_set_maps_codepoints_to_icons(tmp_path):
    root = noto_package(tmp_path / "noto")
    meta = metadata_package(tmp_path / "meta")
    rows = catalog(root, options(tmp_path, "noto", size=24, metadata_root=str(meta)))
    rows = rows.set_index("image_id")
    assert (rows["status"] == "ok").all() and len(rows) == KEPT_ROWS
    assert rows.loc["noto__1f474__default", "source_path"].endswith("icons.json#older-man-alias")
    assert rows.loc["noto__1f575-fe0f__skin1", "source_path"].endswith("#icon-1f575-1f3fb")
    assert rows.loc["noto__1f474__default", "relpath"] == "package/icons.json#older-man-alias"
    assert rows["licence"].eq("Apache-2.0").all()  # from the set's info.json


def test_vector_set_without_metadata_names_the_option(tmp_path):
    root = noto_package(tmp_path / "noto")
    with pytest.raises(InputError, match="metadata_root"):
        catalog(root, options(tmp_path, "noto"))


def test_packages_side_by_side_in_one_folder(tmp_path):
    folder = tmp_path / "all"
    twemoji_package(folder / "twemoji-svg-15.0.0")
    metadata_package(folder / "emoji-datasource-16.0.0")
    raster_package(folder / "emoji-datasource-apple-16.0.0", "apple")
    manifest = catalog(folder, options(tmp_path, "twemoji", size=16))
    assert manifest["package"].eq("@twemoji/svg@15.0.0").all()
    assert manifest["metadata_package"].eq("emoji-datasource@16.0.0").all()
    with pytest.raises(InputError, match="openmoji for platform openmoji: not found"):
        catalog(folder, options(tmp_path, "openmoji"))


def test_iconify_aliases_flip_and_rotate():
    red_left = '<path fill="#f00" d="M0 0h5v10H0z"/>'
    icon_set = {
        "width": 10, "height": 10, "icons": {"half": {"body": red_left}},
        "aliases": {"mirrored": {"parent": "half", "hFlip": True},
                    "turned": {"parent": "half", "rotate": 1},
                    "back": {"parent": "mirrored", "hFlip": True}},
    }  # fmt: skip

    def red_quadrants(name):
        alpha = np.asarray(render_svg(iconify_svg(icon_set, name), 20))[..., 3]
        centres = {"top-left": (5, 5), "top-right": (5, 15), "bottom-left": (15, 5)}
        centres["bottom-right"] = (15, 15)
        return {quadrant for quadrant, (y, x) in centres.items() if alpha[y, x] == 255}

    assert red_quadrants("half") == {"top-left", "bottom-left"}
    assert red_quadrants("mirrored") == {"top-right", "bottom-right"}
    assert red_quadrants("back") == red_quadrants("half")
    assert red_quadrants("turned") == {"top-left", "top-right"}  # a quarter turn clockwise
    with pytest.raises(KeyError, match="nothing"):
        iconify_svg(icon_set, "nothing")


# --------------------------------------------------------------------------- pieces


def test_compositing_blends_partial_alpha_on_the_background():
    half_red = Image.new("RGBA", (4, 4), (255, 0, 0, 128))
    pixel = composite(half_red, parse_background("0000FF")).getpixel((1, 1))
    assert pixel[0] == pytest.approx(128, abs=1) and pixel[1] == 0
    assert pixel[2] == pytest.approx(127, abs=1)


def test_render_is_square_and_centres_a_wide_drawing():
    wide = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 20 10"><rect width="20" '
    wide += 'height="10" fill="#0f0"/></svg>'
    image = np.asarray(render_svg(wide, 32))
    assert image.shape == (32, 32, 4)
    assert image[0, 16, 3] == 0 and image[16, 16, 3] == 255 and image[31, 16, 3] == 0


@pytest.mark.parametrize("bad", ["white", "#FFF", "12345G"])
def test_bad_background_is_refused(bad):
    with pytest.raises(ValueError, match="RGB hex colour"):
        parse_background(bad)


def test_option_errors_are_clear(tmp_path):
    root = raster_package(tmp_path / "src", "apple")
    with pytest.raises(ValueError, match="platform 'android' is not one of"):
        catalog(root, options(tmp_path, "android"))
    with pytest.raises(ValueError, match="render_dir"):
        catalog(root, {"platform": "apple"})
    with pytest.raises(ValueError, match=r"no emoji in subcategories \['face-robot'\]"):
        catalog(root, options(tmp_path, "apple", subcategories=["face-robot"]))


def test_coverage_counts_categories_by_status(tmp_path):
    root = raster_package(tmp_path / "src", "facebook")
    table = coverage(catalog(root, options(tmp_path, "facebook"))).set_index("category")
    assert table.loc["all", ["ok", "missing", "error", "total"]].tolist() == [12, 3, 1, 16]
    assert table.loc["skin:5", ["ok", "missing"]].tolist() == [0, 2]
    assert table.loc["skull", "error"] == 1
    assert not any(category.startswith("platform:") for category in table.index)


def test_platform_table_is_complete():
    assert set(PLATFORMS) == {
        "apple", "google", "twitter", "facebook", "twemoji", "openmoji", "noto", "fluent",
    }  # fmt: skip
    assert all(platform.licence for platform in PLATFORMS.values())
