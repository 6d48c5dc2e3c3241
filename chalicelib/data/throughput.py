"""Messages and bytes SES accepted per hour, across deliveries: counters kept by the send workers.

The send worker adds a group's accepted messages and their raw size to the
hour's counter in the transaction that records them as sent (so they count
exactly once, like the delivery's own messages_sent and bytes_sent). The
counters live in the tracking stats table under delivery_id=throughput#<shard>,
stat=hour#<hour start ms>: each transaction picks one of SHARDS partitions at
random, so concurrent workers rarely write the same item (a transaction
conflict costs a retry), and reading a time range is SHARDS Queries
whatever the volume.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterator

from chalicelib.data import aws
from chalicelib.data.domain_stats import counter_update
from chalicelib.data.dynamo import query_all

SHARDS = 8
HOUR_MS = 3_600_000
PARTITION_PREFIX = "throughput#"
HOUR_PREFIX = "hour#"


def hour_stat(hour_start_ms: int) -> str:
    return f"{HOUR_PREFIX}{hour_start_ms:015d}"


def hour_update(table: str, now_ms: int, messages: int, size: int, expires_at_epoch: int,
                pick: Callable[[int], int] = random.randrange) -> dict[str, Any]:
    """A TransactWriteItems entry adding a group's accepted messages and bytes to the hour of `now_ms`."""
    return counter_update(table, f"{PARTITION_PREFIX}{pick(SHARDS)}", hour_stat(now_ms - now_ms % HOUR_MS),
                          {"messages": messages, "bytes": size}, expires_at_epoch)


def hours(table: str, from_ms: int, to_ms: int, config: Any = aws.DEFAULT) -> Iterator[tuple[int, int, int]]:
    """(hour start, messages, bytes) of every counter item of the hours from..to, per shard (SHARDS Queries)."""
    dynamodb = aws.client("dynamodb", config)
    first, last = from_ms - from_ms % HOUR_MS, to_ms - to_ms % HOUR_MS
    for shard in range(SHARDS):
        for item in query_all(dynamodb, TableName=table,
                              KeyConditionExpression="delivery_id = :p AND stat BETWEEN :first AND :last",
                              ExpressionAttributeValues={":p": {"S": f"{PARTITION_PREFIX}{shard}"},
                                                         ":first": {"S": hour_stat(first)},
                                                         ":last": {"S": hour_stat(last)}}):
            yield int(item["stat"][len(HOUR_PREFIX):]), int(item.get("messages") or 0), int(item.get("bytes") or 0)
