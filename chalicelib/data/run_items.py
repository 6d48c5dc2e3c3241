"""The append-only layout's run items in DynamoDB (TrackingRunsTable): each written once, read a shard at a time.

A shard is a range of a delivery's log ids (RECIPIENTS_PER_SHARD of them:
log ids are 1, 2, ... in a delivery's recipient order), so a shard never
moves however the audience grows, and a run that touches a few recipients
reads and writes a few shards. The shard's size is what issue 16's write
units come from (README, "Cost": about 3,600 bytes of stored hits a shard,
at about 80 a recipient of the audience). A run item holds one run's part
of one shard; its body is docs/spec/run-items.md's. A delivery's counter
deltas have a partition of their own (shard None, `<delivery id>#counters`):
the delivery's reports sum one partition, however many shards it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.data import aws

RECIPIENTS_PER_SHARD = 45


def shard_of(log_id: int) -> int:
    """The shard of a delivery's recipient."""
    return log_id // RECIPIENTS_PER_SHARD


def shard_key(delivery_id: str, shard: int | None) -> str:
    """The table's partition key of a delivery's shard, or of its counters (None)."""
    return f"{delivery_id}#counters" if shard is None else f"{delivery_id}#{shard}"


@dataclass(frozen=True)
class StoredRunItem:
    run: int
    body: bytes


class RunItemStore:
    def __init__(self, table: str, config: Any = aws.DEFAULT) -> None:
        self.table = table
        self._config = config

    @property
    def _dynamodb(self) -> Any:
        return aws.client("dynamodb", self._config)

    def read_shard(self, delivery_id: str, shard: int | None) -> list[StoredRunItem]:
        """A shard's run items in run order; strongly consistent (a run computes from every earlier one)."""
        pages = self._dynamodb.get_paginator("query").paginate(
            TableName=self.table, KeyConditionExpression="shard = :shard",
            ExpressionAttributeValues={":shard": {"S": shard_key(delivery_id, shard)}},
            ProjectionExpression="run, body", ConsistentRead=True)
        return [StoredRunItem(int(item["run"]["N"]), bytes(item["body"]["B"]))
                for page in pages for item in page.get("Items", [])]

    def put(self, delivery_id: str, shard: int | None, run: int, body: bytes, created_at: int,
            expires_at_epoch: int) -> bool:
        """Write a run's item of a shard once; False when it is there already (a replayed run record)."""
        try:
            self._dynamodb.put_item(
                TableName=self.table,
                Item={"shard": {"S": shard_key(delivery_id, shard)}, "run": {"N": str(run)},
                      "delivery_id": {"S": delivery_id}, "body": {"B": body}, "created_at": {"N": str(created_at)},
                      "expires_at_epoch": {"N": str(expires_at_epoch)}},
                ConditionExpression="attribute_not_exists(run)")
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True
