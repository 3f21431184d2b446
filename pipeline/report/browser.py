"""Open report pages in headless Chromium and check that they really render.

Used by the browser test and by ``benchmarks/report_load.py``. Drives Debian's
Chromium (``apt-get install chromium``) through Playwright, whose own browser
downloads are not needed: ``executable_path`` points at the system browser.

A page passes when it loads from disk with no console error, no uncaught
exception, no failed or external request, no sideways overflow of the page,
and every element checked is visible, has drawn pixels (its screenshot is not
one flat colour) and, for images, decoded (``naturalWidth``).
"""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Flags for a quiet, offline, reproducible headless run (no sandbox: CI runs as root).
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)
VIEWPORT = {"width": 1280, "height": 900}
_LOAD_ALL_IMAGES = """() => Promise.all([...document.images].map(img => {
    img.loading = "eager";
    return img.complete ? null : new Promise(done => { img.onload = img.onerror = done; });
}))"""


def find_chromium() -> str | None:
    """Path of a Chromium binary: ``$FACEBENCH_CHROMIUM``, else the first one on PATH."""
    configured = os.environ.get("FACEBENCH_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


@dataclass
class ElementCheck:
    """One checked element: how many matched, and the problems of the first visible one."""

    selector: str
    matched: int
    problems: list[str] = field(default_factory=list)


@dataclass
class PageCheck:
    """What happened when a page was opened; ``problems`` is empty when it passed."""

    url: str
    load_ms: float
    console_errors: list[str]
    failed_requests: list[str]
    external_requests: list[str]
    elements: dict[str, ElementCheck]
    overflow_px: int  # how far the page is wider than the viewport (0: no sideways scroll)
    screenshot: Path | None

    @property
    def problems(self) -> list[str]:
        found = [f"console: {m}" for m in self.console_errors]
        found += [f"failed request: {r}" for r in self.failed_requests]
        found += [f"external request: {r}" for r in self.external_requests]
        if self.overflow_px:
            found.append(f"page is {self.overflow_px} px wider than the viewport")
        for name, element in self.elements.items():
            if element.matched == 0:
                found.append(f"{name}: nothing matches {element.selector!r}")
            found += [f"{name}: {problem}" for problem in element.problems]
        return found


def _blank(png: bytes, min_std: float = 2.0) -> bool:
    """True when a screenshot is (nearly) one flat colour."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    return pixels.size == 0 or float(pixels.std()) < min_std


class ReportBrowser:
    """A headless Chromium session (see :func:`open_browser`)."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser

    def check(
        self,
        page_path: str | Path,
        elements: Mapping[str, str] | None = None,
        screenshot: str | Path | None = None,
    ) -> PageCheck:
        """Open ``page_path`` (a local HTML file) and check it.

        elements: name -> CSS selector; the first match of each is scrolled into
            view (lazy images load then) and must be visible and not blank.
        screenshot: where to save a full-page PNG, if wanted.
        """
        url = Path(page_path).resolve().as_uri()
        context = self._browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        page = context.new_page()
        console_errors: list[str] = []
        failed: list[str] = []
        external: list[str] = []
        page.on(
            "console",
            lambda message: (
                console_errors.append(message.text) if message.type == "error" else None
            ),
        )
        page.on("pageerror", lambda error: console_errors.append(str(error)))
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.on(
            "request",
            lambda request: (
                None
                if request.url.startswith(("file://", "data:", "about:"))
                else external.append(request.url)
            ),
        )
        began = time.perf_counter()
        page.goto(url, wait_until="load")
        load_ms = (time.perf_counter() - began) * 1000.0
        checks = {
            name: self._check_element(page, selector) for name, selector in (elements or {}).items()
        }
        overflow = page.evaluate("document.documentElement.scrollWidth") - VIEWPORT["width"]
        if screenshot is not None:
            # A full-page screenshot does not scroll, so lazy images below the fold
            # would stay empty: load them all first.
            page.evaluate(_LOAD_ALL_IMAGES)
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        context.close()
        return PageCheck(
            url=url,
            load_ms=load_ms,
            console_errors=console_errors,
            failed_requests=failed,
            external_requests=external,
            elements=checks,
            overflow_px=max(0, overflow),
            screenshot=Path(screenshot) if screenshot is not None else None,
        )

    @staticmethod
    def _check_element(page: Any, selector: str) -> ElementCheck:
        matches = page.locator(selector)
        result = ElementCheck(selector, matches.count())
        if result.matched == 0:
            return result
        first = matches.first
        first.scroll_into_view_if_needed()
        if first.evaluate("e => e.tagName") == "IMG":
            first.evaluate(
                "img => img.complete ? true : new Promise(r => { img.onload = img.onerror = r; })"
            )
            if first.evaluate("img => img.naturalWidth") == 0:
                result.problems.append("image did not decode")
        box = first.bounding_box()
        if not first.is_visible() or box is None or box["width"] < 2 or box["height"] < 2:
            result.problems.append("not visible")
        elif _blank(first.screenshot()):
            result.problems.append("renders as a blank box")
        return result


@contextmanager
def open_browser(executable: str | None = None) -> Iterator[ReportBrowser]:
    """Start headless Chromium (``find_chromium()`` unless given) for checking pages."""
    from playwright.sync_api import sync_playwright  # deferred: a test-only dependency

    executable = executable or find_chromium()
    if executable is None:
        raise FileNotFoundError(
            "no Chromium found: install Debian's `chromium` or set FACEBENCH_CHROMIUM"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield ReportBrowser(browser)
        finally:
            browser.close()
