"""The local runtime's trigger emulation behaves like Lambda's SQS event source mapping."""

from __future__ import annotations

from typing import Any

import boto3

from infra.local_runtime.triggers import ScheduledTrigger, SqsTrigger, json_body


def test_reported_failures_stay_queued_and_the_rest_are_deleted(aws: None) -> None:
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="trigger-test", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    for number in range(5):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f'{{"n": {number}}}')
    seen: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failures = []
        for record in event["Records"]:
            assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"].endswith(":trigger-test")
            number = json_body(record)["n"]
            seen.append(number)
            if number == 3:
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    trigger = SqsTrigger("worker", queue_url, handler, batch_size=10)
    assert trigger.step() == 5
    assert sorted(seen) == [0, 1, 2, 3, 4]
    seen.clear()
    assert trigger.step() == 1 and seen == [3]


def test_an_invocation_that_raises_leaves_the_batch(aws: None) -> None:
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="trigger-raise", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="{}")

    def broken(event: dict[str, Any], context: Any) -> None:
        raise RuntimeError("boom")

    assert SqsTrigger("worker", queue_url, broken).step() == 1
    assert SqsTrigger("worker", queue_url, lambda event, context: None).drain() == 1
    assert SqsTrigger("worker", queue_url, lambda event, context: None).step() == 0


def test_schedule_passes_a_scheduled_event() -> None:
    events: list[dict[str, Any]] = []
    ScheduledTrigger("tick", lambda event, context: events.append(event)).step()
    assert events[0]["detail-type"] == "Scheduled Event" and events[0]["resources"][0].endswith("rule/tick")
