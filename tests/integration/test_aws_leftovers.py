"""What botocore's retries cannot do (chalicelib/data/leftovers.py), under faults injected at the botocore level.

Throttles are botocore's to retry (the client's retry mode); what is left
over by a successful batch call, and transactions cancelled for conflicts,
are the helper's. Each case checks the work is done exactly once.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.retries import standard

from chalicelib.data import aws
from chalicelib.data.deliveries import DeliveryStore, LogTransition
from chalicelib.data.dynamo import batch_write
from chalicelib.data.leftovers import LeftoverError, TransactionFailed, until_done
from chalicelib.settings import get_settings
from tests.aws_faults import UNHANDLED_URL, Fault, _Body, hooked, injected

CONFLICT = {"CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}]}


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore decides whether to retry; only its sleep is skipped (and the helper's)."""
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)
    monkeypatch.setattr("chalicelib.data.leftovers.backoff", lambda attempt, base, cap: 0)


def test_until_done_sends_the_leftover_again_and_gives_up_after_its_attempts() -> None:
    sent: list[list[int]] = []
    until_done(lambda pending: (sent.append(pending), pending[1:])[1], [1, 2, 3], attempts=5, what="t")
    assert sent == [[1, 2, 3], [2, 3], [3]]
    with pytest.raises(LeftoverError, match="stuck: still unprocessed after 2 attempts"):
        until_done(lambda pending: pending, [1], attempts=2, what="stuck")


def _delivery_with_logs(count: int) -> DeliveryStore:
    settings = get_settings()
    store = DeliveryStore(settings.deliveries_table, settings.delivery_logs_table)
    store.create("00112233445566ee", {"name": "d", "state": "in_progress", "created_at": 1,
                                      "counts": {"prepared": count, "sent": 0}}, {"subject": "s"}, {"urls": {}})
    store.put_logs("00112233445566ee", [{"log_id": log_id, "recipient_id": f"r{log_id}", "email": "a@example.net",
                                         "status": "prepared"} for log_id in range(1, count + 1)])
    return store


def test_unprocessed_items_are_written_again_exactly_once(resources: Any) -> None:
    """DynamoDB answers BatchWriteItem 200 with half the items left over: the helper sends those again."""
    from moto.core.models import botocore_stubber

    leftovers = []

    def half_unprocessed(request: Any, **kwargs: Any) -> AWSResponse | None:
        body = json.loads(request.body)
        [(table, items)] = body["RequestItems"].items()
        if len(items) < 2:
            return None
        kept, left = items[: len(items) // 2], items[len(items) // 2:]
        request.body = json.dumps({**body, "RequestItems": {table: kept}}).encode()
        request.headers["Content-Length"] = str(len(request.body))
        botocore_stubber(event_name=kwargs["event_name"], request=request)  # moto writes the kept half
        request.url = UNHANDLED_URL  # and only then: its own handler runs after this one
        leftovers.append(len(left))
        return AWSResponse(request.url, 200, {}, _Body(json.dumps({"UnprocessedItems": {table: left}}).encode()))

    table = get_settings().delivery_logs_table
    with hooked([("before-send.dynamodb.BatchWriteItem", half_unprocessed)]):
        written = batch_write(aws.client("dynamodb"), table, (
            {"delivery_id": "00112233445566dd", "log_id": log_id, "status": "prepared"} for log_id in range(1, 61)))
    assert written == 60 and sum(leftovers) > 30
    items = boto3.client("dynamodb").query(TableName=table, KeyConditionExpression="delivery_id = :d",
                                           ExpressionAttributeValues={":d": {"S": "00112233445566dd"}})["Items"]
    assert sorted(int(item["log_id"]["N"]) for item in items) == list(range(1, 61))


def test_a_transaction_that_conflicts_twice_commits_once_and_counts_stay_exact(resources: Any) -> None:
    store = _delivery_with_logs(1)
    with injected(Fault("dynamodb.TransactWriteItems", 1.0, "TransactionCanceledException", attempts=2,
                        fields=CONFLICT)) as faults:
        assert store.transition("00112233445566ee", [LogTransition(1, "prepared", "sent")], now_ms=5)
        assert faults.attempts["dynamodb.TransactWriteItems"] == 3
    summary = store.get_summary("00112233445566ee", consistent=True)
    assert summary["counts"] == {"prepared": 0, "sent": 1}
    assert not store.transition("00112233445566ee", [LogTransition(1, "prepared", "sent")], now_ms=6)
    assert store.get_summary("00112233445566ee", consistent=True)["counts"] == {"prepared": 0, "sent": 1}


def test_a_transaction_that_keeps_conflicting_fails_and_writes_nothing(resources: Any) -> None:
    store = _delivery_with_logs(1)
    with injected(Fault("dynamodb.TransactWriteItems", 1.0, "TransactionCanceledException", fields=CONFLICT)):
        with pytest.raises(TransactionFailed):
            store.transition("00112233445566ee", [LogTransition(1, "prepared", "sent")], now_ms=5, attempts=3)
    assert store.get_log("00112233445566ee", 1, consistent=True)["status"] == "prepared"


def test_throttles_are_botocores_to_retry(resources: Any) -> None:
    """A throttled call is retried by the client's retry mode, not by hand: one call, several attempts."""
    store = _delivery_with_logs(1)
    with injected(Fault("dynamodb.GetItem", 1.0, "ProvisionedThroughputExceededException", attempts=3)) as faults:
        assert store.get_log("00112233445566ee", 1)["status"] == "prepared"
    assert faults.attempts["dynamodb.GetItem"] == 4  # aws.DEFAULT: up to 5 attempts
