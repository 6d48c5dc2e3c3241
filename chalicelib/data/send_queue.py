"""The send work queue: one SQS message per chunk of a delivery's recipients."""

from __future__ import annotations

import json
import time
from typing import Any, Iterable, Mapping

from chalicelib.data import aws
from chalicelib.data.batching import batches


def enqueue(queue_url: str, messages: Iterable[Mapping[str, Any]], delay_seconds: int = 0) -> int:
    """Put JSON messages on the queue, 10 a request, retrying entries SQS did not take; returns how many."""
    sqs = aws.client("sqs")
    bodies = (json.dumps(message, separators=(",", ":")) for message in messages)
    return sum(_send_batch(sqs, queue_url, [{"Id": str(index), "MessageBody": body, "DelaySeconds": delay_seconds}
                                            for index, body in enumerate(batch)])
               for batch in batches(bodies, 10))


def _send_batch(sqs: Any, queue_url: str, entries: list[dict[str, Any]]) -> int:
    pending = entries
    for attempt in range(6):
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=pending)
        failed = {entry["Id"] for entry in response.get("Failed", [])}
        if not failed:
            return len(entries)
        if any(entry.get("SenderFault") for entry in response.get("Failed", [])):
            raise RuntimeError(f"SQS refused send jobs: {response['Failed']}")
        pending = [entry for entry in pending if entry["Id"] in failed]
        time.sleep(min(0.1 * 2**attempt, 2.0))
    raise RuntimeError(f"SQS did not take {len(pending)} send jobs")
