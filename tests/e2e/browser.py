"""Debian's chromium driven by Playwright (never a downloaded browser), and screenshot artifacts."""

from __future__ import annotations

import json
import shutil
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                  "--autoplay-policy=no-user-gesture-required"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium browser (skips the test when the Debian package is missing)."""
    if not CHROMIUM.is_file() and shutil.which("chromium") is None:
        pytest.skip("chromium is not installed: apt-get install -y chromium (scripts/setup.sh does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: Any, *, width: int = 1400, height: int = 860, **options: Any) -> Any:
    """A page that fails the test on any uncaught script error; ``options`` are Playwright's
    context options (``timezone_id="America/New_York"``, ``locale=...``)."""
    page = browser.new_page(viewport={"width": width, "height": height}, **options)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.script_errors = errors
    return page


def open_console(browser: Any, server_url: str, token: str, *, state: str = "live") -> Any:
    """The agent console signed in with ``token``, once its status reads ``state``."""
    page = open_page(browser)
    page.goto(f"{server_url}/agent#token={token}")
    page.wait_for_selector(f'#status[data-state="{state}"]', timeout=15_000)
    return page


def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    """Save ``artifacts/screenshots/<name>.png`` (gitignored) for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p95 and max of a sample, rounded to 0.1 ms."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"n": len(ordered), "p50": round(statistics.median(ordered), 1), "p95": round(p95, 1),
            "max": round(ordered[-1], 1)}


def save_measurement(name: str, data: dict[str, Any]) -> None:
    """``artifacts/<name>.json``, the raw numbers behind docs/results/ui.md."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def wait_until(page: Any, expression: str, *, timeout: float = 30.0, poll: float = 0.05) -> Any:
    """Poll a JS expression until it is truthy; returns its value.

    Playwright's ``wait_for_function`` polls with ``eval`` inside the page, which the pages'
    Content-Security-Policy (rightly) forbids; ``evaluate`` goes through the DevTools protocol.
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {expression}")
        time.sleep(poll)
