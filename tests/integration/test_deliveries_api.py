"""POST /api/deliveries, send, read, list; the sent messages and the mirror page."""

from __future__ import annotations

import re
from typing import Any

import pytest

from infra.local_runtime.ses_outbox import OUTBOX
from tests.conftest import PUBLIC_BASE_URL, read_stream

HTML = """<!DOCTYPE html><html><body>
<p>Hello {{first_name}}!</p>
<a href="https://shop.example.com/autumn?a=1&amp;b=2#top">Autumn</a>
<a href="https://shop.example.com/members/{{member_id}}">Your offers</a>
<a href="https://untracked.example.com/" data-track="off">Untracked</a>
<a href="mailto:help@example.com">Mail us</a>
<a href="{{mirror_url}}">View online</a>
<a href="{{unsubscribe_url}}">Unsubscribe</a>
</body></html>"""


def delivery_body(**changes: Any) -> dict[str, Any]:
    body = {
        "name": "Autumn",
        "subject": "{{first_name}}, autumn is here",
        "from_address": "Shop <news@example.com>",
        "html": HTML,
        "text": "Hi {{first_name}}: https://shop.example.com/autumn?a=1&b=2#top\nStop: {{unsubscribe_url}}",
        "recipients": [
            {"id": "ann", "email": "ann@example.net", "attributes": {"first_name": "Ann", "member_id": "m-1"}},
            {"id": "bob", "email": "bob@example.net", "attributes": {"first_name": "Bob & <Co>", "member_id": "m 2"}},
        ],
    }
    body.update(changes)
    return body


def create(api: Any, **changes: Any) -> str:
    response = api.post("/api/deliveries", body=delivery_body(**changes))
    assert response.status_code == 201, response.body
    delivery_id = response.json_body["id"]
    assert re.fullmatch(r"[0-9a-f]{16}", delivery_id)
    return delivery_id


@pytest.mark.parametrize(("changes", "field"), [
    ({"name": ""}, "name"),
    ({"subject": "two\nlines"}, "subject"),
    ({"from_address": "not an address"}, "from_address"),
    ({"html": ""}, "html"),
    ({"recipients": []}, "recipients"),
    ({"recipients": [{"id": "a"}]}, "recipients[0].email"),
    ({"recipients": [{"id": "a", "email": "a@example.net"}, {"id": "a", "email": "b@example.net"}]},
     "recipients[1].id"),
    ({"recipients": [{"id": "a", "email": "a@example.net", "attributes": {"unsubscribe_url": "x"}}]},
     "recipients[0].attributes"),
    ({"tracking": {"urls": [{"match": "x", "mode": "sometimes"}]}}, "tracking.urls[0].mode"),
    ({"validity_days": 0}, "validity_days"),
    ({"unexpected": 1}, "unexpected"),
    ({"html": '<a href="ftp://files.example.com/x">f</a>'}, "html"),
    ({"html": '<a href="https://{{domain}}/x">f</a>'}, "html"),
    ({"text": "go to https://{{domain}}/x"}, "text"),
])
def test_bad_input_is_a_400_naming_the_field(api: Any, changes: dict[str, Any], field: str) -> None:
    response = api.post("/api/deliveries", body=delivery_body(**changes))
    assert response.status_code == 400, response.body
    body = response.json_body
    assert body["error"] == "invalid_request"
    assert field in [item["field"] for item in body["fields"]], body


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b"\xff\xfe"])
def test_unparseable_bodies_are_400(api: Any, raw: bytes) -> None:
    response = api.post("/api/deliveries", body=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json_body["error"] == "invalid_request"


def test_create_send_and_what_ses_was_given(api: Any, client: Any, mta: Any) -> None:
    delivery_id = create(api)
    summary = api.get(f"/api/deliveries/{delivery_id}").json_body
    assert (summary["state"], summary["recipients"]) == ("draft", 2)

    started = api.post(f"/api/deliveries/{delivery_id}/send")
    assert started.status_code == 202, started.body
    assert started.json_body["state"] == "start_pending"
    assert started.json_body["counts"]["prepared"] == 2 and OUTBOX.messages() == []
    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 409
    mta.send()
    sent = api.get(f"/api/deliveries/{delivery_id}").json_body
    assert sent["state"] == "finished"
    assert {name: sent["counts"][name] for name in ("prepared", "pending", "sent", "failed")} == {
        "prepared": 0, "pending": 0, "sent": 2, "failed": 0}

    messages = [message.to_dict() for message in OUTBOX.messages()]
    assert [message["to"] for message in messages] == [["ann@example.net"], ["bob@example.net"]]
    ann, bob = messages
    assert ann["subject"] == "Ann, autumn is here"
    assert bob["subject"] == "Bob & <Co>, autumn is here"
    assert "Hello Bob &amp; &lt;Co&gt;!" in bob["html"]
    assert ann["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(rf"<{re.escape(PUBLIC_BASE_URL)}/u/[A-Za-z0-9_-]+>", ann["headers"]["List-Unsubscribe"])
    assert ann["tags"] == {"delivery_id": delivery_id, "log_id": "1"}
    assert ann["configuration_set"] == "sendtrail-local-default"
    assert 'href="https://untracked.example.com/"' in ann["html"] and "data-track" not in ann["html"]
    assert 'href="mailto:help@example.com"' in ann["html"]
    assert f'<img src="{PUBLIC_BASE_URL}/o/' in ann["html"]
    assert f"{PUBLIC_BASE_URL}/r/" in ann["text"] and f"{PUBLIC_BASE_URL}/u/" in ann["text"]

    # Every tracked link of the HTML redirects to exactly what was written.
    targets = {}
    for link in re.findall(r'href="(' + re.escape(PUBLIC_BASE_URL) + r'/r/[^"]+)"', bob["html"]):
        response = client.get(link.replace("&amp;", "&")[len(PUBLIC_BASE_URL):])
        assert response.status_code == 302
        targets[response.headers["Location"]] = True
    assert set(targets) == {"https://shop.example.com/autumn?a=1&b=2#top", "https://shop.example.com/members/m%202"}
    # The text part's link is the same URL id as the HTML's.
    text_link = re.search(re.escape(PUBLIC_BASE_URL) + r"(/r/\S+)", bob["text"]).group(1)
    assert client.get(text_link).headers["Location"] == "https://shop.example.com/autumn?a=1&b=2#top"
    from chalicelib.settings import get_settings

    clicks = [record for record in read_stream(get_settings().hit_stream) if record["kind"] == "click"]
    assert len({record["url_id"] for record in clicks}) == 2
    assert {record["log_id"] for record in clicks} == {2}


def test_mirror_page_is_the_recipients_message(api: Any, client: Any, mta: Any) -> None:
    delivery_id = create(api)
    api.post(f"/api/deliveries/{delivery_id}/send")
    mta.send()
    ann = OUTBOX.messages()[0].to_dict()
    mirror = re.search(re.escape(PUBLIC_BASE_URL) + r'(/m/[A-Za-z0-9_-]+)"', ann["html"]).group(1)
    page = client.get(mirror)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Hello Ann!" in page.body.decode()
    from chalicelib.settings import get_settings

    [record] = read_stream(get_settings().hit_stream)
    assert (record["kind"], record["delivery_id"], record["log_id"], record["url_id"]) == ("mirror", delivery_id, 1, 3)
    assert record["token"] == mirror.rsplit("/", 1)[1] and record["p"] == "" and record["ip"] == "203.0.113.0"


def test_unknown_delivery_is_404(api: Any) -> None:
    assert api.get("/api/deliveries/0011223344556677").status_code == 404
    assert api.post("/api/deliveries/0011223344556677/send").status_code == 404


def test_listing_is_newest_first_and_paginated(api: Any) -> None:
    ids = [create(api, name=f"d{index}") for index in range(3)]
    first = api.get("/api/deliveries", query={"limit": "2"}).json_body
    assert len(first["items"]) == 2 and first["next"]
    second = api.get("/api/deliveries", query={"limit": "2", "next": first["next"]}).json_body
    listed = [item["id"] for item in first["items"] + second["items"]]
    assert sorted(listed) == sorted(ids)
    assert second["next"] is None
    assert api.get("/api/deliveries", query={"limit": "0"}).status_code == 400
    assert api.get("/api/deliveries", query={"next": "garbage!"}).status_code == 400


def _forged(fields: dict[str, Any]) -> str:
    """A cursor as a client could craft one: base64 of a JSON table key."""
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()


def test_a_forged_or_garbled_cursor_is_a_400_with_a_reason(api: Any) -> None:
    """Cursors are signed: a client cannot hand DynamoDB an ExclusiveStartKey the API did not return."""
    for index in range(3):
        create(api, name=f"d{index}")
    genuine = api.get("/api/deliveries", query={"limit": "1"}).json_body["next"]
    forged = [
        _forged({"x": {"S": "1"}}),  # not a key of the index (DynamoDB's ValidationException: a 503 before)
        _forged({"delivery_id": {"S": "0011223344556677"}, "list_pk": {"S": "deliveries"},
                 "created_at": {"N": "1"}}),  # a key's shape, made up
        genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"),  # tampered with
        genuine + "x", "%%%", "", "e30",  # garbled; "e30" is {}
    ]
    for cursor in forged:
        for query in ({"next": cursor}, {"next": cursor, "state": "draft"}):
            response = api.get("/api/deliveries", query=query)
            if cursor == "":
                assert response.status_code == 200, (cursor, response.body)  # no cursor: the first page
                continue
            assert response.status_code == 400, (cursor, query, response.body)
            body = response.json_body
            assert body["error"] == "invalid_request" and "next" in body["message"], body
            assert [item["field"] for item in body["fields"]] == ["next"]
    assert api.get("/api/deliveries", query={"limit": "1", "next": genuine}).status_code == 200


def test_a_cursor_is_good_only_where_it_was_returned(api: Any, mta: Any) -> None:
    """A genuine cursor of one listing (or one delivery's logs) is a 400 on another, not a 503."""
    first, second = create(api, name="a"), create(api, name="b")
    for delivery_id in (first, second):
        assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 202
    mta.send()
    logs_cursor = api.get(f"/api/deliveries/{first}/logs", query={"limit": "1"}).json_body["next"]
    assert logs_cursor
    assert api.get(f"/api/deliveries/{first}/logs", query={"limit": "1", "next": logs_cursor}).status_code == 200
    list_cursor = api.get("/api/deliveries", query={"limit": "1"}).json_body["next"]
    misplaced = [(f"/api/deliveries/{second}/logs", logs_cursor), ("/api/deliveries", logs_cursor),
                 ("/api/quarantine", list_cursor), (f"/api/deliveries/{first}/logs", list_cursor)]
    for path, cursor in misplaced:
        response = api.get(path, query={"next": cursor})
        assert response.status_code == 400, (path, response.body)
        assert response.json_body["fields"] == [{"field": "next", "message": "invalid"}], response.json_body


def test_an_unreachable_table_is_a_503_with_a_reason_not_a_500(api: Any) -> None:
    import boto3

    from chalicelib.settings import get_settings

    boto3.client("dynamodb").delete_table(TableName=get_settings().deliveries_table)
    response = api.post("/api/deliveries", body=delivery_body())
    assert response.status_code == 503
    assert response.json_body["error"] == "service_unavailable"
    assert b"Traceback" not in response.body
