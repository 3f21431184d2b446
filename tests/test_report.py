"""Tests for the static HTML report (pipeline.report)."""

from __future__ import annotations

import itertools
import math
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.report import assets, overview, render_report
from pipeline.report import text as words
from pipeline.report.charts import make_charts
from pipeline.report.text import category_label, format_value, metric_info

VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
ODD_METHOD = '<b>x&y</b> "q"'
TASK = "8to32"
KERNEL = "pil-bicubic"
EMOJI = "emoji_x"
FACES = "faces"
EMOJI_CATEGORIES = {
    "e1": ["old_age", "skin:1", "platform:x"],
    "e2": ["old_age", "platform:x"],
    "e3": ["skin:1", "platform:x"],
    "e10": ["beard", "platform:x"],
}
FACE_IDS = ("f1", "f2", "f3")
NO_FACE = "f2"
MISSED = (EMOJI, "e2", 1)  # (dataset, image, seed) of the PULSE search that missed eps
ANIMATED = (EMOJI, "e1", 0)


class Page(HTMLParser):
    """Collects tags, attributes, text and headings; fails on mis-nested or unclosed elements."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.feed(text)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed: {self.stack}")

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID_TAGS:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for t, attrs in self.tags if t == tag]

    @property
    def ids(self) -> list[str]:
        return [attrs["id"] for _, attrs in self.tags if attrs.get("id")]

    @property
    def headings(self) -> list[int]:
        return [int(t[1]) for t, _ in self.tags if re.fullmatch(r"h[1-6]", t)]

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


class CellText(HTMLParser):
    """Text of each table row, as lists of cell strings, per table class."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[tuple[str, list[list[str]]]] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append((dict(attrs).get("class") or "", []))
        elif tag == "tr":
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][1][-1].append(" ".join(" ".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def rows(self, cls: str) -> list[list[str]]:
        return [row for c, rows in self.tables if c == cls for row in rows]


# --------------------------------------------------------------------------- inputs


def _face(seed: int, size: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _save(root: Path, rel: str, pixels: np.ndarray) -> str:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(root / rel)
    return rel


def _lpips(k: int, method: str, seed: int) -> float:
    return round(0.1 + 0.05 * k + (0.2 if method == "pulse" else 0.0) + 0.01 * seed, 6)


def _inputs(root: Path):
    """Two data sets (one with categories), bicubic and a two-seed PULSE, real PNGs under root.

    Returns per_image, summary, run_info, manifests, faces.
    """
    rows = []
    datasets = {EMOJI: list(EMOJI_CATEGORIES), FACES: list(FACE_IDS)}
    for d, (dataset, image_ids) in enumerate(datasets.items()):
        for k, image_id in enumerate(image_ids):
            hr = _face(10 * d + k, 32)
            hr_rel = _save(root, f"data/{dataset}/hr/{image_id}.png", hr)
            lr_rel = _save(root, f"data/{dataset}/lr/{image_id}.png", hr[::4, ::4])
            for method, seeds in (("bicubic", (0,)), ("pulse", (0, 1))):
                for seed in seeds:
                    sr_rel = f"data/{dataset}/sr/{method}/{image_id}_s{seed}.png"
                    _save(root, sr_rel, 255 - hr if seed == 0 else hr // 2)
                    animation = None
                    if method == "pulse" and (dataset, image_id, seed) == ANIMATED:
                        animation = f"{image_id}_s{seed}.gif"
                        frames = [Image.fromarray(_face(s, 32)) for s in range(3)]
                        frames[0].save(
                            root / Path(sr_rel).parent / animation,
                            save_all=True,
                            append_images=frames[1:],
                        )
                    no_face = dataset == FACES and image_id == NO_FACE
                    rows.append(
                        {
                            "dataset": dataset,
                            "image_id": image_id,
                            "task": TASK,
                            "lr_size": 8,
                            "hr_size": 32,
                            "kernel": KERNEL,
                            "method": method,
                            "seed": seed,
                            # As the measure stage marks a search that missed eps.
                            "status": "eps_not_reached"
                            if (dataset, image_id, seed) == MISSED and method == "pulse"
                            else "ok",
                            "reason": "",
                            "alignment": "centre_crop" if no_face else "aligned",
                            "crop_border": 4,
                            "lr_path": lr_rel,
                            "sr_path": sr_rel,
                            "hr_path": hr_rel,
                            "psnr_y": 20.0 + k + seed,
                            "ssim_y": 0.5 + k / 10,
                            "lpips_alex": _lpips(k, method, seed),
                            "identity_distance": math.nan
                            if no_face
                            else 0.3 + 0.1 * ((k * 7 + seed) % 5),
                            "lr_psnr": 30.0 + k,
                            "converged": (dataset, image_id, seed) != MISSED
                            if method == "pulse"
                            else None,
                            "final_l2": 0.0123 if (dataset, image_id, seed) == MISSED else 0.001,
                            "animation": animation,
                        }
                    )
    per_image = pd.DataFrame(rows)
    stats = {
        ("bicubic", "psnr_y_crop4"): (24.0, 23.5, 24.5),
        ("bicubic", "ssim_y_crop4"): (0.71234, 0.7, 0.72),
        ("bicubic", "lpips_alex"): (0.31, 0.30, 0.32),
        ("pulse", "psnr_y_crop4"): (26.456, 25.9, 27.01),
        ("pulse", "ssim_y_crop4"): (0.80001, 0.79, 0.81),
        ("pulse", "lpips_alex"): (0.21, 0.2, 0.22),
    }
    summary_rows = []
    for dataset in datasets:
        categories = ["all", "old_age"] if dataset == EMOJI else ["all"]
        for category in categories:
            shift = 5.0 if category == "old_age" else 0.0
            for (method, metric), (mean, lo, hi) in stats.items():
                summary_rows.append(
                    {
                        "dataset": dataset,
                        "task": TASK,
                        "kernel": KERNEL,
                        "method": method,
                        "category": category,
                        "metric": metric,
                        "n": 2 if category == "old_age" else 4,
                        "n_excluded": 0,
                        "excluded_reasons": float("nan"),
                        "alignment": "aligned:3;prealigned:0;centre_crop:1"
                        if dataset == FACES
                        else "aligned:4;prealigned:0;centre_crop:0",
                        "mean": mean + shift,
                        "ci_low": lo + shift,
                        "ci_high": hi + shift,
                        "seed_std": 0.5 if method == "pulse" else float("nan"),
                    }
                )
    summary = pd.DataFrame(summary_rows)
    manifests = {
        EMOJI: pd.DataFrame(
            {
                "image_id": [*EMOJI_CATEGORIES, "e_bad"],
                "categories": [*EMOJI_CATEGORIES.values(), ["platform:x"]],
                "status": ["ok"] * 4 + ["error"],
                "reason": [""] * 4 + ["cannot decode image"],
            }
        ),
        FACES: pd.DataFrame(
            {
                "image_id": list(FACE_IDS),
                "categories": [[], [], []],
                "status": ["ok"] * 3,
                "reason": [""] * 3,
            }
        ),
    }
    faces = {
        EMOJI: pd.DataFrame(
            {
                "image_id": list(EMOJI_CATEGORIES),
                "status": ["ok"] * 4,
                "reason": [""] * 4,
                "alignment": ["aligned"] * 4,
            }
        ),
        FACES: pd.DataFrame(
            {
                "image_id": list(FACE_IDS),
                "status": ["ok", "fallback", "ok"],
                "reason": ["", "no face found by hog", ""],
                "alignment": ["aligned", "centre_crop", "aligned"],
                "path": [f"/nonexistent/{i}.jpg" for i in FACE_IDS],
            }
        ),
    }
    run_info = {
        "created": "2024-01-01T00:00:00+00:00",
        "git_commit": "abc123",
        "config_digest": "0123456789abcdef",
        "datasets": {
            EMOJI: _counts(5, 4, "detect", 4, aligned=4, left_out=1),
            FACES: _counts(3, 3, "detect", 2, aligned=2, centre_crop=1),
        },
        "tasks": ["8 -> 32"],
        "kernels": [KERNEL],
        "methods": {
            "bicubic": {"arch": "interpolate", "filter": "bicubic"},
            "pulse": {"arch": "pulse", "seeds": [0, 1], "steps": 100},
        },
        "metric_conventions": {"psnr_y": "Y of BT.601", "crop_border": "scale"},
        "stage_timings": {"upscale": {"seconds": 3725.5, "jobs": 4}},
        "software": {"pillow": "13.0.0"},
        "facebench_version": "0.1.0",
    }
    return per_image, summary, run_info, manifests, faces


def _counts(images, usable, policy, detected, aligned=0, prealigned=0, centre_crop=0, left_out=0):
    """A data set's entry of run_info (as pipeline.report.run_info.dataset_counts writes it)."""
    return {
        "images": images,
        "usable": usable,
        "alignment_policy": policy,
        "faces_detected": detected,
        "aligned": aligned,
        "prealigned": prealigned,
        "centre_crop": centre_crop,
        "left_out": left_out,
    }


def _fake_charts(per_image, summary, out_dir):
    """Stands in for pipeline.report.charts.make_charts: one overview chart, one per key."""
    keys = sorted({(r.dataset, r.task, r.kernel) for r in summary.itertuples()})
    charts = []
    for i, key in enumerate([("overview",), *keys]):
        path = f"charts/chart-{i}.svg"
        (out_dir / "charts").mkdir(exist_ok=True)
        (out_dir / path).write_text(
            '<svg xmlns="http://www.w3.org/2000/svg" width="300pt" height="150pt"></svg>'
        )
        charts.append(
            _Chart("/".join(key), f"chart-{i}", f"Chart {i}", path, f"Alt of chart {i}", "cap")
        )
    return charts


class _Chart:
    def __init__(self, key, id, title, path, alt, caption):
        self.key, self.id, self.title, self.path, self.alt, self.caption = (
            key,
            id,
            title,
            path,
            alt,
            caption,
        )


@pytest.fixture(autouse=True)
def fake_charts(monkeypatch):
    """Charts are pipeline.report.charts' business (and take a while): tests use a stand-in."""
    monkeypatch.setattr(overview, "make_charts", _fake_charts)


def _render(root: Path, out: Path | None = None, **options):
    per_image, summary, run_info, manifests, faces = _inputs(root)
    options.setdefault("page_size", 2)
    out = out or root / "reports" / "demo"
    index = render_report(
        per_image, summary, run_info, out, root=root, manifests=manifests, faces=faces, **options
    )
    return out, index


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(overview, "make_charts", _fake_charts)
        out, index = _render(root)
    return root, out, index


def _pages(out: Path) -> list[Path]:
    return sorted(out.rglob("*.html"))


def _gallery(out: Path, dataset: str, slug: str, page: int = 1) -> Path:
    return out / "galleries" / dataset / slug / f"page-{page}.html"


# --------------------------------------------------------------------------- structure


def test_pages_exist_and_paginate(rendered):
    _, out, index = rendered
    assert index == out / "index.html"
    assert (out / "failures.html").is_file()
    # One key (task x kernel) per data set: rows = images; two rows per page.
    expected = {
        (EMOJI, "all"): 4,
        (EMOJI, "old_age"): 2,
        (EMOJI, "skin-1"): 2,
        (EMOJI, "beard"): 1,
        (FACES, "all"): 3,
    }
    folders = {
        (p.parent.parent.name, p.parent.name) for p in (out / "galleries").rglob("page-*.html")
    }
    assert folders == set(expected), "platform:x holds every image and repeats 'all'"
    for (dataset, slug), n_rows in expected.items():
        pages = sorted((out / "galleries" / dataset / slug).glob("page-*.html"))
        assert len(pages) == math.ceil(n_rows / 2), (dataset, slug)
        counted = 0
        for n, page in enumerate(sorted(pages, key=lambda p: p.name), start=1):
            rows = [t for t, a in Page(page.read_text("utf-8")).tags if t == "tr" and a.get("id")]
            assert len(rows) == (2 if n * 2 <= n_rows else n_rows - 2 * (n - 1))
            counted += len(rows)
        assert counted == n_rows
    first = Page(_gallery(out, EMOJI, "all", 1).read_text("utf-8"))
    hrefs = {a["href"] for a in first.find("a")}
    assert "page-2.html" in hrefs and "page-1.html" in hrefs
    ids = [row[0] for row in CellText(_gallery(out, EMOJI, "all", 1).read_text()).rows("gallery")]
    assert ids[1:] == ["e1", "e2"], "natural order: e1, e2, e3, e10"


def test_every_page_is_well_formed_and_accessible(rendered):
    _, out, _ = rendered
    for page_path in _pages(out):
        text = page_path.read_text("utf-8")
        page = Page(text)
        assert page.errors == [], page_path
        assert page.find("html")[0].get("lang") == "en"
        assert any(m.get("charset") == "utf-8" for m in page.find("meta"))
        assert any(m.get("name") == "viewport" for m in page.find("meta"))
        assert page.find("script") == [], "the report must work without JavaScript"
        headings = page.headings
        assert headings[0] == 1 and headings.count(1) == 1, page_path
        assert all(b <= a + 1 for a, b in itertools.pairwise(headings)), page_path
        ids = page.ids
        assert len(ids) == len(set(ids)), page_path
        assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", i) for i in ids), page_path
        for table in re.findall(r"<table\b.*?</table>", text, flags=re.S):
            assert "<caption>" in table, page_path
            assert all('scope="' in th for th in re.findall(r"<th\b[^>]*>", table)), page_path


def test_every_image_has_alt_size_and_a_local_file(rendered):
    _, out, _ = rendered
    n_images = 0
    for page_path in _pages(out):
        for attrs in Page(page_path.read_text("utf-8")).find("img"):
            n_images += 1
            assert (attrs.get("alt") or "").strip(), (page_path, attrs)
            assert int(attrs["width"]) > 0 and int(attrs["height"]) > 0, attrs
            assert attrs.get("loading") == "lazy"
            src = (page_path.parent / attrs["src"]).resolve()
            assert src.is_relative_to(out.resolve()) and src.is_file(), attrs["src"]
            if src.suffix == ".webp":
                with Image.open(src) as thumb:
                    assert thumb.format == "WEBP"
                    assert max(thumb.size) <= assets.THUMB_MAX
                    assert thumb.size == (int(attrs["width"]), int(attrs["height"]))
    assert n_images > 20


def test_links_are_relative_local_and_resolve(rendered):
    _, out, _ = rendered
    ids = {p.resolve(): set(Page(p.read_text("utf-8")).ids) for p in _pages(out)}
    n_links = 0
    for page_path in _pages(out):
        page = Page(page_path.read_text("utf-8"))
        for _, attrs in page.tags:
            for name in ("src", "href"):
                ref = attrs.get(name)
                if not ref:
                    continue
                n_links += 1
                assert not re.match(r"^([a-z][a-z0-9+.-]*:|//|/)", ref, re.I), (page_path, ref)
                target, _, fragment = ref.partition("#")
                resolved = (page_path.parent / target).resolve() if target else page_path.resolve()
                assert resolved.is_relative_to(out.resolve()) and resolved.is_file(), ref
                if fragment:
                    assert fragment in ids[resolved], (page_path, ref)
    assert n_links > 50
    css = (out / "assets" / "report.css").read_text("utf-8")
    assert "url(" not in css and "@import" not in css and "http" not in css
    assert "@media print" in css


def test_thumbnails_are_webp_and_link_full_images(rendered):
    root, out, _ = rendered
    text = _gallery(out, FACES, "all", 1).read_text("utf-8")
    pairs = re.findall(r'<a href="([^"]+)"><img src="([^"]+)"', text)
    assert pairs
    for full, thumb in pairs:
        assert thumb.endswith(".webp") and "/thumbs/" in thumb
        assert full.endswith(".png") and "/full/" in full
    # The ground truth's full-size image is the source file, byte for byte.
    hr_full = pairs[-1][0]  # last tile of the last row on the page: f2's ground truth
    source = root / "data" / FACES / "hr" / "f2.png"
    assert (_gallery(out, FACES, "all", 1).parent / hr_full).read_bytes() == source.read_bytes()


def test_lr_is_enlarged_with_nearest_neighbour(rendered):
    root, out, _ = rendered
    page_path = _gallery(out, FACES, "all", 1)
    page = Page(page_path.read_text("utf-8"))
    lr_img = next(a for a in page.find("img") if "f1: LR input" in a["alt"])
    lr = np.asarray(Image.open(root / "data" / FACES / "lr" / "f1.png").convert("RGB"))
    blocks = lr.repeat(4, axis=0).repeat(4, axis=1)
    thumb = np.asarray(Image.open(page_path.parent / lr_img["src"]).convert("RGB"))
    np.testing.assert_array_equal(thumb, blocks)
    full_href = re.search(
        r'<a href="([^"]+)"><img src="' + re.escape(lr_img["src"]), page_path.read_text()
    )[1]
    full = np.asarray(Image.open(page_path.parent / full_href).convert("RGB"))
    np.testing.assert_array_equal(full, blocks)
    assert f"8{words.TIMES}8, shown {words.TIMES}4" in page.all_text


def test_gallery_row_shows_every_seed_metrics_and_alt_text(rendered):
    _, out, _ = rendered
    text = _gallery(out, EMOJI, "all", 1).read_text("utf-8")
    header, first, _ = CellText(text).rows("gallery")
    assert header == [
        "Image",
        "LR input",
        "pulse (seed 0)",
        "pulse (seed 1)",
        "bicubic",
        "Ground truth (HR)",
    ], "methods in the summary's order: PULSE has the better PSNR"
    # e1 (k=0), PULSE seed 1: PSNR-Y 21.00, LPIPS 0.1+0.2+0.01.
    assert "PSNR-Y 21.00 dB" in first[3] and "LPIPS 0.3100" in first[3]
    assert "ID dist" in first[3] and "LR-PSNR 30.00 dB" in first[3]
    alts = [a["alt"] for a in Page(text).find("img")]
    assert f"{EMOJI} e1: pulse output, 8{words.ARROW}32, {KERNEL}, seed 1" in alts
    assert f"{EMOJI} e1: bicubic output, 8{words.ARROW}32, {KERNEL}, seed 0" in alts


def test_missed_eps_and_animation_in_gallery(rendered):
    _, out, _ = rendered
    text = _gallery(out, EMOJI, "all", 1).read_text("utf-8")
    rows = {row[0]: row for row in CellText(text).rows("gallery")[1:]}
    assert "missed eps (L2 0.0123)" in rows["e2"][3]
    assert "missed eps" not in rows["e2"][2] and "missed eps" not in rows["e1"][3]
    page = Page(text)
    animation = [a["href"] for a in page.find("a") if a["href"].endswith(".gif")]
    assert len(animation) == 1
    assert "search steps of seed 0 (animation)" in rows["e1"][2]
    with Image.open(_gallery(out, EMOJI, "all", 1).parent / animation[0]) as gif:
        assert gif.n_frames == 3


def test_extra_seeds_become_links(tmp_path):
    out, _ = _render(tmp_path, seeds_shown=1)
    text = _gallery(out, FACES, "all", 1).read_text("utf-8")
    header, first, _ = CellText(text).rows("gallery")
    assert header[2] == "pulse (seed 0)" and "pulse (seed 1)" not in header
    assert "pulse seed 1 (full size)" in first[2]


def test_categories_ordered_by_size_with_readable_names(rendered):
    _, out, index = rendered
    page_path = _gallery(out, EMOJI, "old_age")
    page = Page(page_path.read_text("utf-8"))
    nav = [
        (page_path.parent / a["href"]).resolve().relative_to(out.resolve() / "galleries").as_posix()
        for a in page.find("a")
        if a["href"].endswith("page-1.html")
    ]
    assert nav[:4] == [
        f"{EMOJI}/all/page-1.html",
        f"{EMOJI}/old_age/page-1.html",
        f"{EMOJI}/skin-1/page-1.html",
        f"{EMOJI}/beard/page-1.html",
    ]
    assert "emoji_x: old age" in page.all_text
    assert "skin tone 1 (2)" in Page(index.read_text("utf-8")).all_text


def test_category_page_has_its_own_summary(rendered):
    _, out, _ = rendered
    text = _gallery(out, EMOJI, "old_age").read_text("utf-8")
    header, *body = CellText(text).rows("summary")
    assert header[1].startswith("PSNR (Y), crop 4")
    # Per-category means are shifted by 5 in the fixture: 26.456 + 5.
    assert body[0][0] == "pulse" and body[0][1].startswith("31.46 [30.90, 32.01] n = 2")
    # The "all" page of the other data set does not show this data set's rows.
    faces_all = CellText(_gallery(out, FACES, "all").read_text("utf-8")).rows("summary")
    assert len(faces_all) == 3


def test_failures_page_lists_the_right_images(rendered):
    _, out, _ = rendered
    text = (out / "failures.html").read_text("utf-8")
    page = Page(text)
    tables = CellText(text).rows("failures")
    no_face = [r for r in tables if r[:2] == [FACES, NO_FACE]]
    assert len(no_face) == 1
    assert no_face[0][2:4] == ["centre crop: scored, left out of identity", "no face found by hog"]
    missed = [r for r in tables if r and r[0] == "e2"]
    assert len(missed) == 1 and missed[0][4:7] == ["pulse", "1", "0.0123"]
    assert [EMOJI, f"8{words.ARROW}32", KERNEL, "pulse", "1", "8"] in tables  # 1 of 8 searches
    assert [EMOJI, "error", "cannot decode image", "1"] in tables
    assert "None: every output was measured." in page.all_text
    csv = pd.read_csv(out / "failures-missed-eps.csv")
    assert csv[["image_id", "seed"]].values.tolist() == [["e2", 1]]
    # Worst by LPIPS for PULSE in emoji_x: e10 (k=3) first, seed 1 (the higher of its seeds).
    worst = [r for r in CellText(text).rows("gallery") if r[0].startswith("e")]
    assert worst[0][0].startswith("e10") and "LPIPS 0.4600, seed 1" in worst[0][0]
    alts = [a["alt"] for a in page.find("img")]
    assert f"{FACES} {NO_FACE}: centre crop used without a detected face" in alts
    # The gallery keeps the no-face image (scored on its centre crop) and says so.
    gallery = CellText(_gallery(out, FACES, "all", 1).read_text("utf-8")).rows("gallery")
    assert [row[0] for row in gallery[1:]] == [
        "f1",
        "f2 no face detected: centre crop (left out of identity)",
    ]
    assert "PSNR-Y 21.00 dB" in gallery[2][4] and f"ID dist {words.MISSING}" in gallery[2][4]


def test_failures_page_says_none(tmp_path):
    per_image, summary, run_info, _, faces = _inputs(tmp_path)
    per_image = per_image[per_image["method"] == "bicubic"].drop(columns="converged")
    faces[FACES]["status"] = "ok"
    per_image["status"] = "ok"
    index = render_report(per_image, summary, run_info, tmp_path / "r", root=tmp_path, faces=faces)
    text = Page((index.parent / "failures.html").read_text("utf-8")).all_text
    assert "None: a face was detected in every image that needed one." in text
    assert "None: no method in this run reports whether its search converged." in text
    assert "None: every output was measured." in text


def test_overview_shows_run_facts_and_charts(rendered):
    index = rendered[2]
    text = index.read_text("utf-8")
    page = Page(text)
    words = page.all_text
    for expected in ("abc123", "0123456789abcdef", "facebench_version", "13.0.0", "8 -> 32"):
        assert expected in words
    facts = CellText(text).rows("facts")
    # images, usable, policy, faces detected, aligned, prealigned, centre crop, left out,
    # and three gallery categories besides all
    assert [EMOJI, "5", "4", "detect", "4", "4", "0", "0", "1", "3"] in facts
    assert [FACES, "3", "3", "detect", "2", "2", "0", "1", "0", "0"] in facts
    assert "alignment policy" in facts[0] and "centre crop" in facts[0]
    assert ["pulse", "pulse", "0, 1", "steps: 100"] in facts
    assert ["upscale", "4", "3725.5 s (1:02:06)"] in facts
    charts = [a for a in page.find("img") if a["src"].startswith("charts/")]
    assert len(charts) == 3 and charts[0]["alt"] == "Alt of chart 0"
    assert charts[0]["width"] == "400" and charts[0]["height"] == "200"  # 300 x 150 pt


def test_summary_table_numbers_order_and_legend(rendered):
    _, _, index = rendered
    text = index.read_text("utf-8")
    header, *body = CellText(text).rows("summary")[:3]
    assert header[1].startswith("PSNR (Y), crop 4") and header[2].startswith("SSIM (Y)")
    assert header[3].startswith("LPIPS")
    assert [r[0] for r in body] == ["pulse", "bicubic"]
    assert body[0][1] == "26.46 [25.90, 27.01] n = 4 seed SD 0.50"
    assert body[0][2] == "0.8000 [0.7900, 0.8100] n = 4 seed SD 0.5000"
    assert body[1][1] == "24.00 [23.50, 24.50] n = 4"
    words = Page(text).all_text
    assert "higher is better" in words and "lower is better" in words
    assert "<strong>26.46</strong>" in text and "<strong>0.2100</strong>" in text
    assert "<strong>24.00</strong>" not in text
    # A table whose images are not all FFHQ-aligned says where they come from.
    assert "from" not in " ".join(body[0])
    faces_table = [r for r in CellText(text).rows("summary") if r[0] == "bicubic"][1]
    assert faces_table[1] == "24.00 [23.50, 24.50] n = 4 from aligned 3, centre crop 1"


def test_prealigned_images_without_a_face_are_counted_not_listed(tmp_path):
    per_image, summary, run_info, manifests, faces = _inputs(tmp_path)
    per_image.loc[per_image["dataset"] == FACES, "alignment"] = "prealigned"
    faces[FACES]["alignment"] = "prealigned"
    index = render_report(
        per_image, summary, run_info, tmp_path / "r", root=tmp_path,
        manifests=manifests, faces=faces,
    )  # fmt: skip
    text = (index.parent / "failures.html").read_text("utf-8")
    tables = CellText(text).rows("failures")
    assert not [r for r in tables if r[:2] == [FACES, NO_FACE]]
    assert [FACES, "1", "3"] in tables  # 1 of 3 prealigned images without a detected face
    gallery = CellText(_gallery(index.parent, FACES, "all", 1).read_text("utf-8")).rows("gallery")
    assert gallery[2][0] == NO_FACE  # no note: the template frames it like the others


# --------------------------------------------------------------------------- robustness


def test_special_characters_are_escaped(tmp_path):
    per_image, summary, run_info, *_ = _inputs(tmp_path)
    per_image["method"] = per_image["method"].replace("bicubic", ODD_METHOD)
    summary["method"] = summary["method"].replace("bicubic", ODD_METHOD)
    index = render_report(per_image, summary, run_info, tmp_path / "r", root=tmp_path)
    for page_path in _pages(index.parent):
        text = page_path.read_text("utf-8")
        page = Page(text)
        assert "b" not in {t for t, _ in page.tags}, "a method name was injected as markup"
    text = index.read_text("utf-8")
    assert "&lt;b&gt;x&amp;y&lt;/b&gt;" in text and ODD_METHOD in Page(text).all_text


def test_missing_and_failed_images_become_placeholders(tmp_path):
    per_image, summary, run_info, *_ = _inputs(tmp_path)
    gone = per_image.loc[
        (per_image["image_id"] == "f1") & (per_image["method"] == "bicubic"), "sr_path"
    ].iloc[0]
    (tmp_path / gone).unlink()
    failed = (per_image["image_id"] == "f3") & (per_image["method"] == "pulse")
    per_image.loc[failed, "status"] = "failed"
    per_image.loc[failed, "reason"] = "CUDA out of memory"
    (tmp_path / "data" / FACES / "hr" / "f3.png").write_bytes(b"")

    out = tmp_path / "r"
    render_report(per_image, summary, run_info, out, root=tmp_path, page_size=10)
    text = _gallery(out, FACES, "all").read_text("utf-8")
    assert Page(text).errors == []
    by_id = {row[0]: row for row in CellText(text).rows("gallery")[1:]}
    assert by_id["f1"][4] == f"Not available {gone}: file not found"
    assert by_id["f3"][2] == "Not available status failed: CUDA out of memory"
    assert "data/faces/hr/f3.png: file is empty" in by_id["f3"][5]
    # Without the HR file, the LR is still enlarged to the recorded HR size.
    assert f"shown {words.TIMES}4" in by_id["f3"][1]
    failures = Page((out / "failures.html").read_text("utf-8")).all_text
    assert "CUDA out of memory" in failures


def test_rendering_is_deterministic(tmp_path):
    per_image, summary, run_info, manifests, faces = _inputs(tmp_path)
    a = render_report(
        per_image, summary, run_info, tmp_path / "a", root=tmp_path, manifests=manifests,
        faces=faces, page_size=2,
    )  # fmt: skip
    b = render_report(
        per_image.sample(frac=1.0, random_state=1),
        summary.sample(frac=1.0, random_state=2),
        {**run_info, "created": "2030-12-31T23:59:59+00:00"},
        tmp_path / "b",
        root=tmp_path,
        manifests=manifests,
        faces=faces,
        page_size=2,
    )

    def files(folder: Path) -> dict[Path, bytes]:
        return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    files_a, files_b = files(a.parent), files(b.parent)
    assert files_a.keys() == files_b.keys()
    for name in files_a:
        if name == Path("index.html"):
            created = b"2030-12-31T23:59:59+00:00"
            assert files_b[name].replace(created, b"2024-01-01T00:00:00+00:00") == files_a[name]
        else:
            assert files_a[name] == files_b[name], name


def test_each_source_is_encoded_once(tmp_path, monkeypatch):
    calls = []
    save = assets.save_webp
    monkeypatch.setattr(assets, "save_webp", lambda t, *a, **k: (calls.append(t), save(t, *a, **k)))
    _render(tmp_path)
    assert len(calls) == len(set(calls))
    # LR, HR, bicubic and two PULSE seeds per image: 7 images x 5.
    assert len(calls) == 7 * 5


def test_max_images_per_category(tmp_path):
    out, _ = _render(tmp_path, max_images_per_category=1, page_size=10)
    rows = CellText(_gallery(out, EMOJI, "all").read_text("utf-8")).rows("gallery")
    assert [r[0] for r in rows[1:]] == ["e1"]
    assert (
        "4 images in this category, the first 1 by id shown"
        in Page(_gallery(out, EMOJI, "all").read_text("utf-8")).all_text
    )


def test_rerender_replaces_existing_report(tmp_path):
    out, _ = _render(tmp_path, title="first")
    (out / "stale.txt").write_text("left over")
    _, index = _render(tmp_path, title="second")
    assert "<title>second</title>" in index.read_text("utf-8")
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["demo"]


def test_failed_render_keeps_previous_report(tmp_path, monkeypatch):
    out, _ = _render(tmp_path, title="good")
    before = (out / "index.html").read_text("utf-8")

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(assets, "save_png", broken_save)
    with pytest.raises(OSError, match="disk full"):
        _render(tmp_path, title="bad")
    assert (out / "index.html").read_text("utf-8") == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["demo"]


def test_empty_inputs_still_render(tmp_path):
    per_image, summary, *_ = _inputs(tmp_path)
    index = render_report(per_image.iloc[:0], summary.iloc[:0], {}, tmp_path / "r")
    page = Page(index.read_text("utf-8"))
    assert page.errors == []
    assert "No run information was recorded." in page.all_text
    assert "No results to show." in page.all_text
    assert Page((tmp_path / "r" / "failures.html").read_text("utf-8")).errors == []


@pytest.mark.parametrize(
    ("table", "column", "what"),
    [
        ("per_image", "sr_path", "per_image table"),
        ("summary", "ci_low", "summary table"),
        ("manifest", "image_id", "manifest of data set 'emoji_x'"),
        ("faces", "status", "faces table of data set 'emoji_x'"),
    ],
)
def test_missing_columns_are_named(tmp_path, table, column, what):
    per_image, summary, run_info, manifests, faces = _inputs(tmp_path)
    if table == "per_image":
        per_image = per_image.drop(columns=column)
    elif table == "summary":
        summary = summary.drop(columns=column)
    elif table == "manifest":
        manifests[EMOJI] = manifests[EMOJI].drop(columns=column)
    else:
        faces[EMOJI] = faces[EMOJI].drop(columns=column)
    with pytest.raises(ValueError, match=re.escape(f"{what} is missing columns ['{column}']")):
        render_report(
            per_image, summary, run_info, tmp_path / "r", manifests=manifests, faces=faces
        )
    assert not (tmp_path / "r").exists()


def test_bad_options_are_refused(tmp_path):
    per_image, summary, run_info, *_ = _inputs(tmp_path)
    with pytest.raises(ValueError, match="page_size"):
        render_report(per_image, summary, run_info, tmp_path / "r", page_size=0)


def test_report_folder_gets_normal_permissions(tmp_path):
    # A staging folder from tempfile.mkdtemp would be 0700 and stay so after the swap.
    umask = os.umask(0o022)
    try:
        out, _ = _render(tmp_path)
    finally:
        os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o755


def test_real_charts_are_embedded(tmp_path, monkeypatch):
    monkeypatch.setattr(overview, "make_charts", make_charts)
    out, index = _render(tmp_path)
    page = Page(index.read_text("utf-8"))
    charts = [a for a in page.find("img") if a["src"].startswith("charts/")]
    assert charts
    for attrs in charts:
        assert attrs["src"].endswith(".svg") and (out / attrs["src"]).is_file()
        assert attrs["alt"].strip() and int(attrs["width"]) > 0


# --------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("metric", "value", "expected"),
    [
        ("psnr_y", 27.456, "27.46"),
        ("psnr_y_crop8", 27.456, "27.46"),
        ("psnr_rgb", math.inf, words.INFINITY),
        ("psnr_rgb", -math.inf, words.MINUS + words.INFINITY),
        ("ssim_y", 0.912345, "0.9123"),
        ("lpips", float("nan"), words.MISSING),
        ("lpips_alex", None, words.MISSING),
        ("identity_distance", 0.12345, "0.123"),
        ("lr_mse", 0.000439, "4.39e-04"),
    ],
)
def test_format_value(metric, value, expected):
    assert format_value(metric, value) == expected


def test_metric_directions_and_labels():
    assert metric_info("psnr_y").higher_is_better is True
    assert metric_info("psnr_y_crop8").label == "PSNR (Y), crop 8"
    assert metric_info("lpips_alex").higher_is_better is False
    assert metric_info("identity_distance").higher_is_better is False
    assert metric_info("landmark_nme").higher_is_better is False
    assert metric_info("mystery").higher_is_better is None


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("old_age", "old age"),
        ("attr:Eyeglasses", "attribute: Eyeglasses"),
        ("skin:3", "skin tone 3"),
        ("subject:01", "subject: 01"),
        ("lighting:left", "lighting: left"),
    ],
)
def test_category_label(name, label):
    assert category_label(name) == label
