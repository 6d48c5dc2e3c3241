"""Lambda triggers, emulated: what invokes a function in AWS, invoked locally.

moto stores event source mappings and schedules but never invokes anything.
These classes do what the AWS services would: a scheduled rule calls its
function every interval; an SQS event source mapping receives a batch, calls
the function with an SQS event, and deletes every message except those the
function reports in `batchItemFailures` (ReportBatchItemFailures), which
come back after the queue's visibility timeout and, past maxReceiveCount, go
to the dead-letter queue by the queue's own redrive policy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import boto3
from chalice.local import LambdaContext

from infra.local_runtime import lambda_metrics
from infra.local_runtime.provision import ACCOUNT_ID

logger = logging.getLogger("sendtrail.local.triggers")
Handler = Callable[[dict[str, Any], Any], Any]


def lambda_context(function_name: str, timeout_seconds: int = 60) -> LambdaContext:
    return LambdaContext(function_name=function_name, memory_size=512, max_runtime_ms=timeout_seconds * 1000)


def scheduled_event(rule_name: str, region: str = "us-east-1") -> dict[str, Any]:
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": ACCOUNT_ID, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region, "resources": [f"arn:aws:events:{region}:{ACCOUNT_ID}:rule/{rule_name}"], "detail": {},
    }


@dataclass
class ScheduledTrigger:
    """An EventBridge schedule: `handler(scheduled event, context)` on every step."""

    name: str
    handler: Handler

    def step(self) -> Any:
        return lambda_metrics.invoke(self.name, self.handler, scheduled_event(self.name), lambda_context(self.name))


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str = "us-east-1") -> dict[str, Any]:
    """The event Lambda builds from a ReceiveMessage batch."""
    return {"Records": [{
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            name: {"stringValue": value.get("StringValue"), "dataType": value.get("DataType", "String")}
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode(),
                                                             usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    } for message in messages]}


@dataclass
class SqsTrigger:
    """An SQS event source mapping with ReportBatchItemFailures."""

    name: str
    queue_url: str
    handler: Handler
    batch_size: int = 10
    timeout_seconds: int = 60
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def _sqs(self) -> Any:
        """One client per trigger: creating one costs more CPU than the calls of a step (hooks installed before
        the trigger was made reach it)."""
        if "sqs" not in self._clients:
            self._clients["sqs"] = boto3.client("sqs")
        return self._clients["sqs"]

    def _queue_arn(self) -> str:
        if "arn" not in self._clients:
            self._clients["arn"] = self._sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return self._clients["arn"]

    def step(self) -> int:
        """Deliver one batch, if any; returns how many messages were handed to the function."""
        sqs = self._sqs
        received = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size,
                                       AttributeNames=["All"], MessageAttributeNames=["All"], WaitTimeSeconds=0)
        messages = received.get("Messages", [])
        if not messages:
            return 0
        try:
            result = lambda_metrics.invoke(self.name, self.handler, sqs_event(messages, self._queue_arn()),
                                           lambda_context(self.name, self.timeout_seconds))
        except Exception:  # noqa: BLE001 - a failed invocation leaves the whole batch for a retry, as in AWS
            logger.exception("%s failed; the batch returns to the queue", self.name)
            return len(messages)
        failed = {item["itemIdentifier"] for item in (result or {}).get("batchItemFailures", [])}
        done = [message for message in messages if message["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(done[start:start + 10])
            ])
        return len(messages)

    def drain(self, max_batches: int = 10_000) -> int:
        """Deliver batches until the queue has nothing visible (tests and the demo use this)."""
        total = 0
        for _ in range(max_batches):
            handled = self.step()
            if not handled:
                return total
            total += handled
        return total


def json_body(record: dict[str, Any]) -> Any:
    return json.loads(record["body"])
