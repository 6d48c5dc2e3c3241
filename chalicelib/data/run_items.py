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

A run's part of a shard can pass DynamoDB's 400 KB item limit (a flood of
hits on a few recipients), so it is written in parts of at most
MAX_BODY_BYTES (chalicelib/tracking/run_items.py `split`), each an item
whose sort key is `seq` = run x RUN_PARTS + part: read in `seq` order,
they are the run's content in order.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable

from chalicelib.data import aws
from chalicelib.data.dynamo import batch_delete
from chalicelib.tracking import run_items
from chalicelib.tracking.core import Hit

ERASE_ATTEMPTS = 5  # a run item rewritten meanwhile (another erasure) is read again, this many times at most
READ_CONCURRENCY = 16  # shards a delivery-wide read queries at once
RUN_PARTS = 1000  # parts a run's item of a shard may be written in (seq = run * RUN_PARTS + part)
MAX_BODY_BYTES = 350_000  # a part's body: far enough below 400 KB for its keys and attributes

RECIPIENTS_PER_SHARD = 45


def shard_of(log_id: int) -> int:
    """The shard of a delivery's recipient."""
    return log_id // RECIPIENTS_PER_SHARD


def shard_key(delivery_id: str, shard: int | None) -> str:
    """The table's partition key of a delivery's shard, or of its counters (None)."""
    return f"{delivery_id}#counters" if shard is None else f"{delivery_id}#{shard}"


def seq_of(run: int, part: int) -> int:
    """The sort key of part `part` of a run's item of a shard."""
    if not 0 <= part < RUN_PARTS:
        raise ValueError(f"a run's item of a shard has at most {RUN_PARTS} parts, not part {part}")
    return run * RUN_PARTS + part


def _by_shard(recipients: Iterable[tuple[str, int]]) -> dict[tuple[str, int], set[int]]:
    """(delivery id, log id) pairs as the log ids of each (delivery id, shard)."""
    wanted: dict[tuple[str, int], set[int]] = defaultdict(set)
    for delivery_id, log_id in recipients:
        wanted[(delivery_id, shard_of(log_id))].add(log_id)
    return wanted


@dataclass(frozen=True)
class StoredRunItem:
    seq: int
    body: bytes

    @property
    def run(self) -> int:
        return self.seq // RUN_PARTS


class RunItemStore:
    def __init__(self, table: str, config: Any = aws.DEFAULT) -> None:
        self.table = table
        self._config = config

    @property
    def _dynamodb(self) -> Any:
        return aws.client("dynamodb", self._config)

    def read_shard(self, delivery_id: str, shard: int | None, consistent: bool = True) -> list[StoredRunItem]:
        """A shard's run items in run order; strongly consistent by default (a run computes from every earlier
        one; a report may read them eventually consistent)."""
        pages = self._dynamodb.get_paginator("query").paginate(
            TableName=self.table, KeyConditionExpression="shard = :shard",
            ExpressionAttributeValues={":shard": {"S": shard_key(delivery_id, shard)}},
            ProjectionExpression="seq, body", ConsistentRead=consistent)
        return [StoredRunItem(int(item["seq"]["N"]), bytes(item["body"]["B"]))
                for page in pages for item in page.get("Items", [])]

    def recipient_hits(self, recipients: Iterable[tuple[str, int]], consistent: bool = False
                       ) -> dict[tuple[str, int], list[tuple[Hit, int]]]:
        """The stored hits of (delivery id, log id) pairs, each with the verdict it was last counted with (its
        run item's, or a later run's correction), in run order; one Query per shard they are in."""
        found: dict[tuple[str, int], list[tuple[Hit, int]]] = {}
        for (delivery_id, shard), log_ids in sorted(_by_shard(recipients).items()):
            bodies = [item.body for item in self.read_shard(delivery_id, shard, consistent)]
            for hit, verdict in run_items.replay(delivery_id, bodies):
                if hit.log_id in log_ids:
                    found.setdefault(hit.recipient, []).append((hit, verdict))
        return found

    def delivery_hits(self, delivery_id: str, highest_log_id: int) -> list[tuple[Hit, int]]:
        """Every hit of a delivery's shards up to `highest_log_id`'s, with the verdict it counts with now; a
        Query per shard, READ_CONCURRENCY at once, eventually consistent (a report's)."""
        shards = range(shard_of(highest_log_id) + 1)
        with ThreadPoolExecutor(max_workers=max(1, min(READ_CONCURRENCY, len(shards)))) as pool:
            stored = list(pool.map(lambda shard: self.read_shard(delivery_id, shard, consistent=False), shards))
        return [entry for items in stored for entry in run_items.replay(delivery_id, [item.body for item in items])]

    def erase(self, recipients: Iterable[tuple[str, int]]) -> int:
        """Rewrite the run items holding hits of (delivery id, log id) pairs without them (and without the
        corrections of their verdicts); how many hits were removed. The counters stay, as they do when the
        items layout erases. Each rewrite is conditioned on the body it read: one changed meanwhile (another
        erasure) is read again."""
        removed = 0
        for (delivery_id, shard), log_ids in sorted(_by_shard(recipients).items()):
            for _ in range(ERASE_ATTEMPTS):
                erased, done = self._erase_from_shard(delivery_id, shard, log_ids)
                removed += erased
                if done:
                    break
            else:
                raise RuntimeError(f"run items of {shard_key(delivery_id, shard)} kept changing; erase again")
        return removed

    def _erase_from_shard(self, delivery_id: str, shard: int, log_ids: set[int]) -> tuple[int, bool]:
        """One pass of erase over a shard: (hits removed, whether it finished; False when a rewrite lost a race:
        read again)."""
        removed = 0
        erased: set[str] = set()
        for item in self.read_shard(delivery_id, shard):
            decoded = run_items.decode(delivery_id, item.body)
            kept = [(hit, verdict) for hit, verdict in decoded.hits if hit.log_id not in log_ids]
            erased |= {hit.hit_id for hit, _ in decoded.hits if hit.log_id in log_ids}
            corrections = [(hit_id, verdict) for hit_id, verdict in decoded.corrections if hit_id not in erased]
            if len(kept) == len(decoded.hits) and len(corrections) == len(decoded.corrections):
                continue
            body = run_items.encode(delivery_id, kept, corrections, decoded.counters)
            try:
                self._dynamodb.update_item(
                    TableName=self.table,
                    Key={"shard": {"S": shard_key(delivery_id, shard)}, "seq": {"N": str(item.seq)}},
                    UpdateExpression="SET body = :new", ConditionExpression="body = :old",
                    ExpressionAttributeValues={":new": {"B": body}, ":old": {"B": item.body}})
            except self._dynamodb.exceptions.ConditionalCheckFailedException:
                return removed, False
            removed += len(decoded.hits) - len(kept)
        return removed, True

    def delete_delivery(self, delivery_id: str, highest_log_id: int) -> int:
        """Delete the run items of a delivery's log ids up to `highest_log_id`, and its counters'."""
        deleted = 0
        for shard in [*range(shard_of(highest_log_id) + 1), None]:
            deleted += batch_delete(self._dynamodb, self.table, [
                {"shard": shard_key(delivery_id, shard), "seq": item.seq}
                for item in self.read_shard(delivery_id, shard, consistent=False)])
        return deleted

    def delivery_counters(self, delivery_id: str) -> tuple[dict[str, dict[str, int]], int | None]:
        """A delivery's counters as its run items hold them, summed by stat and field (zeros left out), and when
        the latest of them was written (None: none). One Query of its counters partition, eventually
        consistent, as the reports read the items layout's counter items."""
        pages = self._dynamodb.get_paginator("query").paginate(
            TableName=self.table, KeyConditionExpression="shard = :shard",
            ExpressionAttributeValues={":shard": {"S": shard_key(delivery_id, None)}},
            ProjectionExpression="body, created_at")
        summed: dict[str, dict[str, int]] = {}
        latest = None
        for page in pages:
            for item in page.get("Items", []):
                for stat, field, delta in run_items.decode(delivery_id, bytes(item["body"]["B"])).counters:
                    fields = summed.setdefault(stat, {})
                    fields[field] = fields.get(field, 0) + delta
                latest = max(latest or 0, int(item["created_at"]["N"]))
        return {stat: {field: value for field, value in fields.items() if value}
                for stat, fields in summed.items()}, latest

    def put(self, delivery_id: str, shard: int | None, run: int, body: bytes, created_at: int,
            expires_at_epoch: int, part: int = 0) -> bool:
        """Write part `part` of a run's item of a shard once; False when it is there already (a replayed run
        record)."""
        try:
            self._dynamodb.put_item(
                TableName=self.table,
                Item={"shard": {"S": shard_key(delivery_id, shard)}, "seq": {"N": str(seq_of(run, part))},
                      "run": {"N": str(run)}, "delivery_id": {"S": delivery_id}, "body": {"B": body},
                      "created_at": {"N": str(created_at)}, "expires_at_epoch": {"N": str(expires_at_epoch)}},
                ConditionExpression="attribute_not_exists(seq)")
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True
