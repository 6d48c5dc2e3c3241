"""The browser harness itself: chromium starts, the app is reachable, and what goes wrong is seen."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import SCREENSHOTS, WatchedPage

pytestmark = pytest.mark.browser


def test_chromium_reaches_the_live_app(browser_page: WatchedPage, live_server: str) -> None:
    browser_page.expect_errors()  # /r/test is an XML answer: the browser asks for /favicon.ico, which is not ours
    response = browser_page.page.goto(f"{live_server}/r/test")
    assert response is not None and response.status == 200
    assert "status='OK'" in response.text()
    path = browser_page.screenshot("harness-r-test")
    assert path.parent == SCREENSHOTS and path.stat().st_size > 0
    assert all("favicon.ico" in problem for problem in browser_page.problems())


def test_the_watch_records_errors_failures_and_dialogs(chromium: Any, live_server: str) -> None:
    """The teardown check can fail: a script error, a dialog, a 404 and an unreachable request are all recorded."""
    context = chromium.new_context()
    try:
        watched = WatchedPage(context.new_page()).watch()
        watched.page.goto(f"{live_server}/r/test")
        watched.page.evaluate("""() => {
            setTimeout(() => { throw new Error('boom'); });
            alert('hello');
            console.error('said so');
            fetch('/no-such-route').catch(() => {});
            fetch('http://127.0.0.1:9/').catch(() => {});
        }""")
        watched.page.wait_for_timeout(500)
        assert watched.dialogs == ["alert: hello"]
        assert any("boom" in error for error in watched.page_errors)
        assert any("said so" in error for error in watched.console_errors)
        assert any(response.startswith(("403", "404")) and "/no-such-route" in response
                   for response in watched.error_responses)
        assert any("127.0.0.1:9" in failure for failure in watched.failed_requests)
    finally:
        context.close()
