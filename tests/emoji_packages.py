"""Fake npm emoji packages in the real layouts, built in a temporary folder.

emoji-datasource 16, @twemoji/svg 15, openmoji 17, @iconify-json/noto 1.2:
file names, the has_img flags, U+FE0F dropped from some SVG names, iconify
chars.json and aliases.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image, ImageDraw

TONES = ("1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF")
RASTER = ("apple", "google", "twitter", "facebook")


def entry(unified, name, short, category, subcategory, not_on=(), tones=False):
    """An emoji.json entry as emoji-datasource writes it (the fields the catalog reads)."""
    flags = {f"has_img_{p}": p not in not_on for p in RASTER}
    record = {
        "unified": unified, "name": name, "short_name": short[0], "short_names": list(short),
        "image": unified.lower() + ".png", "category": category, "subcategory": subcategory,
        "sort_order": 1, "skin_variations": None, **flags,
    }  # fmt: skip
    if tones:
        bare = unified.replace("-FE0F", "")
        record["skin_variations"] = {
            tone: {
                # As in emoji.json: the variant drops U+FE0F (1F575-FE0F -> 1F575-1F3FB).
                "unified": f"{bare}-{tone}", "image": f"{bare}-{tone}.png".lower(),
                **{f"has_img_{p}": not (p == "facebook" and tone == "1F3FF") for p in RASTER},
            }
            for tone in TONES
        }  # fmt: skip
    return record


PEOPLE = "People & Body"
SMILEYS = "Smileys & Emotion"
EMOJI = [
    entry("1F474", "OLDER MAN", ["older_man"], PEOPLE, "person", tones=True),
    entry("1F575-FE0F", "DETECTIVE", ["sleuth_or_spy"], PEOPLE, "person-role", tones=True),
    entry("1F9DF", "ZOMBIE", ["zombie"], PEOPLE, "person-fantasy"),
    entry("1F60E", "SMILING FACE WITH SUNGLASSES", ["sunglasses"], SMILEYS, "face-glasses"),
    entry("1F480", "SKULL", ["skull"], SMILEYS, "face-negative"),
    entry("1FAE9", "FACE WITH BAGS UNDER EYES", ["bags"], SMILEYS, "face-sleepy", ("facebook",)),
    entry("1F4A9", "PILE OF POO", ["hankey", "poop"], SMILEYS, "face-costume"),
    entry("1F436", "DOG FACE", ["dog"], "Animals & Nature", "animal-mammal"),
]
KEPT_ROWS = 6 + 6 + 1 + 1 + 1 + 1  # older man and detective with 5 tones each


def all_unified() -> list[str]:
    codes = []
    for record in EMOJI:
        codes.append(record["unified"])
        codes += [v["unified"] for v in (record["skin_variations"] or {}).values()]
    return codes


def emoji_png(colour=(200, 120, 40), size=64) -> Image.Image:
    """A disc on a transparent square, as emoji PNGs are."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((8, 8, size - 9, size - 9), fill=(*colour, 255))
    return image


def emoji_svg(colour="#ffcc4d", box=36) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {box} {box}">'
        f'<circle cx="{box / 2}" cy="{box / 2}" r="{box / 2 - 2}" fill="{colour}"/></svg>'
    )


def package(folder: Path, name: str, version: str = "1.0.0", metadata: bool = False) -> Path:
    root = folder / "package"
    root.mkdir(parents=True)
    (root / "package.json").write_text(json.dumps({"name": name, "version": version}))
    if metadata:
        (root / "emoji.json").write_text(json.dumps(EMOJI))
    return root


def raster_package(folder: Path, platform: str) -> Path:
    root = package(folder, f"emoji-datasource-{platform}", "16.0.0", metadata=True)
    images = root / "img" / platform / "64"
    images.mkdir(parents=True)
    for code in all_unified():
        emoji_png().save(images / f"{code.lower()}.png")
    # emoji-datasource ships fallback images for emoji a platform lacks: the flag rules.
    truncated = io.BytesIO()
    emoji_png().save(truncated, format="PNG")
    (images / "1f480.png").write_bytes(truncated.getvalue()[:60])
    return folder


def twemoji_package(folder: Path) -> Path:
    root = package(folder, "@twemoji/svg", "15.0.0")
    for code in all_unified():
        if code == "1FAE9":
            continue  # not in Twemoji 15
        # Twemoji drops U+FE0F from names without a ZWJ: 1F575-FE0F is 1f575.svg.
        name = code.lower().replace("-fe0f", "")
        (root / f"{name}.svg").write_text(emoji_svg())
    (root / "1f480.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><path d=')
    (root / "1f9df.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 9 9"/>')
    return folder


def openmoji_package(folder: Path) -> Path:
    root = package(folder, "openmoji", "17.0.0")
    svgs = root / "color" / "svg"
    svgs.mkdir(parents=True)
    for code in all_unified():
        (svgs / f"{code.upper()}.svg").write_text(emoji_svg("#f1b31c", 72))
    return folder


def noto_package(folder: Path) -> Path:
    root = package(folder, "@iconify-json/noto", "1.2.9")
    body = '<circle cx="64" cy="64" r="60" fill="#fcc21b"/>'
    icons, chars = {}, {}
    for code in all_unified():
        name = "icon-" + code.lower()
        icons[name] = {"body": body}
        chars[code.lower().replace("-fe0f", "")] = name
    chars["1f474"] = "older-man-alias"  # reached through an alias
    aliases = {"older-man-alias": {"parent": "icon-1f474"}}
    icon_set = {"prefix": "noto", "width": 128, "height": 128, "icons": icons, "aliases": aliases}
    (root / "icons.json").write_text(json.dumps(icon_set))
    (root / "chars.json").write_text(json.dumps(chars))
    info = {"prefix": "noto", "license": {"title": "Apache 2.0", "spdx": "Apache-2.0"}}
    (root / "info.json").write_text(json.dumps(info))
    return folder


def metadata_package(folder: Path) -> Path:
    package(folder, "emoji-datasource", "16.0.0", metadata=True)
    return folder
