"""The send work queue: one SQS message per chunk of a delivery's recipients."""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from chalicelib.data import aws
from chalicelib.data.batching import batches
from chalicelib.data.leftovers import until_done


def enqueue(queue_url: str, messages: Iterable[Mapping[str, Any]], delay_seconds: int = 0) -> int:
    """Put JSON messages on the queue, 10 a request, retrying entries SQS did not take; returns how many."""
    sqs = aws.client("sqs")
    bodies = (json.dumps(message, separators=(",", ":")) for message in messages)
    return sum(_send_batch(sqs, queue_url, [{"Id": str(index), "MessageBody": body, "DelaySeconds": delay_seconds}
                                            for index, body in enumerate(batch)])
               for batch in batches(bodies, 10))


def _send_batch(sqs: Any, queue_url: str, entries: list[dict[str, Any]]) -> int:
    """One SendMessageBatch, sending again the entries SQS failed (a sender's fault is raised at once)."""
    def send(pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
        failures = sqs.send_message_batch(QueueUrl=queue_url, Entries=pending).get("Failed", [])
        if any(entry.get("SenderFault") for entry in failures):
            raise RuntimeError(f"SQS refused send jobs: {failures}")
        failed = {entry["Id"] for entry in failures}
        return [entry for entry in pending if entry["Id"] in failed]

    until_done(send, entries, attempts=6, what="SendMessageBatch of send jobs", base=0.1)
    return len(entries)
