"""Browser tests: Debian's chromium driven by Playwright for Python.

`make test` (and `make browser`) installs /usr/bin/chromium from Debian;
Playwright never downloads a browser of its own here. Every page a test
opens is watched: console errors, uncaught page errors, failed requests,
error responses and dialogs are collected, and a test fails at teardown
when any happened, unless it says it expects them (`page.expect_errors()`).
Screenshots go to out/screenshots/ so a person can look at them.

`live_server` serves the app over HTTP on 127.0.0.1 (a free port) through the
API Gateway emulation, on the in-process moto of the `resources` fixture.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "out" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless chromium for the session (Debian's, never a downloaded one)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` (run by `make test`) installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class WatchedPage:
    """A Playwright page and everything that went wrong on it."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    error_responses: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors_expected: bool = False

    def watch(self) -> "WatchedPage":
        page = self.page
        page.on("console", lambda message: message.type == "error" and self.console_errors.append(
            f"{message.text} ({message.location.get('url', '')})"))
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("requestfailed", lambda request: self.failed_requests.append(
            f"{request.method} {request.url}: {request.failure}"))
        page.on("response", lambda response: response.status >= 400 and self.error_responses.append(
            f"{response.status} {response.request.method} {response.url}"))

        def dismiss(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", dismiss)
        return self

    def expect_errors(self) -> None:
        """This test opens pages that answer 4xx on purpose (e.g. a 404 page): no error check at teardown."""
        self.errors_expected = True

    def problems(self) -> list[str]:
        """Everything a person would call broken, dialogs included (a dialog here means injected script ran)."""
        return [*self.console_errors, *self.page_errors, *self.failed_requests, *self.error_responses,
                *(f"dialog {dialog}" for dialog in self.dialogs)]

    def screenshot(self, name: str, full_page: bool = True) -> Path:
        """out/screenshots/<name>.png; the whole page is shot through a viewport as tall as the page,
        since chromium's full-page capture leaves out-of-process (sandboxed) iframes blank."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        viewport = self.page.viewport_size or VIEWPORT
        if full_page:
            height = self.page.evaluate("() => document.documentElement.scrollHeight")
            self.page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], height)})
        try:
            self.page.screenshot(path=str(path))
        finally:
            self.page.set_viewport_size(viewport)
        return path


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[WatchedPage]:
    """A fresh context (no cookies) and page; fails the test if anything on it went wrong."""
    context = chromium.new_context(viewport=VIEWPORT, device_scale_factor=1, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(15_000)
    watched = WatchedPage(context.new_page()).watch()
    try:
        yield watched
    finally:
        context.close()
    if not watched.errors_expected:
        assert watched.problems() == [], "the browser saw problems"
    else:
        assert watched.dialogs == [] and watched.page_errors == [], "script ran on the page"


@pytest.fixture
def live_server(resources: Any, app_object: Any) -> Iterator[str]:
    """The app over HTTP on 127.0.0.1 (free port), through the API Gateway emulation; its base URL."""
    from infra.local_runtime.gateway import local_server

    server = local_server(app_object, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, name="browser-live-server", daemon=True)
    thread.start()
    host, port = server.server.server_address[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
