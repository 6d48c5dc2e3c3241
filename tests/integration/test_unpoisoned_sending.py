"""Sending that one bad message cannot poison.

What no message can carry is refused when the delivery is created (400
naming the field); addresses are stored as they will be sent; and a message
that still cannot be built (stored before a rule existed) fails alone,
`failed` with `invalid_content` (30), while the rest of its group is sent
and the delivery finishes.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from chalicelib.deliveries.links import render_subject
from chalicelib.deliveries.mime import build_mime
from chalicelib.settings import get_settings
from infra.local_runtime.ses_outbox import OUTBOX

HTML = "<p>Hello {{first_name}}</p><a href=\"{{unsubscribe_url}}\">Unsubscribe</a>"


def body(**changes: Any) -> dict[str, Any]:
    document = {
        "name": "Winter", "subject": "{{first_name}}, winter is here", "from_address": "Shop <news@example.com>",
        "html": HTML, "text": "Hello {{first_name}}",
        "recipients": [{"id": "ann", "email": "ann@example.net", "attributes": {"first_name": "Ann"}},
                       {"id": "bob", "email": "bob@example.net", "attributes": {"first_name": "Bob"}},
                       {"id": "cat", "email": "cat@example.net", "attributes": {"first_name": "Cat"}}],
    }
    document.update(changes)
    return document


def post_raw(api: Any, document: dict[str, Any]) -> Any:
    """json.dumps keeps a lone surrogate as the escape "\\ud800", exactly what a client may send."""
    return api.post("/api/deliveries", body=json.dumps(document).encode(),
                    headers={"Content-Type": "application/json"})


def with_attribute(value: str) -> list[dict[str, Any]]:
    return [{"id": "ann", "email": "ann@example.net", "attributes": {"first_name": value}}]


@pytest.mark.parametrize(("changes", "field"), [
    ({"subject": "Winter\x0bsale"}, "subject"),
    ({"subject": "Winter\x85sale"}, "subject"),
    ({"subject": "Winter\u2028sale"}, "subject"),
    ({"subject": "Winter\rsale"}, "subject"),
    ({"subject": "Winter\nsale"}, "subject"),
    ({"subject": "Winter\ud800"}, "subject"),
    ({"from_address": "Shop\u2029 <news@example.com>"}, "from_address"),
    ({"from_address": "Shop\x0b <news@example.com>"}, "from_address"),
    ({"recipients": with_attribute("Ann\x0b")}, "recipients[0].attributes"),
    ({"recipients": with_attribute("Ann\x85")}, "recipients[0].attributes"),
    ({"recipients": with_attribute("Ann\x00")}, "recipients[0].attributes"),
    ({"recipients": with_attribute("Ann\ud800")}, "recipients[0].attributes"),
    ({"html": "<p>Hello \udfff</p>"}, "html"),
    ({"text": "Hello \ud800"}, "text"),
])
def test_what_no_message_can_carry_is_refused_at_creation(api: Any, changes: dict[str, Any], field: str) -> None:
    response = post_raw(api, body(**changes))
    assert response.status_code == 400, response.body
    assert response.json_body["error"] == "invalid_request"
    assert field in [item["field"] for item in response.json_body["fields"]], response.json_body


def test_line_breaks_in_body_values_are_fine_and_become_spaces_in_the_subject(api: Any, mta: Any) -> None:
    recipients = [{"id": "ann", "email": "ann@example.net", "attributes": {"first_name": "Ann\u2028Marie\r\n"}}]
    response = post_raw(api, body(recipients=recipients))
    assert response.status_code == 201, response.body
    delivery_id = response.json_body["id"]
    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 202
    mta.send()
    [message] = [message.to_dict() for message in OUTBOX.messages()]
    assert message["subject"] == "Ann Marie , winter is here"


def test_render_subject_turns_every_line_break_and_control_into_one_space() -> None:
    for value in ("A\x0bB", "A\x85B", "A\u2028B", "A\u2029B", "A\x0c\x1cB", "A\r\n\rB", "A\x00B"):
        subject = render_subject("Hi {{name}}!", {"name": value})
        assert subject == "Hi A B!", repr(value)
        build_mime("news@example.com", "ann@example.net", subject, "<p>x</p>", None, {})  # encodes


def test_addresses_are_stored_and_sent_stripped(api: Any, mta: Any) -> None:
    recipients = [{"id": "ann", "email": " Ann@Example.NET\n", "attributes": {"first_name": "Ann"}},
                  {"id": "bob", "email": "\tbob@example.net\r\n", "attributes": {"first_name": "Bob"}}]
    response = post_raw(api, body(recipients=recipients))
    assert response.status_code == 201, response.body
    delivery_id = response.json_body["id"]
    logs = api.get(f"/api/deliveries/{delivery_id}/logs").json_body["items"]
    assert [(log["email"], log["status"]) for log in logs] == [("Ann@example.net", "prepared"),
                                                               ("bob@example.net", "prepared")]
    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 202
    mta.send()
    assert [message.to_dict()["to"] for message in OUTBOX.messages()] == [["Ann@example.net"], ["bob@example.net"]]
    assert api.get(f"/api/deliveries/{delivery_id}").json_body["counts"]["sent"] == 2


def test_a_message_that_cannot_be_built_fails_alone_and_the_rest_is_sent(api: Any, mta: Any) -> None:
    response = post_raw(api, body())
    assert response.status_code == 201, response.body
    delivery_id = response.json_body["id"]
    # A log stored before addresses were normalised: its To: header would hold a bare LF.
    boto3.client("dynamodb").update_item(
        TableName=get_settings().delivery_logs_table,
        Key={"delivery_id": {"S": delivery_id}, "log_id": {"N": "2"}},
        UpdateExpression="SET email = :email", ExpressionAttributeValues={":email": {"S": "bob@example.net\n"}})

    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 202
    mta.send()

    assert [message.to_dict()["to"] for message in OUTBOX.messages()] == [["ann@example.net"], ["cat@example.net"]]
    summary = api.get(f"/api/deliveries/{delivery_id}").json_body
    assert summary["state"] == "finished"
    assert (summary["counts"]["sent"], summary["counts"]["failed"], summary["counts"]["pending"]) == (2, 1, 0)
    assert summary["failures"]["ignored"]["reasons"] == [{"reason": "invalid_content", "code": 30, "count": 1}]
    failed = api.get(f"/api/deliveries/{delivery_id}/logs?status=failed").json_body["items"]
    assert [(log["recipient_id"], log["failure_reason"], log["failure_code"]) for log in failed] == [
        ("bob", "invalid_content", 30)]
    assert "could not be rendered or encoded" in failed[0]["failure_detail"]
