"""An unsubscribe that always sticks: each write of POST /u/{token} fails in turn, and a retry completes it.

Faults are injected with botocore event hooks on the moto-backed clients the
hit path really uses (no fake of DynamoDB, Kinesis or S3): a hook raises the
error an AWS call can give before the request is made. After one failed
attempt and one retry, the address is suppressed, the log carries the
opt-out, exactly one opt-out hit is recorded, and the next delivery to the
address skips it (ignored, denylisted: "the address opted out").
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator

import boto3
import pytest
from botocore import handlers as botocore_handlers
from botocore.exceptions import ClientError

from chalicelib.data import aws
from chalicelib.settings import get_settings
from infra.local_runtime.ses_outbox import OUTBOX
from tests.conftest import PUBLIC_BASE_URL, read_stream

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
Predicate = Callable[[dict[str, Any]], bool]


class WriteFaults:
    """Fail chosen AWS calls (by event name and a predicate on their parameters), each as often as asked."""

    def __init__(self) -> None:
        self.plan: list[tuple[str, Predicate, list[int]]] = []
        self.injected: list[str] = []

    def fail(self, operation: str, times: int = 1, when: Predicate = lambda params: True) -> None:
        self.plan.append((operation, when, [times]))

    def _hook(self, event_name: str, params: dict[str, Any], **_: Any) -> None:
        operation = event_name.split(".", 1)[1]
        for planned, when, left in self.plan:
            if planned == operation and left[0] > 0 and when(params):
                left[0] -= 1
                self.injected.append(operation)
                raise ClientError({"Error": {"Code": "InternalServerError", "Message": f"injected {operation}"},
                                   "ResponseMetadata": {"HTTPStatusCode": 500}}, operation.rsplit(".", 1)[1])


@pytest.fixture
def faults() -> Iterator[WriteFaults]:
    """Installed on every client created from now on (the hit path's clients are created afresh)."""
    injector = WriteFaults()
    hooks = [(f"before-parameter-build.{operation}", injector._hook)
             for operation in ("dynamodb.UpdateItem", "kinesis.PutRecord", "firehose.PutRecord", "s3.PutObject")]
    botocore_handlers.BUILTIN_HANDLERS.extend(hooks)
    aws.reset_clients()
    yield injector
    for hook in hooks:
        botocore_handlers.BUILTIN_HANDLERS.remove(hook)
    aws.reset_clients()


def _table(name: Callable[[], str]) -> Predicate:
    return lambda params: params.get("TableName") == name()


def _log_write(expression: str) -> Predicate:
    return lambda params: (params.get("TableName") == get_settings().delivery_logs_table
                           and expression in params.get("UpdateExpression", ""))


# Each write of the unsubscribe, failed on its own (the hit is lost only when all three of its writes fail).
FAILURES: dict[str, list[tuple[str, Predicate]]] = {
    "address": [("dynamodb.UpdateItem", _table(lambda: get_settings().addresses_table))],
    "log": [("dynamodb.UpdateItem", _log_write("optout_pending = "))],
    "stream": [("kinesis.PutRecord", lambda params: True)],
    "every_hit_write": [("kinesis.PutRecord", lambda params: True), ("firehose.PutRecord", lambda params: True),
                        ("s3.PutObject", lambda params: True)],
    "confirmation": [("dynamodb.UpdateItem", _log_write("REMOVE optout_pending"))],
}


def _delivery(api: Any, name: str) -> str:
    body = {"name": name, "subject": "News", "from_address": "news@example.com",
            "html": '<p>Hi</p><a href="{{unsubscribe_url}}">Unsubscribe</a>',
            "recipients": [{"id": "ann", "email": "ann@example.net"}, {"id": "bob", "email": "bob@example.net"}]}
    created = api.post("/api/deliveries", body=body)
    assert created.status_code == 201, created.body
    return str(created.json_body["id"])


def _send(api: Any, mta: Any, delivery_id: str) -> dict[str, Any]:
    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 202
    mta.send()
    return dict(api.get(f"/api/deliveries/{delivery_id}").json_body)


def _optout_hits() -> list[dict[str, Any]]:
    return [record for record in read_stream(get_settings().hit_stream) if record["kind"] == "optout"]


def _fallback_optouts() -> int:
    """Opt-out hits the fallbacks (Firehose, per-hit objects) wrote to the redirection log bucket."""
    s3, bucket = boto3.client("s3"), get_settings().redirection_log_bucket
    found = 0
    for entry in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
        found += sum(1 for line in body.splitlines() if b'"kind":"optout"' in line.replace(b" ", b""))
    return found


@pytest.mark.parametrize("failing", list(FAILURES))
def test_a_failed_write_is_completed_by_the_retry_and_the_next_send_skips_the_address(
        api: Any, client: Any, mta: Any, faults: WriteFaults, failing: str) -> None:
    first = _delivery(api, "first")
    _send(api, mta, first)
    ann_message = next(message for message in OUTBOX.messages() if message.to_dict()["to"] == ["ann@example.net"])
    unsubscribe_url = re.fullmatch(r"<(.+)>", ann_message.to_dict()["headers"]["List-Unsubscribe"]).group(1)
    path = unsubscribe_url[len(PUBLIC_BASE_URL):]

    for operation, when in FAILURES[failing]:
        faults.fail(operation, when=when)
    attempt = client.post(path, body="List-Unsubscribe=One-Click", headers=FORM)
    assert faults.injected, "the planned fault was never reached"
    assert attempt.status_code in (200, 503), attempt.body
    retry = client.post(path, body="List-Unsubscribe=One-Click", headers=FORM)
    assert retry.status_code == 200 and b"unsubscribed" in retry.body

    settings = get_settings()
    address = boto3.client("dynamodb").get_item(TableName=settings.addresses_table,
                                                Key={"address": {"S": "ann@example.net"}}).get("Item")
    assert address is not None and "unsubscribed_at" in address, failing
    assert address["unsubscribed_delivery"] == {"S": first}
    stored = boto3.client("dynamodb").get_item(TableName=settings.delivery_logs_table,
                                               Key={"delivery_id": {"S": first}, "log_id": {"N": "1"}})["Item"]
    assert "optout_at" in stored
    recorded = len(_optout_hits()) + _fallback_optouts()
    assert recorded >= 1, "the opt-out's hit was lost"
    if failing != "confirmation":  # a lost confirmation is the one case where the retry repeats the hit
        assert recorded == 1

    again = client.post(path, body="List-Unsubscribe=One-Click", headers=FORM)
    assert again.status_code == 200 and b"already" in again.body

    OUTBOX.clear()
    second = _delivery(api, "second")
    sent = _send(api, mta, second)
    assert [message.to_dict()["to"] for message in OUTBOX.messages()] == [["bob@example.net"]]
    assert sent["counts"]["sent"] == 1 and sent["counts"]["ignored"] == 1
    assert sent["failures"]["ignored"]["reasons"] == [{"reason": "denylisted", "code": 8, "count": 1}]
