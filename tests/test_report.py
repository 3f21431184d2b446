"""Tests for the static HTML report (pipeline.report)."""

from __future__ import annotations

import math
import os
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline import report
from pipeline.report import format_value, metric_info, render_report

VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
ODD_METHOD = '<b>x&y</b> "q"'


class Page(HTMLParser):
    """Collects tags, attributes and text; fails on mis-nested or unclosed elements."""

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


def _face(seed: int, size: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _inputs(root: Path, image_ids=("img2", "img0", "img1"), hr_size: int = 32):
    """Tiny per_image + summary frames with real PNGs under ``root``."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    rows = []
    for k, image_id in enumerate(image_ids):
        hr = _face(k, hr_size)
        Image.fromarray(hr).save(root / "data" / f"{image_id}_hr.png")
        Image.fromarray(hr[::4, ::4]).save(root / "data" / f"{image_id}_lr.png")
        for method in ("bicubic", ODD_METHOD):
            for seed in (0, 1):
                sr = root / "data" / f"{image_id}_{len(method)}_{seed}.png"
                Image.fromarray(255 - hr).save(sr)
                rows.append(
                    {
                        "dataset": "ffhq",
                        "image_id": image_id,
                        "task": f"{hr_size // 4}to{hr_size}",
                        "lr_size": hr_size // 4,
                        "hr_size": hr_size,
                        "kernel": "pil-bicubic",
                        "method": method,
                        "seed": seed,
                        "status": "ok",
                        "reason": "",
                        "lr_path": f"data/{image_id}_lr.png",
                        "sr_path": str(sr.relative_to(root)),
                        "hr_path": f"data/{image_id}_hr.png",
                        "crop_border": 4,
                        "psnr_rgb": 20.0 + k,
                        "psnr_y": 21.0 + k + seed,
                        "ssim_y": 0.5 + k / 10,
                    }
                )
    per_image = pd.DataFrame(rows)
    task = f"{hr_size // 4}to{hr_size}"
    stats = {
        ("bicubic", "psnr_y"): (24.0, 23.5, 24.5),
        ("bicubic", "ssim_y"): (0.71234, 0.7, 0.72),
        ("bicubic", "lpips"): (0.31, 0.30, 0.32),
        (ODD_METHOD, "psnr_y"): (26.456, 25.9, 27.01),
        (ODD_METHOD, "ssim_y"): (0.80001, 0.79, 0.81),
        (ODD_METHOD, "lpips"): (0.21, 0.2, 0.22),
    }
    summary = pd.DataFrame(
        [
            {
                "dataset": "ffhq",
                "task": task,
                "kernel": "pil-bicubic",
                "method": method,
                "metric": metric,
                "n": 3,
                "n_excluded": 0,
                "excluded_reasons": "",
                "mean": mean,
                "median": mean,
                "std": 0.1,
                "ci_low": lo,
                "ci_high": hi,
            }
            for (method, metric), (mean, lo, hi) in stats.items()
        ]
    )
    run_info = {
        "facebench_version": "0.1.0",
        "git_commit": "abc123",
        "datasets": {"ffhq": {"images": 3}},
        "methods": ["bicubic", ODD_METHOD],
        "seeds": [0, 1],
    }
    return per_image, summary, run_info


@pytest.fixture
def rendered(tmp_path):
    per_image, summary, run_info = _inputs(tmp_path)
    out = tmp_path / "reports" / "demo"
    index = render_report(per_image, summary, run_info, out, root=tmp_path)
    return tmp_path, out, index


def test_index_exists_and_is_well_formed(rendered):
    _, out, index = rendered
    assert index == out / "index.html"
    page = Page(index.read_text("utf-8"))
    assert page.errors == []
    assert [t for t, _ in page.tags][:1] == ["html"]
    assert page.find("script") == [], "the report must work without JavaScript"
    assert "facebench_version" in page.all_text and "abc123" in page.all_text


def test_summary_table_numbers_order_and_legend(rendered):
    _, _, index = rendered
    text = index.read_text("utf-8")
    rows = CellText(text).rows("summary")
    header, *body = rows
    assert header[1].startswith("PSNR (Y)") and header[2].startswith("SSIM (Y)")
    assert header[3].startswith("LPIPS")
    # Sorted by PSNR (Y), best first: the odd method has the higher mean.
    assert [r[0] for r in body] == [ODD_METHOD, "bicubic"]
    odd = body[0]
    assert odd[1] == "26.46 [25.90, 27.01] n = 3"
    assert odd[2] == "0.8000 [0.7900, 0.8100] n = 3"
    assert odd[3] == "0.2100 [0.2000, 0.2200] n = 3"
    assert body[1][1] == "24.00 [23.50, 24.50] n = 3"
    page = Page(text)
    assert "higher is better" in page.all_text and "lower is better" in page.all_text
    # The best mean per column is emphasised: LPIPS is lower-is-better.
    assert "<strong>26.46</strong>" in text and "<strong>0.2100</strong>" in text
    assert "<strong>24.00</strong>" not in text


def test_images_have_alt_and_local_files(rendered):
    _, out, index = rendered
    page = Page(index.read_text("utf-8"))
    images = page.find("img")
    assert len(images) == 3 * 4  # three images x (LR, two methods, HR)
    for attrs in images:
        assert (attrs.get("alt") or "").strip(), attrs
        src = out / attrs["src"]
        assert src.resolve().is_relative_to(out.resolve()) and src.is_file(), attrs["src"]
        with Image.open(src) as thumb:
            assert max(thumb.size) <= report.THUMB_MAX
            assert (thumb.width, thumb.height) == (int(attrs["width"]), int(attrs["height"]))
    for tag in ("a", "link"):
        for attrs in page.find(tag):
            href = attrs["href"]
            if not href.startswith("#"):
                assert (out / href).is_file(), href


def test_no_external_references(rendered):
    _, out, index = rendered
    page = Page(index.read_text("utf-8"))
    refs = [v for _, attrs in page.tags for k, v in attrs.items() if k in ("src", "href") and v]
    assert refs
    assert not [r for r in refs if r.lower().startswith(("http:", "https:", "//"))]
    css = (out / "assets" / "report.css").read_text("utf-8")
    assert "url(" not in css and "@import" not in css and "http" not in css


def test_gallery_picks_first_images_by_id_and_seed_zero(tmp_path):
    per_image, summary, run_info = _inputs(tmp_path, image_ids=("c10", "c2", "b"))
    index = render_report(
        per_image, summary, run_info, tmp_path / "r", root=tmp_path, gallery_rows=2
    )
    rows = CellText(index.read_text("utf-8")).rows("gallery")
    header, *body = rows
    assert [r[0] for r in body] == ["b", "c2"]
    assert header[2] == f"{ODD_METHOD} (seed 0)"
    # Image "b" is the third in the frame (k=2): seed-0 PSNR-Y 22.00, SSIM-Y 0.6000.
    assert "PSNR-Y 23.00 dB" in body[0][2] and "SSIM-Y 0.7000" in body[0][2]


def test_gallery_uses_smallest_seed_without_seed_zero(tmp_path):
    per_image, summary, run_info = _inputs(tmp_path)
    per_image["seed"] = per_image["seed"] + 3
    index = render_report(per_image, summary, run_info, tmp_path / "r", root=tmp_path)
    header = CellText(index.read_text("utf-8")).rows("gallery")[0]
    assert header[3] == "bicubic (seed 3)"


def test_lr_is_nearest_enlarged_and_full_images_linked(tmp_path):
    per_image, summary, run_info = _inputs(tmp_path, image_ids=("a",), hr_size=320)
    out = tmp_path / "r"
    page = Page(render_report(per_image, summary, run_info, out, root=tmp_path).read_text())
    links = [a["href"] for a in page.find("a") if a["href"].startswith("assets/")]
    lr_full, *_, hr_full = links
    lr = np.asarray(Image.open(tmp_path / "data" / "a_lr.png").convert("RGB"))
    enlarged = np.asarray(Image.open(out / lr_full).convert("RGB"))
    assert enlarged.shape == (320, 320, 3)
    np.testing.assert_array_equal(enlarged, lr.repeat(4, axis=0).repeat(4, axis=1))
    # The ground truth's full-size copy is the original file, byte for byte.
    assert (out / hr_full).read_bytes() == (tmp_path / "data" / "a_hr.png").read_bytes()
    assert all(int(img["width"]) == report.THUMB_MAX for img in page.find("img"))


def test_missing_and_failed_images_become_placeholders(tmp_path):
    per_image, summary, run_info = _inputs(tmp_path)
    gone = per_image.loc[
        (per_image["image_id"] == "img0") & (per_image["method"] == "bicubic"), "sr_path"
    ].iloc[0]
    (tmp_path / gone).unlink()
    failed = (per_image["image_id"] == "img1") & (per_image["method"] == ODD_METHOD)
    per_image.loc[failed, "status"] = "failed"
    per_image.loc[failed, "reason"] = "CUDA out of memory"
    (tmp_path / "data" / "img2_hr.png").write_bytes(b"")

    out = tmp_path / "r"
    index = render_report(per_image, summary, run_info, out, root=tmp_path)
    text = index.read_text("utf-8")
    page = Page(text)
    assert page.errors == []
    body = CellText(text).rows("gallery")[1:]
    by_id = {row[0]: row for row in body}
    assert by_id["img0"][3] == f"Not available {gone}: file not found"
    assert by_id["img1"][2] == "Not available status failed: CUDA out of memory"
    assert "data/img2_hr.png: file is empty" in by_id["img2"][4]
    # Without the HR file, the LR is still enlarged to the recorded HR size.
    assert f"shown {report.TIMES}4" in by_id["img2"][1]
    for attrs in page.find("img"):
        assert (out / attrs["src"]).is_file()


def test_special_characters_are_escaped(rendered):
    _, _, index = rendered
    text = index.read_text("utf-8")
    page = Page(text)
    assert "b" not in {t for t, _ in page.tags}, "a method name was injected as markup"
    assert "&lt;b&gt;x&amp;y&lt;/b&gt;" in text
    assert ODD_METHOD in page.all_text
    alts = [a["alt"] for a in page.find("img") if ODD_METHOD in a["alt"]]
    assert len(alts) == 3


def test_rerender_replaces_existing_report(tmp_path):
    per_image, summary, run_info = _inputs(tmp_path)
    out = tmp_path / "reports" / "demo"
    render_report(per_image, summary, run_info, out, root=tmp_path, title="first")
    (out / "stale.txt").write_text("left over")
    index = render_report(per_image, summary, run_info, out, root=tmp_path, title="second")
    assert "<title>second</title>" in index.read_text("utf-8")
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["demo"]


def test_failed_render_keeps_previous_report(tmp_path, monkeypatch):
    per_image, summary, run_info = _inputs(tmp_path)
    out = tmp_path / "reports" / "demo"
    render_report(per_image, summary, run_info, out, root=tmp_path, title="good")
    before = (out / "index.html").read_text("utf-8")

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(report, "save_png", broken_save)
    with pytest.raises(OSError, match="disk full"):
        render_report(per_image, summary, run_info, out, root=tmp_path, title="bad")
    assert (out / "index.html").read_text("utf-8") == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["demo"]


def test_rendering_is_deterministic(tmp_path):
    per_image, summary, run_info = _inputs(tmp_path)
    a = render_report(per_image, summary, run_info, tmp_path / "a", root=tmp_path)
    b = render_report(
        per_image.sample(frac=1.0, random_state=1), summary, run_info, tmp_path / "b", root=tmp_path
    )
    assert a.read_text("utf-8") == b.read_text("utf-8")
    files_a = {p.relative_to(a.parent): p.read_bytes() for p in a.parent.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b.parent): p.read_bytes() for p in b.parent.rglob("*") if p.is_file()}
    assert files_a == files_b


def test_empty_inputs_still_render(tmp_path):
    per_image, summary, _ = _inputs(tmp_path)
    index = render_report(per_image.iloc[:0], summary.iloc[:0], {}, tmp_path / "r")
    page = Page(index.read_text("utf-8"))
    assert page.errors == []
    assert "No run information was recorded." in page.all_text
    assert "No results to show." in page.all_text


def test_missing_columns_are_named(tmp_path):
    per_image, summary, run_info = _inputs(tmp_path)
    with pytest.raises(ValueError, match="per_image table is missing columns \\['sr_path'\\]"):
        render_report(per_image.drop(columns="sr_path"), summary, run_info, tmp_path / "r")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("metric", "value", "expected"),
    [
        ("psnr_y", 27.456, "27.46"),
        ("psnr_rgb", math.inf, report.INFINITY),
        ("psnr_rgb", -math.inf, report.MINUS + report.INFINITY),
        ("ssim_y", 0.912345, "0.9123"),
        ("lpips", float("nan"), report.MISSING),
        ("lpips", None, report.MISSING),
        ("identity_distance", 0.12345, "0.123"),
    ],
)
def test_format_value(metric, value, expected):
    assert format_value(metric, value) == expected


def test_metric_directions():
    assert metric_info("psnr_y").higher_is_better is True
    assert metric_info("lpips").higher_is_better is False
    assert metric_info("landmark_nme").higher_is_better is False
    assert metric_info("mystery").higher_is_better is None


def test_report_folder_gets_normal_permissions(tmp_path):
    # A staging folder from tempfile.mkdtemp would be 0700 and stay so after the swap.
    per_image, summary, run_info = _inputs(tmp_path)
    umask = os.umask(0o022)
    try:
        index = render_report(per_image, summary, run_info, tmp_path / "r", root=tmp_path)
    finally:
        os.umask(umask)
    assert index.parent.stat().st_mode & 0o777 == 0o755
