"""The report page in a real headless Chromium (Debian's ``chromium`` package).

It renders, every chart is there with a size, nothing is logged to the console
and nothing is fetched but the file itself. Under CI (``CI`` set) a missing
browser fails the test; elsewhere it is skipped with the reason.

Set ``CK_REPORT_SCREENSHOT=/path/to/file.png`` to keep a full-page screenshot.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from communitykit.analytics import Report
from communitykit.analytics._html import render
from tests.analytics.fixtures import empty_report, sample_report

CHROMIUM = os.environ.get("CK_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the browser test must run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class _Visit:
    """A page opened from a file, with everything it logged and asked for."""

    def __init__(self, browser: Any, report: Report, folder: Path) -> None:
        path = folder / "report.html"
        path.write_text(render(report), encoding="utf-8")
        self.path = path
        self.url = path.as_uri()
        self.console: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.failed: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("requestfailed", lambda r: self.failed.append(r.url))
        self.page.goto(self.url, wait_until="load")

    def _on_console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.console.append(f"{message.type}: {message.text}")

    def chart_sizes(self) -> list[dict[str, float]]:
        sizes: list[dict[str, float]] = self.page.eval_on_selector_all(
            "svg.chart",
            """els => els.map(e => {
                const r = e.getBoundingClientRect();
                return {width: r.width, height: r.height, paths: e.querySelectorAll('path').length};
            })""",
        )
        return sizes

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser: Any, tmp_path: Path) -> Iterator[Any]:
    opened: list[_Visit] = []

    def open_(report: Report) -> _Visit:
        v = _Visit(browser, report, tmp_path)
        opened.append(v)
        return v

    yield open_
    for v in opened:
        v.close()


def test_the_report_renders_with_every_chart_and_loads_nothing(visit: Any) -> None:
    v = visit(sample_report())
    page = v.page
    assert page.title().startswith("Demo community")
    assert page.locator("h1").inner_text() == "Demo community"
    headings = page.locator("h2").all_inner_texts()
    assert headings == [
        "Headline",
        "Growth",
        "Activity",
        "Retention",
        "Tiers",
        "Points",
        "Campaigns",
        "Rules",
    ]
    sizes = v.chart_sizes()
    assert len(sizes) == 15
    for size in sizes:
        assert size["width"] > 200
        assert size["height"] > 60
        assert size["paths"] > 10
    # Every chart fits its card: nothing spills sideways off the page.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    assert page.locator(".figure").count() == 5
    assert v.console == []
    assert v.errors == []
    assert v.failed == []
    assert v.requests == [v.url]
    shot = os.environ.get("CK_REPORT_SCREENSHOT") or str(v.path.with_suffix(".png"))
    page.screenshot(path=shot, full_page=True)
    assert Path(shot).stat().st_size > 10_000


def test_the_data_behind_a_chart_opens_on_click(visit: Any) -> None:
    v = visit(sample_report(days=7))
    details = v.page.locator('[data-metric="active_members"] details')
    table = details.locator("table")
    assert not table.is_visible()
    details.locator("summary").click()
    assert table.is_visible()
    assert table.locator("tbody tr").count() == 7


def test_an_empty_report_says_so_without_errors(visit: Any) -> None:
    v = visit(empty_report())
    notes = v.page.locator(".empty")
    assert notes.count() == len(empty_report().metrics)
    assert notes.first.is_visible()
    assert v.page.locator("svg").count() == 0
    assert v.console == []
    assert v.errors == []
    assert v.requests == [v.url]


def test_the_page_fits_a_phone_screen(visit: Any) -> None:
    v = visit(sample_report(days=14))
    v.page.set_viewport_size({"width": 390, "height": 844})
    overflow = v.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    assert all(s["width"] > 250 for s in v.chart_sizes())
