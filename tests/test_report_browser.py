"""The report of the offline end-to-end run, opened in a real browser (headless Chromium).

Checks that the overview, a gallery page and the failures page load from disk
with no console error and no failed or external request, and that a summary
table, a chart and gallery images have rendered (visible, decoded, not blank).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.report.browser import find_chromium

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        find_chromium() is None,
        reason="no Chromium: `apt-get install chromium` (or set FACEBENCH_CHROMIUM)",
    ),
]
pytest.importorskip("playwright", reason="playwright (the dev extra) is not installed")

OVERVIEW_ELEMENTS = {
    "summary table": "table.summary",
    "chart": "figure.chart img",
    "run facts": "table.facts",
}
GALLERY_ELEMENTS = {
    "gallery table": "table.gallery",
    "lr input": "table.gallery img",
    "output image": "table.gallery td:nth-of-type(2) img",
}


@pytest.fixture(scope="module")
def browser():
    from pipeline.report.browser import open_browser

    with open_browser() as session:
        yield session


@pytest.fixture(scope="module")
def report_dir(finished_run) -> Path:
    workdir, _ = finished_run
    return workdir / "reports" / "tiny"


def assert_clean(check) -> None:
    assert check.problems == [], f"{check.url}:\n" + "\n".join(check.problems)


def test_overview_renders(browser, report_dir: Path, tmp_path: Path) -> None:
    shot = tmp_path / "overview.png"
    check = browser.check(report_dir / "index.html", OVERVIEW_ELEMENTS, screenshot=shot)
    assert_clean(check)
    assert check.elements["chart"].matched >= 2
    with Image.open(shot) as image:
        assert image.width >= 1000 and image.height > 900  # the full page, not a blank viewport


def test_emoji_gallery_page_renders(browser, report_dir: Path) -> None:
    pages = sorted((report_dir / "galleries" / "emoji").rglob("page-1.html"))
    assert pages, "no gallery page for the emoji data set"
    for page in pages[:2]:
        assert_clean(browser.check(page, GALLERY_ELEMENTS))


def test_failures_page_renders(browser, report_dir: Path) -> None:
    check = browser.check(report_dir / "failures.html", {"heading": "h1"})
    assert_clean(check)


def test_the_check_catches_broken_pages(browser, tmp_path: Path) -> None:
    """A missing image, a blank one, an external request and a script error are reported."""
    ramp = np.tile(np.arange(0, 240, 6, dtype=np.uint8), (40, 1))
    Image.fromarray(np.dstack([ramp, ramp[::-1], ramp])).save(tmp_path / "ok.png")
    Image.new("RGB", (40, 40), (255, 255, 255)).save(tmp_path / "white.png")
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><html><body><h1>t</h1>"
        '<img id="ok" src="ok.png" alt="ramp"><img id="gone" src="gone.png" alt="missing">'
        '<p><img id="white" src="white.png" alt="white on white"></p>'
        '<img src="http://127.0.0.1:9/x.png" alt="external">'
        "<script>undefined_function()</script></body></html>"
    )
    check = browser.check(
        page, {"good": "#ok", "missing": "#gone", "white": "#white", "absent": "table"}
    )
    problems = "\n".join(check.problems)
    assert "gone.png" in problems and "127.0.0.1:9" in problems
    assert "undefined_function" in problems
    assert check.elements["good"].problems == []
    assert "image did not decode" in check.elements["missing"].problems
    assert check.elements["white"].problems == ["renders as a blank box"]
    assert check.elements["absent"].matched == 0
