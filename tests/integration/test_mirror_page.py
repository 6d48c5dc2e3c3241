"""The mirror page: the message as the recipient received it, served so that nothing in it can run.

Placeholders where escaping cannot protect are refused at creation (400
naming the place); the page itself carries a sandboxing, script-less
Content-Security-Policy, nosniff, no referrer and no framing.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from infra.local_runtime.ses_outbox import OUTBOX
from tests.conftest import PUBLIC_BASE_URL

HTML = """<!DOCTYPE html><html><head><title>{{first_name}}'s news</title></head><body>
<p title="{{first_name}}">Hello {{first_name}}!</p>
<img alt="{{first_name}}" src="https://cdn.example.com/logo.png">
<a href="https://shop.example.com/members/{{member_id}}">Your offers</a>
<a href="{{mirror_url}}">View online</a> <a href="{{unsubscribe_url}}">Unsubscribe</a>
</body></html>"""


def delivery(**changes: Any) -> dict[str, Any]:
    body = {"name": "Mirror", "subject": "News", "from_address": "news@example.com", "html": HTML,
            "recipients": [{"id": "ann", "email": "ann@example.net",
                            "attributes": {"first_name": "<script>alert(1)</script>", "member_id": "m 1"}}]}
    body.update(changes)
    return body


@pytest.mark.parametrize(("html", "place"), [
    ('<img alt={{first_name}} src="https://cdn.example.com/a.png">', "unquoted value of alt="),
    ("<script>var n = '{{first_name}}';</script>", "inside <script>"),
    ('<p onclick="hi(\'{{first_name}}\')">x</p>', "event handler onclick="),
    ('<img src="https://cdn.example.com/{{first_name}}.png">', "URL attribute src="),
    ('<p style="color:{{first_name}}">x</p>', "style attribute"),
])
def test_a_placeholder_where_escaping_cannot_protect_is_a_400_naming_the_place(
        api: Any, html: str, place: str) -> None:
    response = api.post("/api/deliveries", body=delivery(html=html))
    assert response.status_code == 400, response.body
    [problem] = response.json_body["fields"]
    assert problem["field"] == "html" and place in problem["message"] and "{{first_name}}" in problem["message"]


def test_the_mirror_page_is_the_message_received_with_headers_that_let_nothing_run(
        api: Any, client: Any, mta: Any) -> None:
    created = api.post("/api/deliveries", body=delivery())
    assert created.status_code == 201, created.body
    assert api.post(f"/api/deliveries/{created.json_body['id']}/send").status_code == 202
    mta.send()
    [received] = [message.to_dict() for message in OUTBOX.messages()]
    mirror = re.search(re.escape(PUBLIC_BASE_URL) + r'(/m/[A-Za-z0-9_-]+)"', received["html"]).group(1)

    page = client.get(mirror)

    assert page.status_code == 200
    body = page.body.decode()
    assert body.replace("\r\n", "\n") == received["html"].replace("\r\n", "\n").rstrip("\n")
    assert "<script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    csp = [directive.strip() for directive in page.headers["Content-Security-Policy"].split(";")]
    assert csp[0].split()[0] == "sandbox" and "allow-scripts" not in csp[0] and "allow-same-origin" not in csp[0]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "base-uri 'none'" in csp
    assert not any(directive.startswith("script-src") for directive in csp)
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "no-store" in page.headers["Cache-Control"]
