"""Mirror pages personalised with hostile values, opened in Chromium: no script runs, nothing is injected.

Two layers, each shown on its own: the values (escaped in every context
preparation accepts; the contexts where escaping cannot help are refused at
creation), and the page's Content-Security-Policy (a sandbox without
scripts), which holds even for HTML that never went through preparation. A
control renders the same hostile HTML without our headers and sees the
script run, so the checks can fail.
"""

from __future__ import annotations

import re
from typing import Any

import boto3
import pytest

from chalicelib.settings import get_settings
from infra.local_runtime.ses_outbox import OUTBOX
from tests.browser.conftest import WatchedPage
from tests.conftest import PUBLIC_BASE_URL

pytestmark = pytest.mark.browser

# Each value tries to leave its context and add an element marked data-injected (and to raise a dialog).
HOSTILE = [
    '"><img src=x onerror="alert(1)" data-injected=1>',
    "'><img src=x onerror='alert(2)' data-injected=1>",
    "x onerror=alert(3) data-injected=1 autofocus onfocus=alert(3)",
    "</textarea></title><img src=x onerror=alert(4) data-injected=1>",
    "--><img src=x onerror=alert(5) data-injected=1><!--",
    "<script>alert(6)</script><b data-injected=1>six</b>",
    "javascript:alert(7)",
    "&lt;img src=x onerror=alert(8) data-injected=1&gt;",
    "<svg onload=alert(9) data-injected=1></svg>",
]

# Every context preparation accepts a recipient's value in.
TEMPLATE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>News for {{v}}</title></head><body>
<p>Hello {{v}}!</p>
<p title="{{v}}" class="greeting {{v}}" data-name="{{v}}">Double-quoted attributes</p>
<p title='{{v}}'>Single-quoted attribute</p>
<img alt="{{v}}" src="https://cdn.example.com/logo.png" width="10" height="10">
<textarea>{{v}}</textarea>
<!-- {{v}} -->
<a href="https://shop.example.com/p/{{v}}?q={{v}}#{{v}}" data-track="off">Untracked</a>
<a data-track=off href=https://shop.example.com/u/{{v}}>Untracked, unquoted</a>
<a href="https://shop.example.com/t/{{v}}?q={{v}}">Tracked</a>
<a href="mailto:help@example.com?subject={{v}}">Mail</a>
<a href="#{{v}}">Anchor</a>
<a href="{{mirror_url}}">View online</a> <a href="{{unsubscribe_url}}">Unsubscribe</a>
</body></html>"""


def _send(api: Any, mta: Any, html: str, values: list[str]) -> tuple[str, list[str]]:
    recipients = [{"id": f"r{index}", "email": f"r{index}@example.net", "attributes": {"v": value}}
                  for index, value in enumerate(values)]
    created = api.post("/api/deliveries", body={"name": "Hostile", "subject": "News", "html": html,
                                                "from_address": "news@example.com", "recipients": recipients})
    assert created.status_code == 201, created.body
    delivery_id = str(created.json_body["id"])
    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 202
    mta.send()
    paths = [re.search(re.escape(PUBLIC_BASE_URL) + r'(/m/[A-Za-z0-9_-]+)"', message.to_dict()["html"]).group(1)
             for message in OUTBOX.messages() if message.to_dict()["tags"]["delivery_id"] == delivery_id]
    assert len(paths) == len(values)
    return delivery_id, paths


def _open(page: WatchedPage, url: str) -> Any:
    """Open a page with the outside world cut off (images and links point at example hosts)."""
    page.page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), lambda route: route.abort())
    response = page.page.goto(url)
    page.page.wait_for_timeout(300)  # onerror/onload handlers would have fired by now
    return response


def _injected(page: WatchedPage) -> int:
    return int(page.page.locator("[data-injected], script, iframe, object, embed").count())


def test_hostile_values_in_every_context_run_no_script(
        api: Any, mta: Any, live_server: str, browser_page: WatchedPage) -> None:
    browser_page.expect_errors()  # blocked images and the CSP's own reports; dialogs and page errors still fail
    _, paths = _send(api, mta, TEMPLATE, HOSTILE)
    for index, path in enumerate(paths):
        response = _open(browser_page, live_server + path)
        assert response is not None and response.status == 200
        assert "sandbox" in response.headers["content-security-policy"]
        assert browser_page.dialogs == [] and browser_page.page_errors == [], HOSTILE[index]
        assert _injected(browser_page) == 0, HOSTILE[index]
        assert browser_page.page.locator("textarea").input_value() == HOSTILE[index]  # shown as written
        assert browser_page.page.locator("p").first.inner_text() == f"Hello {HOSTILE[index]}!"
        if index == 0:
            browser_page.screenshot("mirror-hostile-values")


def test_the_policy_alone_stops_script_in_html_that_skipped_preparation(
        api: Any, mta: Any, live_server: str, browser_page: WatchedPage, chromium: Any) -> None:
    browser_page.expect_errors()
    delivery_id, [path] = _send(api, mta, "<p>Hello {{v}}</p><a href=\"{{mirror_url}}\">View online</a>", ["Ann"])
    hostile = ("<p>Hello</p><script>alert('inline')</script><img src=x onerror=\"alert('handler')\">"
               "<svg onload=\"alert('svg')\"></svg><a id=go href=\"javascript:alert('link')\">go</a>"
               "<iframe srcdoc=\"<script>parent.alert('frame')</script>\"></iframe>"
               "<form action=\"javascript:alert('form')\"><button id=submit>send</button></form>")
    settings = get_settings()
    boto3.client("dynamodb").update_item(  # as if stored before preparation refused any of it
        TableName=settings.deliveries_table, Key={"delivery_id": {"S": delivery_id}, "part": {"S": "content"}},
        UpdateExpression="SET prepared.html = :html", ExpressionAttributeValues={":html": {"S": hostile}})

    _open(browser_page, live_server + path)
    browser_page.page.click("#go", no_wait_after=True)
    browser_page.page.click("#submit", no_wait_after=True)
    browser_page.page.wait_for_timeout(300)
    assert browser_page.dialogs == [] and browser_page.page_errors == []
    browser_page.screenshot("mirror-policy-blocks-script")

    # The control: the same HTML without our headers runs its script, so the checks above can fail.
    control = WatchedPage(chromium.new_page()).watch()
    try:
        control.page.set_content(hostile)
        control.page.wait_for_timeout(300)
        assert "alert: inline" in control.dialogs
    finally:
        control.page.close()
