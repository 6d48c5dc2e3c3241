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


def test_each_queue_driven_function_reads_the_queue_its_template_override_names(resources: Any) -> None:
    from infra.local_runtime.sqs_workers import triggers_for

    found = {trigger.name: (trigger.queue_url.rsplit("/", 1)[1], trigger.batch_size, trigger.timeout_seconds)
             for trigger in triggers_for(resources)}
    assert found == {"send_worker": ("sendtrail-local-send-work", 1, 300),
                     "ses_events": ("sendtrail-local-ses-events", 10, 60)}


def test_a_failed_transaction_leaves_every_item_as_it_was(aws: None) -> None:
    """moto's transactions with the local runtime's item-level rollback (infra/local_runtime/moto_dynamodb.py)."""
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(TableName="tx", BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                     {"AttributeName": "sk", "KeyType": "RANGE"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                {"AttributeName": "sk", "AttributeType": "N"}])
    dynamodb.put_item(TableName="tx", Item={"pk": {"S": "a"}, "sk": {"N": "1"}, "n": {"N": "1"}})
    dynamodb.put_item(TableName="tx", Item={"pk": {"S": "c"}, "sk": {"N": "1"}, "n": {"N": "7"}})

    def transaction(expected_c: str) -> list[dict[str, Any]]:
        return [
            {"Update": {"TableName": "tx", "Key": {"pk": {"S": "a"}, "sk": {"N": "1"}},
                        "UpdateExpression": "SET n = n + :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            {"Put": {"TableName": "tx", "Item": {"pk": {"S": "b"}, "sk": {"N": "1"}}}},
            {"ConditionCheck": {"TableName": "tx", "Key": {"pk": {"S": "c"}, "sk": {"N": "1"}},
                                "ConditionExpression": "n = :n",
                                "ExpressionAttributeValues": {":n": {"N": expected_c}}}},
        ]

    import pytest

    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(TransactItems=transaction("8"))
    items = {item["pk"]["S"]: item for item in dynamodb.scan(TableName="tx")["Items"]}
    assert set(items) == {"a", "c"} and items["a"]["n"] == {"N": "1"}
    dynamodb.transact_write_items(TransactItems=transaction("7"))
    items = {item["pk"]["S"]: item for item in dynamodb.scan(TableName="tx")["Items"]}
    assert set(items) == {"a", "b", "c"} and items["a"]["n"] == {"N": "2"}
