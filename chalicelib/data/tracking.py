"""The tracking tables in DynamoDB: per-recipient tracking, consolidated stats, workflow state.

Every write the tracking workflow makes to the tracking tables is guarded by
the number of the run making it: an item accepts run N only when the last
run it took is older (`last_run < N`). A run re-applied after a crash, by the
run that resumes it, or by a stalled Lambda that wakes up late, therefore
changes nothing twice, and a late write from an older run cannot overwrite
a newer one. See chalicelib/tracking/workflow.py for the whole design.

Every read here is a GetItem, BatchGetItem or Query on a key; nothing scans.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping, Sequence

from chalicelib.data import aws, counters

# Re-exported: the per-counter names the workflow and the readers use (data/counters.py groups them).
from chalicelib.data.counters import BUCKET_PREFIX as BUCKET_PREFIX
from chalicelib.data.counters import INDICATORS as INDICATORS
from chalicelib.data.counters import UA_PREFIX as UA_PREFIX
from chalicelib.data.counters import URL_PREFIX as URL_PREFIX
from chalicelib.data.counters import bucket_stat as bucket_stat
from chalicelib.data.counters import ua_stat as ua_stat
from chalicelib.data.counters import url_stat as url_stat
from chalicelib.data.deliveries import BY_RECIPIENT_INDEX as LOGS_BY_RECIPIENT_INDEX
from chalicelib.data.deliveries import SUMMARY
from chalicelib.data.domain_stats import domain_of
from chalicelib.data.dynamo import (
    batch_delete,
    batch_get,
    batch_write,
    from_item,
    query_all,
    query_keys,
    to_item,
    to_value,
)
from chalicelib.data.run_items import RunItemStore

# Declared on TrackingTable in infra/template.yaml: (recipient_id, first_hit_at), keys only. An item's first
# hit stays when runs add hits, so a rewrite does not write the index (see recipient_items).
BY_RECIPIENT_INDEX = "by-recipient-first-hit"
STATE_KEY = {"pk": {"S": "state"}, "sk": {"S": "tracking-workflow"}}
_GUARD = "attribute_not_exists(last_run) OR last_run < :run"


class ItemTooLarge(Exception):
    """DynamoDB refused a write because the item would pass its 400 KB size limit (it wrote nothing)."""


class FamiliesFull(Exception):
    """A family shard refused a write that brings families while its marks are at FAMILY_SHARD_CAP (it wrote
    nothing); `stored`: the shard's attribute names, as the refusal returned them (ALL_OLD)."""

    def __init__(self, message: str, stored: frozenset[str]) -> None:
        super().__init__(message)
        self.stored = stored


def _too_large(error: Exception) -> bool:
    """Whether a write failed on the item size limit: a ValidationException "Item size has exceeded the maximum
    allowed size" (PutItem) or "Item size to update has exceeded..." (UpdateItem)."""
    response = getattr(error, "response", None) or {}
    details = response.get("Error") or {}
    return details.get("Code") == "ValidationException" and "item size" in str(details.get("Message", "")).lower()


class TrackingStore:
    def __init__(self, tracking_table: str, stats_table: str, config: Any = aws.DEFAULT,
                 runs_table: str | None = None, logs_table: str | None = None, reads_runs: bool = False) -> None:
        self.tracking_table = tracking_table
        self.stats_table = stats_table
        self._config = config
        # The append layout's run items (data/run_items.py). With `reads_runs` (the layout is append), the
        # reports' reads below add theirs to the items layout's (dual reads: what was written before the switch
        # lives out its retention); the items layout's reports read no run item, so they cost what they did.
        # A person's export and erasure look at both whatever the layout. A recipient's run items are found
        # from their delivery logs (`logs_table`'s by-recipient index), as run items name no recipient.
        self.runs = RunItemStore(runs_table, config) if runs_table else None
        self.logs_table = logs_table
        self.reads_runs = reads_runs and self.runs is not None

    @classmethod
    def of(cls, settings: Any) -> "TrackingStore":
        """The store of the settings' tracking tables and layout (chalicelib.settings.Settings)."""
        return cls(settings.tracking_table, settings.tracking_stats_table, runs_table=settings.tracking_runs_table,
                   logs_table=settings.delivery_logs_table, reads_runs=settings.tracking_layout == "append")

    @property
    def _dynamodb(self) -> Any:
        return aws.client("dynamodb", self._config)

    # --- per-recipient tracking --------------------------------------------

    def get_recipients(self, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
        """The stored tracking items of (delivery id, log id) pairs; strongly consistent."""
        requested = [{"delivery_id": {"S": delivery_id}, "log_id": {"N": str(log_id)}}
                     for delivery_id, log_id in sorted(set(keys))]
        items = batch_get(self._dynamodb, self.tracking_table, requested, consistent=True)
        return {(item["delivery_id"], int(item["log_id"])): item for item in items}

    def recipient_hits(self, keys: Iterable[tuple[str, int]]) -> list[dict[str, Any]]:
        """Just the stored hits (with their verdicts) of (delivery id, log id) pairs: BatchGetItem, projected."""
        requested = [{"delivery_id": {"S": delivery_id}, "log_id": {"N": str(log_id)}}
                     for delivery_id, log_id in sorted(set(keys))]
        return batch_get(self._dynamodb, self.tracking_table, requested, consistent=False,
                         projection="delivery_id, log_id, hits")

    def put_recipient(self, item: Mapping[str, Any], run: int) -> bool:
        """Write a recipient's tracking item for run `run`; False if a run >= `run` already wrote it."""
        return self.put_recipient_item(to_item(item), run)

    def put_recipient_item(self, item: Mapping[str, Any], run: int) -> bool:
        """put_recipient of an item already in DynamoDB's form (a run record's, data/item_json.py)."""
        try:
            self._dynamodb.put_item(TableName=self.tracking_table, Item={**item, "last_run": {"N": str(run)}},
                                    ConditionExpression=_GUARD, ExpressionAttributeValues={":run": {"N": str(run)}})
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def get_recipient(self, delivery_id: str, log_id: int) -> dict[str, Any] | None:
        response = self._dynamodb.get_item(TableName=self.tracking_table,
                                           Key={"delivery_id": {"S": delivery_id}, "log_id": {"N": str(log_id)}})
        return from_item(response.get("Item"))

    def recipient_items(self, recipient_id: str, first_hit_before: int | None = None,
                        with_runs: bool | None = None) -> list[dict[str, Any]]:
        """A recipient's tracking items across deliveries, most recent last hit first (with `first_hit_before`,
        only those whose first hit is older: the others hold no hit before it).

        The index holds keys only, sorted by first hit: the items are read
        by key (BatchGetItem) and ordered here. Reading every item of the
        recipient costs reads on a person's report, which is rare; an index
        that held the items (or sorted by the last hit) would be written on
        every run that adds a hit, which is every hit. `with_runs`: whether the
        append layout's run items are read too (default: when the layout is
        append), each recipient's hits in a delivery as one item of this form.
        """
        condition = "recipient_id = :r"
        values = {":r": {"S": recipient_id}}
        if first_hit_before is not None:
            condition += " AND first_hit_at < :before"
            values[":before"] = {"N": str(first_hit_before)}
        keys = query_keys(self._dynamodb, ("delivery_id", "log_id"), TableName=self.tracking_table,
                          IndexName=BY_RECIPIENT_INDEX, KeyConditionExpression=condition,
                          ExpressionAttributeValues=values)
        items = batch_get(self._dynamodb, self.tracking_table, [to_item(key) for key in keys], consistent=False)
        if self.reads_runs if with_runs is None else with_runs:  # the append layout's (a person's export: always)
            items += [item for item in self._appended_items(recipient_id)
                      if first_hit_before is None or int(item["first_hit_at"]) < first_hit_before]
        return sorted(items, key=lambda item: (-int(item.get("last_hit_at") or 0), str(item["delivery_id"]),
                                               int(item["log_id"])))

    def _recipient_logs(self, recipient_id: str) -> list[tuple[str, int]]:
        """(delivery id, log id) of a recipient's delivery logs (keys only, from the by-recipient index)."""
        if self.logs_table is None:
            return []
        keys = query_keys(self._dynamodb, ("delivery_id", "log_id"), TableName=self.logs_table,
                          IndexName=LOGS_BY_RECIPIENT_INDEX, KeyConditionExpression="recipient_id = :r",
                          ExpressionAttributeValues={":r": {"S": recipient_id}})
        return [(str(key["delivery_id"]), int(key["log_id"])) for key in keys]

    def _appended_items(self, recipient_id: str) -> list[dict[str, Any]]:
        """A recipient's hits in the append layout's run items, one tracking item per delivery as the items
        layout stores them (chalicelib/tracking/items.py), so readers and exports read both layouts alike."""
        if self.runs is None:
            return []
        from chalicelib.tracking.items import encode_recipient  # the reports' and the workflow's, not the hit path's

        items = []
        found_hits = self.runs.recipient_hits(self._recipient_logs(recipient_id))
        for (delivery_id, log_id), found in sorted(found_hits.items()):
            hits = [hit for hit, _ in found]
            item = encode_recipient(delivery_id, log_id, hits, recipient_id, 0, 0, [verdict for _, verdict in found])
            for name in ("updated_at", "expires_at_epoch"):  # a run item's, not a recipient item's: none to show
                del item[name]
            items.append({**item, "layout": "append"})
        return items

    def erase_appended(self, recipient_id: str) -> int:
        """Remove a recipient's hits from the append layout's run items; how many were removed."""
        if self.runs is None:
            return 0
        return self.runs.erase(self._recipient_logs(recipient_id))

    def delete_recipient(self, recipient_id: str) -> int:
        """Delete a recipient's tracking items across deliveries (their keys from the by-recipient index)."""
        keys = query_keys(self._dynamodb, ("delivery_id", "log_id"), TableName=self.tracking_table,
                          IndexName=BY_RECIPIENT_INDEX, KeyConditionExpression="recipient_id = :r",
                          ExpressionAttributeValues={":r": {"S": recipient_id}})
        return batch_delete(self._dynamodb, self.tracking_table, keys)

    def delete_delivery(self, delivery_id: str, recipients: int = 0) -> int:
        """Delete a delivery's tracking and consolidated stats (a Query on each table's partition key), and the
        run items of its `recipients` (their log ids 1 to `recipients`: a Query per shard)."""
        deleted = self.runs.delete_delivery(delivery_id, recipients) if self.runs is not None else 0
        for table, sort_key in ((self.tracking_table, "log_id"), (self.stats_table, "stat")):
            keys = query_keys(self._dynamodb, ("delivery_id", sort_key), TableName=table,
                              KeyConditionExpression="delivery_id = :d",
                              ExpressionAttributeValues={":d": {"S": delivery_id}})
            deleted += batch_delete(self._dynamodb, table, keys)
        return deleted

    # --- consolidated stats ------------------------------------------------

    def apply_stat(self, delivery_id: str, stat: str, deltas: Mapping[str, int], run: int, now_ms: int,
                   expires_at_epoch: int, marks: Sequence[int] = ()) -> bool:
        """Add `deltas` to one stats item, once for run `run`; False if it already took this run. ItemTooLarge
        if DynamoDB refused it because the item would pass 400 KB (nothing written: the workflow overflows it,
        data/counters.py `overflow`).

        `marks` (a family shard's write: counters.family_marks) are ADDed to
        its FAMILIES set, on condition that the set has room for them all
        (its size() at most FAMILY_SHARD_CAP - len(marks)), or does not exist
        yet (a shard's first write, or one filled before the cap); refused
        for room, the write raises FamiliesFull (nothing written) with the
        shard's attribute names, which the refusal returns (ALL_OLD: no read
        units) and which tell it from a refusal by the run guard."""
        names = {f"#a{index}": name for index, name in enumerate(deltas)}
        values: dict[str, Any] = {f":v{index}": to_value(value) for index, value in enumerate(deltas.values())}
        values.update({":run": {"N": str(run)}, ":now": {"N": str(now_ms)}, ":exp": {"N": str(expires_at_epoch)}})
        expression = "SET last_run = :run, last_updated = :now, expires_at_epoch = :exp"
        adds = [f"#a{index} :v{index}" for index in range(len(deltas))]
        condition = _GUARD
        if marks:
            room = counters.FAMILY_SHARD_CAP - len(marks)
            names["#fams"] = counters.FAMILIES
            values.update({":fams": {"NS": [str(mark) for mark in marks]}, ":room": {"N": str(room)}})
            adds.append("#fams :fams")
            # A write with more marks than the cap fits no shard, not even a new one.
            room_left = ("attribute_exists(#fams) AND size(#fams) <= :room" if room < 0
                         else "attribute_not_exists(#fams) OR size(#fams) <= :room")
            condition = f"({_GUARD}) AND ({room_left})"
        if adds:
            expression += " ADD " + ", ".join(adds)
        request: dict[str, Any] = {
            "TableName": self.stats_table,
            "Key": {"delivery_id": {"S": delivery_id}, "stat": {"S": stat}},
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if names:
            request["ExpressionAttributeNames"] = names
        if marks:
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            self._dynamodb.update_item(**request)
        except self._dynamodb.exceptions.ConditionalCheckFailedException as refused:
            if not marks:
                return False
            stored = refused.response.get("Item") or {}
            if "last_run" in stored and int(stored["last_run"]["N"]) >= run:
                return False  # the run guard: this run is in already
            raise FamiliesFull(f"stats item {delivery_id} {stat}: family shard full", frozenset(stored)) from refused
        except self._dynamodb.exceptions.ClientError as error:
            if _too_large(error):
                raise ItemTooLarge(f"stats item {delivery_id} {stat}: {error}") from error
            raise
        return True

    def put_log_page(self, item: Mapping[str, Any], run: int, expires_at_epoch: int) -> bool:
        """Write one log page of run `run` (tracking/log_pages.py); False if it was written already."""
        return self.put_log_page_item(to_item(item), run, expires_at_epoch)

    def put_log_page_item(self, item: Mapping[str, Any], run: int, expires_at_epoch: int) -> bool:
        """put_log_page of an item already in DynamoDB's form (a run record's, data/item_json.py)."""
        try:
            self._dynamodb.put_item(TableName=self.stats_table,
                                    Item={**item, "last_run": {"N": str(run)},
                                          "expires_at_epoch": {"N": str(expires_at_epoch)}},
                                    ConditionExpression=_GUARD, ExpressionAttributeValues={":run": {"N": str(run)}})
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def rewrite_log_page(self, page: Mapping[str, Any]) -> bool:
        """Put back a log page read from the table, changed (erasure), on condition that it is still the one
        read (its last_run; pages are otherwise written once); False if it changed or went meanwhile."""
        try:
            self._dynamodb.put_item(TableName=self.stats_table, Item=to_item(page),
                                    ConditionExpression="last_run = :run",
                                    ExpressionAttributeValues={":run": {"N": str(int(page["last_run"]))}})
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def log_pages_down(self, delivery_id: str, prefix: str, highest: str, page_size: int = 20
                       ) -> Iterator[dict[str, Any]]:
        """A delivery's stats items from `prefix` whose name is at most `highest`, in descending name order:
        Queries of `page_size` items, made only as the caller reads on."""
        return query_all(
            self._dynamodb, TableName=self.stats_table,
            KeyConditionExpression="delivery_id = :d AND stat BETWEEN :low AND :high",
            ExpressionAttributeValues={":d": {"S": delivery_id}, ":low": {"S": prefix}, ":high": {"S": highest}},
            ScanIndexForward=False, Limit=page_size,
        )

    def indicators(self, delivery_id: str) -> dict[str, Any] | None:
        """The delivery's indicators: the tally item's and an older version's indicators item, summed (one
        BatchGetItem); None before any hit."""
        items = {item["stat"]: item for item in batch_get(
            self._dynamodb, self.stats_table, [{"delivery_id": {"S": delivery_id}, "stat": {"S": stat}}
                                               for stat in (INDICATORS, counters.TALLY)], consistent=False)}
        merged = counters.merge_indicators(items.get(INDICATORS), items.get(counters.TALLY))
        if self.runs is None or not self.reads_runs:
            return merged
        appended, written_at = self.runs.delivery_counters(delivery_id)
        if written_at is None:
            return merged
        merged = dict(merged or {})
        for name, value in appended.get(INDICATORS, {}).items():
            merged[name] = merged.get(name, 0) + value
        merged["last_updated"] = max(int(merged.get("last_updated") or 0), written_at)
        return merged

    def counter_items(self, delivery_id: str, prefix: str) -> list[dict[str, Any]]:
        """A delivery's counters named from `prefix` (url#, ua#..., bucket#) as one item per URL, family or
        window ({stat, counters}, name order): the grouped items' and the per-counter items' (written by an
        older version) summed. One Query for the windows (their grouped items share the prefix), two for the
        others."""
        items = self.query_stats(delivery_id, prefix)
        grouped = counters.group_prefix(prefix)
        if not grouped.startswith(prefix):
            items += self.query_stats(delivery_id, grouped)
        if self.runs is not None and self.reads_runs:  # the append layout's, as per-counter items
            items += [{"stat": stat, **fields} for stat, fields in self.runs.delivery_counters(delivery_id)[0].items()
                      if stat.startswith(prefix)]
        return counters.merge(items, prefix)

    def get_stat(self, delivery_id: str, stat: str) -> dict[str, Any] | None:
        response = self._dynamodb.get_item(TableName=self.stats_table,
                                           Key={"delivery_id": {"S": delivery_id}, "stat": {"S": stat}})
        return from_item(response.get("Item"))

    def query_stats(self, delivery_id: str, prefix: str) -> list[dict[str, Any]]:
        """A delivery's stats items whose name starts with `prefix`, in name order (a Query)."""
        return list(query_all(
            self._dynamodb, TableName=self.stats_table,
            KeyConditionExpression="delivery_id = :d AND begins_with(stat, :p)",
            ExpressionAttributeValues={":d": {"S": delivery_id}, ":p": {"S": prefix}},
        ))


def delivery_log_facts(logs_table: str, keys: Iterable[tuple[str, int]], config: Any = aws.DEFAULT
                       ) -> dict[tuple[str, int], dict[str, Any]]:
    """The recipient id, send time (ms) and address domain of each (delivery id, log id) from the delivery
    logs (BatchGetItem)."""
    requested = [{"delivery_id": {"S": delivery_id}, "log_id": {"N": str(log_id)}}
                 for delivery_id, log_id in sorted(set(keys))]
    items = batch_get(aws.client("dynamodb", config), logs_table, requested, consistent=False,
                      projection="delivery_id, log_id, recipient_id, sent_at, email")
    return {(item["delivery_id"], int(item["log_id"])): {
        "recipient_id": str(item["recipient_id"]) if item.get("recipient_id") else None,
        "sent_at": int(item["sent_at"]) if item.get("sent_at") is not None else None,
        "domain": domain_of(item.get("email"))} for item in items}


def delivery_audiences(deliveries_table: str, delivery_ids: Iterable[str], config: Any = aws.DEFAULT
                       ) -> dict[str, int]:
    """The recipients of each delivery (its summary's `recipients`, fixed at creation) that has a summary
    (BatchGetItem, projected): how many items its domains' tracking counters take (counters.domain_shards)."""
    keys = [{"delivery_id": {"S": delivery_id}, "part": {"S": SUMMARY}} for delivery_id in sorted(set(delivery_ids))]
    items = batch_get(aws.client("dynamodb", config), deliveries_table, keys, consistent=False,
                      projection="delivery_id, recipients")
    return {str(item["delivery_id"]): int(item["recipients"]) for item in items
            if isinstance(item.get("recipients"), int) and item["recipients"] > 0}


OUTCOME_ATTRIBUTES = ("last_run_at", "last_run_status", "last_success_at", "lag_seconds", "last_error",
                      "backlog_objects", "backlog_exact", "oldest_waiting_at")
# Where the listing stands: the head's cursor (StartAfter for new objects), the sweep's (behind it; '' =
# start the lookback window over) and the cursor's hour partition (for people).
POSITION_ATTRIBUTES = ("cursor", "sweep_cursor", "checkpoint")


def _record_position(position: Mapping[str, str] | None, sets: list[str], values: dict[str, Any],
                     names: dict[str, str]) -> None:
    """Add the listing position to a state update (only the attributes given)."""
    for name, value in (position or {}).items():
        if name not in POSITION_ATTRIBUTES:
            raise ValueError(f"not a position attribute: {name}")
        names[f"#p_{name}"] = name
        values[f":p_{name}"] = value
        sets.append(f"#p_{name} = :p_{name}")


def _record_outcome(outcome: Mapping[str, Any] | None, sets: list[str], removes: list[str],
                    values: dict[str, Any], names: dict[str, str]) -> None:
    """Add a run's outcome to a state update: its attributes set, and a stale last_error removed."""
    if outcome is None:
        return
    unknown = set(outcome) - set(OUTCOME_ATTRIBUTES)
    if unknown:
        raise ValueError(f"not outcome attributes: {sorted(unknown)}")
    for name, value in outcome.items():
        names[f"#o_{name}"] = name
        values[f":o_{name}"] = value
        sets.append(f"#o_{name} = :o_{name}")
    if "last_error" not in outcome:
        names["#o_last_error"] = "last_error"
        removes.append("#o_last_error")


class WorkflowStateStore:
    """The workflow's state item (checkpoint, lease, pending run) and processed-object markers."""

    def __init__(self, table: str, config: Any = aws.DEFAULT) -> None:
        self.table = table
        self._config = config

    @property
    def _dynamodb(self) -> Any:
        return aws.client("dynamodb", self._config)

    def _update_state(self, expression: str, condition: str, values: Mapping[str, Any],
                      names: Mapping[str, str] | None = None, return_state: bool = False) -> dict[str, Any] | None:
        request: dict[str, Any] = {
            "TableName": self.table, "Key": STATE_KEY, "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": {name: to_value(value) for name, value in values.items()},
        }
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        if return_state:
            request["ReturnValues"] = "ALL_NEW"
        try:
            response = self._dynamodb.update_item(**request)
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            return None
        return from_item(response.get("Attributes")) or {}

    def get_state(self) -> dict[str, Any]:
        response = self._dynamodb.get_item(TableName=self.table, Key=STATE_KEY, ConsistentRead=True)
        return from_item(response.get("Item")) or {}

    def acquire(self, owner: str, now_ms: int, lease_ms: int) -> dict[str, Any] | None:
        """Take the lease (a conditional write with an expiry): the state, or None if another run holds it."""
        return self._update_state(
            "SET lease_owner = :me, lease_until = :until",
            "attribute_not_exists(lease_until) OR lease_until < :now",
            {":me": owner, ":until": now_ms + lease_ms, ":now": now_ms}, return_state=True)

    def register_run(self, owner: str, run: int, record_key: str) -> bool:
        """Make `run` (its record already in S3) the pending run: from here on it is completed, not recomputed."""
        return self._update_state(
            "SET pending_run = :run, pending_record = :record, run_seq = :run",
            "lease_owner = :me AND attribute_not_exists(pending_run) AND "
            "(attribute_not_exists(run_seq) OR run_seq = :previous)",
            {":me": owner, ":run": run, ":record": record_key, ":previous": run - 1}) is not None

    def finish_run(self, owner: str, run: int, position: Mapping[str, str] | None, statistics: Mapping[str, Any],
                   now_ms: int, release: bool, outcome: Mapping[str, Any] | None = None) -> bool:
        """The pending run is fully applied: advance the listing position (last), and release the lease if asked.

        `outcome` (attributes such as last_run_at, last_success_at) is recorded in the same write.
        """
        values: dict[str, Any] = {":me": owner, ":run": run, ":now": now_ms, ":stats": dict(statistics)}
        sets = ["last_completed_run = :run", "last_completed_at = :now", "last_statistics = :stats"]
        removes = ["pending_run", "pending_record"] + (["lease_owner", "lease_until"] if release else [])
        names: dict[str, str] = {}
        _record_position(position, sets, values, names)
        _record_outcome(outcome, sets, removes, values, names)
        return self._update_state(f"SET {', '.join(sets)} REMOVE {', '.join(removes)}",
                                  "lease_owner = :me AND pending_run = :run", values, names=names or None) is not None

    def release(self, owner: str, position: Mapping[str, str] | None = None,
                outcome: Mapping[str, Any] | None = None) -> bool:
        """Give the lease up (with the new listing position and the run's outcome, when given)."""
        values: dict[str, Any] = {":me": owner}
        sets: list[str] = []
        removes = ["lease_owner", "lease_until"]
        names: dict[str, str] = {}
        _record_position(position, sets, values, names)
        _record_outcome(outcome, sets, removes, values, names)
        expression = (f"SET {', '.join(sets)} " if sets else "") + f"REMOVE {', '.join(removes)}"
        return self._update_state(expression, "lease_owner = :me", values, names=names or None) is not None

    def processed_objects(self, hour: str, first: str, last: str) -> set[str]:
        """Keys from `first` to `last` of one hour partition's log objects already processed (a Query).

        A range, so a run reads the markers of the page it listed, however
        many objects the hour holds.
        """
        return {item["sk"] for item in query_all(
            self._dynamodb, TableName=self.table, KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
            ExpressionAttributeValues={":pk": {"S": f"objects#{hour}"}, ":first": {"S": first}, ":last": {"S": last}},
            ProjectionExpression="sk", ConsistentRead=True)}

    def newest_processed_object(self, hour: str) -> str | None:
        """The last key (in key order) of an hour partition's processed objects, or None (a Query, one item)."""
        page = self._dynamodb.query(
            TableName=self.table, KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"objects#{hour}"}}, ProjectionExpression="sk",
            ScanIndexForward=False, Limit=1, ConsistentRead=True)
        return page["Items"][0]["sk"]["S"] if page.get("Items") else None

    def mark_processed(self, objects: Iterable[tuple[str, str]], run: int, expires_at_epoch: int) -> int:
        """Remember (hour, key) objects as processed by `run` (idempotent puts, 25 a request)."""
        return batch_write(self._dynamodb, self.table, (
            {"pk": f"objects#{hour}", "sk": key, "run": run, "expires_at_epoch": expires_at_epoch}
            for hour, key in objects))
