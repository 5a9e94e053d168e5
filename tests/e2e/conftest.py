"""Browser tests: Debian's chromium (Playwright, ``executable_path``) against the dev stack.

One browser per test module; each test gets a fresh context (no shared storage, cookies
or session token), pinned to en-US and UTC so dates read the same everywhere. Uncaught
errors in the page fail the test that caused them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support.browser import CHROMIUM_ARGS, SCREENSHOTS, StackClient, chromium_path
from support.devstack import DevStack

try:
    from playwright import sync_api
except ImportError:  # the browser tests skip, saying why
    sync_api = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope, not session: while Playwright's sync API is open it keeps an asyncio
    # loop marked as running in this thread, and every async test after it would fail.
    if sync_api is None:
        pytest.skip("no playwright: make venv")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium: apt-get install chromium")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, devstack: DevStack) -> Iterator[Any]:
    context = browser.new_context(
        base_url=devstack.api_url,
        viewport={"width": 1100, "height": 800},
        locale="en-US",
        timezone_id="UTC",
        accept_downloads=True,
    )
    # Waits, not budgets: a page that works answers at once; make test runs three workers
    # on two cores, and the browser shares them with the whole dev stack.
    context.set_default_timeout(30_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="session")
def stack(devstack: DevStack) -> StackClient:
    return StackClient(devstack.api_url)


@pytest.fixture(scope="session")
def screenshots() -> Any:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
