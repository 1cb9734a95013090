"""A real browser for the dashboard's tests: Debian's chromium driven by Playwright.

``chromium``
    A :class:`playwright.sync_api.Browser` running ``/usr/bin/chromium`` headless
    (Playwright's own browser builds cannot be downloaded here). Without that
    binary, or without the ``playwright`` package, the test is skipped, except
    under ``CI=true`` where it fails: CI must run the browser tests.

``page``
    A fresh browser context and page for one test, closed after it. The context
    accepts any TLS certificate: the gateway serves loopback with its own CA.

Playwright's sync API cannot start inside a running event loop, and while it is
started it marks its own loop as running in this thread, so ``asyncio.run`` fails
until it stops. ``chromium`` is therefore scoped to this package: pytest stops it
as soon as the next test on the worker lies outside ``tests/dashboard``, so the
tests elsewhere that call ``asyncio.run`` (in the same xdist worker) never see it.
For the same reason, a test here must not call ``asyncio.run`` while it holds a
``page``; serve the app under test from a thread (``tests.gateway.conftest.running``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000


def _browser_unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI, where the browser tests must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true requires the browser tests)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _browser_unavailable("playwright is not installed (pip install -e '.[server,dev]')")
    if not CHROMIUM.exists():
        _browser_unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(ignore_https_errors=True)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()
