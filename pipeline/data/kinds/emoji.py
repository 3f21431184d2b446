"""The ``emoji`` data set kind: person and face emoji of one platform, from npm packages.

Sources are unpacked npm packages (``npm pack``: each one a folder ``package/``
with its ``package.json``); ``root`` may be such a package, the folder that
holds ``package/``, or a folder holding several of them
(``<any>/package/package.json``).

Which emoji, their names, categories and skin-tone variants come from
``emoji.json`` of ``emoji-datasource`` (every ``emoji-datasource-<platform>``
package ships the same file). The images come from the platform's package:

============  ======  ===================================  ============================
platform      kind    npm package                          images
============  ======  ===================================  ============================
apple         raster  emoji-datasource-apple               ``img/apple/64/<image>``
google        raster  emoji-datasource-google              ``img/google/64/<image>``
twitter       raster  emoji-datasource-twitter             ``img/twitter/64/<image>``
facebook      raster  emoji-datasource-facebook            ``img/facebook/64/<image>``
twemoji       svg     @twemoji/svg                         ``<codepoints>.svg``
openmoji      svg     openmoji                             ``color/svg/<CODEPOINTS>.svg``
noto          icons   @iconify-json/noto                   ``icons.json`` + ``chars.json``
fluent        icons   @iconify-json/fluent-emoji-flat      ``icons.json`` + ``chars.json``
============  ======  ===================================  ============================

Raster sets exist at 64 px only (larger sizes are sprite sheets); vector sets are
rendered with resvg at ``size`` x ``size``. Every image, raster or rendered, is
composited on ``background`` (transparent pixels take that colour) and written
as an 8-bit RGB PNG under ``render_dir``; the manifest's ``path`` is that PNG and
``source_path`` the original file (``icons.json#<name>`` for icon sets).

One row per emoji and skin-tone variant (``condition`` ``default`` or
``skin:1`` .. ``skin:5``; ``subject`` is the base emoji's codepoints, the same on
every platform). An emoji the platform does not draw keeps its row with status
``missing`` and reason ``not drawn on <platform>``; an unreadable, undecodable or
fully transparent image has status ``error`` and says why.

Options (``datasets.<name>``): ``platform`` (required), ``render_dir`` (required,
a cache folder), ``size`` (256), ``background`` (``FFFFFF``), ``metadata_root``
(folder with ``emoji.json``; default: found in the platform package or beside
it), ``subcategories`` (default ``emoji_categories.DEFAULT_SUBCATEGORIES``),
``limit``, ``split``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image
from tqdm import tqdm

from pipeline.data.kinds.emoji_categories import (
    DEFAULT_SUBCATEGORIES,
    name_categories,
    skin_tones,
)
from pipeline.io import InputError, pixel_limit, save_png, sha256_file, too_many_pixels
from pipeline.vocabulary import ALL_IMAGES, ERROR, MANIFEST_COLUMNS, MISSING, OK

log = logging.getLogger(__name__)

# The options of this kind (datasets.<name>.<option>), besides every kind's own, and
# those a data set of it must give.
OPTIONS = frozenset({"platform", "metadata", "size", "background", "subcategories"})
REQUIRED = ("platform",)

DEFAULT_SIZE = 256
DEFAULT_BACKGROUND = "FFFFFF"
RASTER_SIZE = 64


@dataclass(frozen=True)
class Platform:
    """Where one platform's images live and under which terms they are published."""

    name: str
    kind: str  # "raster" (PNG files), "svg" (SVG files) or "icons" (an iconify JSON set)
    package: str  # npm package name, as in its package.json
    layout: str  # folder (or file, for icon sets) inside the package
    licence: str  # of the images, which can differ from the package's code licence


# Licences as the packages state them for their images (READMEs, LICENSE files,
# iconify info.json); the emoji-datasource packages say MIT for their code only.
PLATFORMS: dict[str, Platform] = {
    "apple": Platform(
        "apple", "raster", "emoji-datasource-apple", "img/apple/64",
        "proprietary (Apple Inc.; not licensed for commercial use)",
    ),
    "google": Platform(
        "google", "raster", "emoji-datasource-google", "img/google/64", "Apache-2.0 (Noto Emoji)"
    ),
    "twitter": Platform(
        "twitter", "raster", "emoji-datasource-twitter", "img/twitter/64", "CC-BY-4.0 (Twemoji)"
    ),
    "facebook": Platform(
        "facebook", "raster", "emoji-datasource-facebook", "img/facebook/64",
        "proprietary (Meta/Facebook; no clear licence)",
    ),
    "twemoji": Platform("twemoji", "svg", "@twemoji/svg", ".", "CC-BY-4.0 (Twemoji graphics)"),
    "openmoji": Platform("openmoji", "svg", "openmoji", "color/svg", "CC-BY-SA-4.0"),
    "noto": Platform("noto", "icons", "@iconify-json/noto", "icons.json", "Apache-2.0"),
    "fluent": Platform(
        "fluent", "icons", "@iconify-json/fluent-emoji-flat", "icons.json", "MIT"
    ),
}  # fmt: skip

EXTRA_COLUMNS = [
    "source_path", "source_sha256", "platform", "licence", "package", "metadata_package",
    "unified", "emoji_name", "short_names", "emoji_category", "subcategory", "skin_tone",
    "render_size", "background",
]  # fmt: skip


# --------------------------------------------------------------------------- packages


@dataclass(frozen=True)
class Package:
    folder: Path  # the folder holding package.json
    name: str
    version: str

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def find_packages(root: Path) -> list[Package]:
    """Unpacked npm packages at ``root``, in ``root/package``, or one or two folders below."""
    root = Path(root)
    patterns = (
        "package.json",
        "package/package.json",
        "*/package.json",
        "*/package/package.json",
        "*/*/package/package.json",
    )
    folders = dict.fromkeys(
        path.parent.resolve() for pattern in patterns for path in sorted(root.glob(pattern))
    )
    packages = []
    for folder in folders:
        try:
            info = json.loads((folder / "package.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problem = f"not a readable package.json ({exc})"
            raise InputError(folder / "package.json", problem) from exc
        packages.append(Package(folder, str(info.get("name", "")), str(info.get("version", ""))))
    return packages


def platform_package(root: Path, platform: Platform) -> Package:
    """The platform's package under ``root``: by name, else the one package with its layout."""
    packages = find_packages(root)
    named = [p for p in packages if p.name == platform.package]
    if not named:
        named = [p for p in packages if (p.folder / platform.layout).exists()]
    if len(named) != 1:
        found = ", ".join(p.label for p in packages) or "no package.json"
        problem = "several candidates" if named else "not found"
        raise InputError(
            root, f"npm package {platform.package} for platform {platform.name}: {problem} "
            f"(found: {found})",
        )  # fmt: skip
    return named[0]


def metadata_file(root: Path, platform_pkg: Package, metadata_root: Path | None) -> Path:
    """``emoji.json`` from ``metadata_root`` if given, else the platform package, else beside it."""
    if metadata_root is not None:
        metadata_root = Path(metadata_root)
        if metadata_root.is_file():
            return metadata_root
        candidates = _with_emoji_json(find_packages(metadata_root))
        if not candidates and (metadata_root / "emoji.json").is_file():
            return metadata_root / "emoji.json"
        if not candidates:
            raise InputError(metadata_root, "no emoji.json found (expected emoji-datasource)")
        return candidates[0].folder / "emoji.json"
    if (platform_pkg.folder / "emoji.json").is_file():
        return platform_pkg.folder / "emoji.json"
    candidates = _with_emoji_json(find_packages(root))
    if not candidates:
        raise InputError(
            root, "no emoji.json found: set the data set's metadata_root to the unpacked "
            "emoji-datasource package",
        )  # fmt: skip
    return candidates[0].folder / "emoji.json"


def _with_emoji_json(packages: list[Package]) -> list[Package]:
    """Packages that ship emoji.json, emoji-datasource itself first."""
    found = [p for p in packages if (p.folder / "emoji.json").is_file()]
    return sorted(found, key=lambda p: (p.name != "emoji-datasource", p.name))


def package_of(path: Path) -> str:
    """``name@version`` of the package holding ``path`` (a file in its top folder)."""
    try:
        info = json.loads((Path(path).parent / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return f"{info.get('name', '')}@{info.get('version', '')}"


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class Variant:
    """One emoji image to look for: a base emoji or one of its skin-tone variants."""

    base: str  # codepoints of the base emoji, upper case, e.g. 1F474
    unified: str  # codepoints of this variant, e.g. 1F474-1F3FB
    modifiers: str  # skin_variations key ("" for the default), e.g. 1F3FB
    image: str  # emoji-datasource's file name, e.g. 1f474-1f3fb.png
    drawn: Mapping[str, bool]  # emoji-datasource's has_img_<platform> flags
    name: str
    short_names: tuple[str, ...]
    category: str
    subcategory: str

    @property
    def tones(self) -> list[int]:
        return skin_tones(self.modifiers) if self.modifiers else []

    @property
    def condition(self) -> str:
        return "skin:" + "-".join(map(str, self.tones)) if self.modifiers else "default"

    def image_id(self, platform: str) -> str:
        suffix = "skin" + "-".join(map(str, self.tones)) if self.modifiers else "default"
        return re.sub(r"[^A-Za-z0-9._+-]", "_", f"{platform}__{self.base.lower()}__{suffix}")

    def categories(self, platform: str) -> list[str]:
        found = name_categories((self.name, *self.short_names), self.subcategory)
        tones = [f"skin:{tone}" for tone in dict.fromkeys(self.tones)]
        return [*found, *tones, f"platform:{platform}"]


def load_metadata(path: Path) -> list[dict[str, Any]]:
    """The entries of an emoji-datasource ``emoji.json``, checked for the fields used here."""
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(path, f"not a readable emoji.json ({exc})") from exc
    required = ("unified", "name", "image", "category", "subcategory")
    if not isinstance(entries, list) or not all(
        isinstance(entry, dict) and all(key in entry for key in required) for entry in entries
    ):
        raise InputError(path, f"not an emoji-datasource emoji.json (a list of {required})")
    return entries


def variants(
    entries: Sequence[Mapping[str, Any]], subcategories: Sequence[str] = DEFAULT_SUBCATEGORIES
) -> list[Variant]:
    """Every emoji of ``subcategories`` and each of its skin-tone variants."""
    keep = set(subcategories)
    found = []
    for entry in entries:
        if entry["subcategory"] not in keep:
            continue
        common = {
            "base": entry["unified"].upper(),
            "name": entry["name"] or "",
            "short_names": tuple(entry.get("short_names") or ()),
            "category": entry["category"],
            "subcategory": entry["subcategory"],
        }
        found.append(
            Variant(
                unified=entry["unified"].upper(), modifiers="", image=entry["image"],
                drawn=_drawn(entry), **common,
            )
        )  # fmt: skip
        for modifiers, variation in sorted((entry.get("skin_variations") or {}).items()):
            found.append(
                Variant(
                    unified=variation["unified"].upper(), modifiers=modifiers.upper(),
                    image=variation["image"], drawn=_drawn(variation), **common,
                )
            )  # fmt: skip
    return found


def _drawn(entry: Mapping[str, Any]) -> dict[str, bool]:
    return {
        key.removeprefix("has_img_"): bool(value)
        for key, value in entry.items()
        if key.startswith("has_img_")
    }


# --------------------------------------------------------------------------- finding images


@dataclass(frozen=True)
class Drawing:
    """A platform's image of one emoji: a file, or an SVG built from an icon set."""

    source_path: str  # the file, or <icons.json>#<icon name>
    kind: str  # "png" or "svg"
    file: Path | None = None
    svg: str | None = None

    def read(self) -> bytes:
        return self.file.read_bytes() if self.file is not None else self.svg.encode("utf-8")


# A finder returns the drawing, None when the platform does not draw the emoji,
# or raises InputError when the package contradicts itself.
Finder = Callable[[Variant], "Drawing | None"]


def code_keys(unified: str) -> list[str]:
    """File-name keys to try for an emoji, lower case: as given, then without any U+FE0F
    (Twemoji, OpenMoji and the iconify sets drop the variation selector in some names)."""
    exact = unified.lower()
    stripped = "-".join(part for part in exact.split("-") if part != "fe0f")
    return list(dict.fromkeys([exact, stripped]))


def raster_finder(platform: Platform, package: Package) -> Finder:
    folder = package.folder / platform.layout
    if not folder.is_dir():
        raise InputError(folder, f"image folder of {package.label} not found")

    def find(variant: Variant) -> Drawing | None:
        # emoji-datasource packages may hold fallback images (another platform's
        # drawing) for emoji a platform lacks; its has_img flag is the truth.
        if not variant.drawn.get(platform.name, False):
            return None
        path = folder / variant.image
        if not path.is_file():
            raise InputError(path, f"emoji.json says {platform.name} draws it, but it is absent")
        return Drawing(str(path), "png", file=path)

    return find


def svg_finder(platform: Platform, package: Package) -> Finder:
    folder = package.folder / platform.layout
    if not folder.is_dir():
        raise InputError(folder, f"SVG folder of {package.label} not found")
    index = {path.stem.lower(): path for path in sorted(folder.glob("*.svg"))}
    if not index:
        raise InputError(folder, f"no SVG files in {package.label}")

    def find(variant: Variant) -> Drawing | None:
        for key in code_keys(variant.unified):
            if key in index:
                return Drawing(str(index[key]), "svg", file=index[key])
        return None

    return find


def icons_finder(platform: Platform, package: Package) -> Finder:
    icons_path = package.folder / platform.layout
    icon_set = _read_json(icons_path)
    if not isinstance(icon_set, dict) or "icons" not in icon_set:
        raise InputError(icons_path, "not an iconify icon set (no 'icons')")
    chars_path = package.folder / "chars.json"
    chars = _read_json(chars_path) if chars_path.is_file() else icon_set.get("chars")
    if not isinstance(chars, dict) or not chars:
        raise InputError(package.folder, "iconify set without a codepoint map (chars.json)")

    def find(variant: Variant) -> Drawing | None:
        for key in code_keys(variant.unified):
            if key in chars:
                name = chars[key]
                return Drawing(f"{icons_path}#{name}", "svg", svg=iconify_svg(icon_set, name))
        return None

    return find


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(path, f"not readable JSON ({exc})") from exc


FINDERS: dict[str, Callable[[Platform, Package], Finder]] = {
    "raster": raster_finder,
    "svg": svg_finder,
    "icons": icons_finder,
}


def iconify_svg(icon_set: Mapping[str, Any], name: str) -> str:
    """A standalone SVG document of icon ``name`` of an iconify JSON set.

    Aliases are followed to their parent; their ``hFlip``/``vFlip`` toggle and
    ``rotate`` (quarter turns) add up, and their box values override the
    parent's. Written by hand: the iconify tools are JavaScript, and this is
    the small part of their format that emoji sets use.
    """
    icon = _resolve_icon(icon_set, name, depth=0)
    left, top, width, height = (float(icon[key]) for key in ("left", "top", "width", "height"))
    body = str(icon["body"])
    if icon["hFlip"] or icon["vFlip"]:
        sx, sy = (-1 if icon["hFlip"] else 1), (-1 if icon["vFlip"] else 1)
        dx = 2 * left + width if icon["hFlip"] else 0
        dy = 2 * top + height if icon["vFlip"] else 0
        body = f'<g transform="translate({dx:g} {dy:g}) scale({sx} {sy})">{body}</g>'
    turns = int(icon["rotate"]) % 4
    if turns:
        cx, cy = left + width / 2, top + height / 2
        body = f'<g transform="rotate({90 * turns} {cx:g} {cy:g})">{body}</g>'
        if turns % 2:
            left, top, width, height = cx - height / 2, cy - width / 2, height, width
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'viewBox="{left:g} {top:g} {width:g} {height:g}">{body}</svg>'
    )


def _resolve_icon(icon_set: Mapping[str, Any], name: str, depth: int) -> dict[str, Any]:
    icons, aliases = icon_set["icons"], icon_set.get("aliases") or {}
    if name in icons:
        defaults = {"left": 0, "top": 0, "width": 16, "height": 16}
        box = {key: icon_set.get(key, value) for key, value in defaults.items()}
        icon = {"hFlip": False, "vFlip": False, "rotate": 0, **box, **icons[name]}
        return icon
    if name not in aliases or depth > 8:
        raise KeyError(f"icon {name!r} is not in the icon set (or its aliases loop)")
    alias = aliases[name]
    icon = _resolve_icon(icon_set, alias["parent"], depth + 1)
    for key in ("left", "top", "width", "height"):
        if key in alias:
            icon[key] = alias[key]
    icon["hFlip"] = icon["hFlip"] != bool(alias.get("hFlip", False))
    icon["vFlip"] = icon["vFlip"] != bool(alias.get("vFlip", False))
    icon["rotate"] = int(icon["rotate"]) + int(alias.get("rotate", 0))
    return icon


# --------------------------------------------------------------------------- rendering


def parse_background(value: str) -> tuple[int, int, int]:
    """``RRGGBB`` (optionally with ``#``) as an RGB triple."""
    text = str(value).strip().removeprefix("#")
    if not re.fullmatch(r"[0-9A-Fa-f]{6}", text):
        raise ValueError(f"background {value!r}: expected an RGB hex colour such as FFFFFF")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def renderer_version() -> str:
    import resvg_py

    return f"resvg-py {resvg_py.__version__} (resvg {resvg_py.__resvg_version__})"


def render_svg(svg: str, size: int) -> Image.Image:
    """Rasterise an SVG document to an RGBA image of ``size`` x ``size``.

    The drawing is scaled to fit and centred (emoji are square, so it fills the
    image). System fonts are not loaded, so the output depends on no font of the
    machine: the same SVG gives the same pixels everywhere.
    """
    import resvg_py  # imported here: only vector platforms need it

    png = resvg_py.svg_to_bytes(svg_string=svg, width=size, height=size, skip_system_fonts=True)
    with Image.open(io.BytesIO(bytes(png))) as opened:
        image = opened.convert("RGBA")
    if image.size != (size, size):
        canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
        image = canvas
    return image


def decode_drawing(data: bytes, kind: str, size: int, max_pixels: int | None = None) -> Image.Image:
    """The RGBA image of a drawing's bytes; ``ValueError`` says why it cannot be used.

    A raster drawing of more than ``max_pixels`` pixels (None: Pillow's own
    limit) is refused from its header, before decoding.
    """
    if not data:
        raise ValueError("empty file (0 bytes)")
    if kind == "svg":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"SVG is not UTF-8 text ({exc})") from exc
        try:
            image = render_svg(text, size)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # resvg raises ValueError, a Rust panic BaseException
            raise ValueError(f"cannot render SVG ({exc})") from exc
    else:
        try:
            with pixel_limit(max_pixels), Image.open(io.BytesIO(data)) as opened:
                opened.load()
                image = opened.convert("RGBA")
        except Image.DecompressionBombError as exc:
            raise ValueError(too_many_pixels(exc, max_pixels)) from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise ValueError(f"corrupt or truncated image ({exc})") from exc
    if image.getchannel("A").getextrema()[1] == 0:
        raise ValueError("fully transparent image (nothing drawn)")
    return image


def composite(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """An RGBA image over an opaque ``background``, as 8-bit RGB."""
    canvas = Image.new("RGBA", image.size, (*background, 255))
    return Image.alpha_composite(canvas, image.convert("RGBA")).convert("RGB")


# --------------------------------------------------------------------------- catalog


def catalog(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """The manifest of one platform's person and face emoji (see the module docstring)."""
    root = Path(root)
    name = options.get("platform")
    if name not in PLATFORMS:
        raise ValueError(f"emoji data set: platform {name!r} is not one of {sorted(PLATFORMS)}")
    if not options.get("render_dir"):
        raise ValueError("emoji data set: options['render_dir'] (cache folder for PNGs) is unset")
    platform = PLATFORMS[name]
    size = RASTER_SIZE if platform.kind == "raster" else int(options.get("size") or DEFAULT_SIZE)
    if size < 1:
        raise ValueError(f"emoji data set: size {size} must be positive")
    background = parse_background(options.get("background") or DEFAULT_BACKGROUND)
    render_dir = Path(options["render_dir"])

    package = platform_package(root, platform)
    metadata_root = options.get("metadata_root")
    meta_path = metadata_file(root, package, Path(metadata_root) if metadata_root else None)
    entries = load_metadata(meta_path)
    subcategories = list(options.get("subcategories") or DEFAULT_SUBCATEGORIES)
    unknown = sorted(set(subcategories) - {entry["subcategory"] for entry in entries})
    if unknown and options.get("subcategories"):  # a typo in the config, not an old emoji.json
        raise ValueError(f"{meta_path}: no emoji in subcategories {unknown}")
    found = sorted(variants(entries, subcategories), key=lambda v: v.image_id(name))
    if not found:
        raise InputError(meta_path, f"no emoji in subcategories {subcategories}")
    if options.get("limit") is not None:
        found = found[: int(options["limit"])]

    finder = FINDERS[platform.kind](platform, package)
    fixed = {
        "platform": name, "licence": licence_of(platform, package), "package": package.label,
        "metadata_package": package_of(meta_path), "split": options.get("split", "test"),
        "render_size": size, "background": "{:02X}{:02X}{:02X}".format(*background),
    }  # fmt: skip
    rows = []
    for variant in tqdm(found, desc=f"catalog emoji {name}", unit="img", mininterval=5):
        row = _describe(variant, name)
        record = _image_record(
            variant, finder, name, size, background, render_dir, root, options.get("max_pixels")
        )
        row.update(record)
        rows.append(row)
    manifest = pd.DataFrame(rows)
    for key, value in fixed.items():
        manifest[key] = value
    manifest = manifest.astype(
        dict.fromkeys(["width", "height", "bytes", "skin_tone", "exif_orientation"], "Int64")
    )
    counts = Counter(zip(manifest["status"], manifest["reason"], strict=True))
    log.info("cataloged %d %s emoji rows from %s: %s", len(manifest), name, package.label, counts)
    return manifest[MANIFEST_COLUMNS + EXTRA_COLUMNS].reset_index(drop=True)


def licence_of(platform: Platform, package: Package) -> str:
    """The images' licence: an iconify set's own info.json when it names one, else the table."""
    info_path = package.folder / "info.json"
    if platform.kind == "icons" and info_path.is_file():
        try:
            spdx = json.loads(info_path.read_text(encoding="utf-8"))["license"]["spdx"]
        except (OSError, ValueError, KeyError, TypeError):
            return platform.licence
        return str(spdx)
    return platform.licence


def _describe(variant: Variant, platform: str) -> dict[str, Any]:
    tones = variant.tones
    return {
        "image_id": variant.image_id(platform),
        "subject": variant.base,
        "condition": variant.condition,
        "categories": variant.categories(platform),
        "unified": variant.unified,
        "emoji_name": variant.name,
        "short_names": list(variant.short_names),
        "emoji_category": variant.category,
        "subcategory": variant.subcategory,
        "skin_tone": tones[0] if len(tones) == 1 else None,
    }


def _image_record(
    variant: Variant,
    finder: Finder,
    platform: str,
    size: int,
    background: tuple[int, int, int],
    render_dir: Path,
    root: Path,
    max_pixels: int | None = None,
) -> dict[str, Any]:
    """Find, decode, composite and write one emoji image; the manifest fields it fills.

    The image is a PNG written here, upright: its ``exif_orientation`` is 1.
    """
    record: dict[str, Any] = dict.fromkeys(
        ("path", "relpath", "sha256", "bytes", "width", "height", "mode", "format",
         "exif_orientation", "source_path", "source_sha256"),
    )  # fmt: skip
    try:
        drawing = finder(variant)
    except InputError as exc:
        return {**record, "status": ERROR, "reason": str(exc)}
    if drawing is None:
        return {**record, "status": MISSING, "reason": f"not drawn on {platform}"}
    record["source_path"] = drawing.source_path
    record["relpath"] = _relative(drawing.source_path, root)
    try:
        data = drawing.read()
    except OSError as exc:
        return {**record, "status": ERROR, "reason": f"cannot read {drawing.source_path} ({exc})"}
    record["source_sha256"] = hashlib.sha256(data).hexdigest()
    # The cache key holds everything the PNG depends on, the renderer's version included.
    engine = renderer_version() if drawing.kind == "svg" else f"pillow {Image.__version__}"
    key = hashlib.sha256(
        f"{record['source_sha256']}|{drawing.kind}|{size}|{background}|{engine}".encode()
    ).hexdigest()[:16]
    out = render_dir / f"{variant.image_id(platform)}.{key}.png"
    if not out.is_file():  # written atomically: present means complete
        try:
            image = decode_drawing(data, drawing.kind, size, max_pixels)
        except ValueError as exc:
            return {**record, "status": ERROR, "reason": str(exc)}
        save_png(out, composite(image, background))
    with Image.open(out) as rendered:
        width, height, mode = rendered.width, rendered.height, rendered.mode
    return {
        **record, "path": str(out), "sha256": sha256_file(out), "bytes": out.stat().st_size,
        "width": width, "height": height, "mode": mode, "format": "PNG", "exif_orientation": 1,
        "status": OK, "reason": "",
    }  # fmt: skip


def _relative(source_path: str, root: Path) -> str:
    try:
        return str(Path(source_path).resolve().relative_to(root.resolve()))
    except ValueError:
        return source_path


# --------------------------------------------------------------------------- coverage


def coverage(manifest: pd.DataFrame) -> pd.DataFrame:
    """Rows per platform x category x status (``all`` counts every row once).

    Platform categories are left out of the category axis (the platform is its own column).
    """
    long = manifest[["platform", "categories", "status"]].copy()
    long["categories"] = [
        [ALL_IMAGES, *(c for c in cats if not str(c).startswith("platform:"))]
        for cats in long["categories"]
    ]
    long = long.explode("categories").rename(columns={"categories": "category"})
    table = long.groupby(["platform", "category", "status"]).size().unstack("status", fill_value=0)
    for status in (OK, MISSING, ERROR):
        if status not in table:
            table[status] = 0
    table = table[[OK, MISSING, ERROR]].reset_index()
    table["total"] = table[[OK, MISSING, ERROR]].sum(axis=1)
    table.columns.name = None
    return table.sort_values(["platform", "category"], kind="stable").reset_index(drop=True)
