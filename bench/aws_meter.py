"""What a moto-backed run would be billed: DynamoDB units, S3 requests, and the CPU the caller spent.

botocore event hooks (added to every client created inside `metered()`, the
way tests/tracking_harness.py taps calls) see each request and its response;
for every DynamoDB item a request reads or writes, the item as it is stored
is read from moto's backend before and after the call, and priced with
DynamoDB's rules (bench/cost_model.py): the code under test runs unchanged.

The CPU time moto itself spends answering (its request handler) and the
meter's own bookkeeping are timed per thread and left out, so `client_cpu_s`
is the caller's work: its compute and botocore's client side (serialising,
signing, parsing), what a Lambda function would spend; network waits are
not in it.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from botocore import handlers as botocore_handlers

from bench.cost_model import Index, index_write_units, item_size, read_units, table_write_units
from chalicelib.data.counters import HOUR_PREFIX, TALLY

S3_PUT_CLASS = {"PutObject", "CopyObject", "PostObject", "ListObjects", "ListObjectsV2", "CreateBucket",
                "CreateMultipartUpload",
                "UploadPart", "CompleteMultipartUpload", "DeleteObjects"}  # billed at the PUT/LIST price
S3_FREE = {"DeleteObject", "AbortMultipartUpload"}  # DELETE requests are free
DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


@dataclass
class AwsMeter:
    requests: Counter = field(default_factory=Counter)  # (service, operation) -> calls
    write_units: Counter = field(default_factory=Counter)  # table -> write request units
    write_units_by_kind: Counter = field(default_factory=Counter)  # "table:kind" -> write units (item_kind)
    read_units: Counter = field(default_factory=Counter)  # table -> read request units
    excluded_cpu_s: float = 0.0  # moto's handler and the meter's own hooks, every thread
    backend: Any = None  # moto's DynamoDB backend (the account and region the clients use)
    _index_cache: dict[str, list[Index]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- summaries ---------------------------------------------------------------

    def s3_requests(self) -> dict[str, int]:
        """S3 requests by price class: put (PUT, COPY, POST, LIST) and get (GET and the rest)."""
        put = get = 0
        for (service, operation), count in self.requests.items():
            if service != "s3" or operation in S3_FREE:
                continue
            if operation in S3_PUT_CLASS:
                put += count
            else:
                get += count
        return {"put": put, "get": get}

    def total_write_units(self) -> int:
        return sum(self.write_units.values())

    def total_read_units(self) -> float:
        return sum(self.read_units.values())

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.write_units.clear()
            self.write_units_by_kind.clear()
            self.read_units.clear()
            self.excluded_cpu_s = 0.0

    # --- moto's stored items ----------------------------------------------------------

    def _backend(self) -> Any:
        if self.backend is None:
            import boto3
            from moto.core import DEFAULT_ACCOUNT_ID
            from moto.dynamodb.models import dynamodb_backends

            self.backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][boto3.session.Session().region_name or "us-east-1"]
        return self.backend

    def _key_names(self, table: str) -> tuple[str, ...]:
        found = self._backend().get_table(table)
        return (found.hash_key_attr,) + ((found.range_key_attr,) if found.range_key_attr else ())

    def _indexes(self, table: str) -> list[Index]:
        if table not in self._index_cache:
            keys = self._key_names(table)
            self._index_cache[table] = [
                Index(index.name, tuple(index.schema_key_attrs), index.projection.get("ProjectionType", "ALL"),
                      tuple(index.projection.get("NonKeyAttributes", ())), keys)
                for index in self._backend().get_table(table).global_indexes]
        return self._index_cache[table]

    def _stored(self, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        names = self._key_names(table)
        item = self._backend().get_item(table, {name: key[name] for name in names})
        return item.to_json()["Attributes"] if item is not None else None

    def _write_targets(self, operation: str, params: Mapping[str, Any]) -> list[tuple[str, dict[str, Any], bool]]:
        """(table, key, transactional) of every item a write request writes."""
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            table = params["TableName"]
            source = params.get("Key") or params["Item"]
            return [(table, {name: source[name] for name in self._key_names(table)}, False)]
        targets = []
        if operation == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    source = request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"]
                    targets.append((table, {name: source[name] for name in self._key_names(table)}, False))
        elif operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                (_, action), = entry.items()
                table = action["TableName"]
                source = action.get("Key") or action["Item"]
                targets.append((table, {name: source[name] for name in self._key_names(table)}, True))
        return targets

    # --- hooks ----------------------------------------------------------------------------

    def _before(self, params: Mapping[str, Any], model: Any, context: dict[str, Any], event_name: str,
                **_: Any) -> None:
        started = time.thread_time()
        if event_name.split(".")[1] == "dynamodb" and model.name in DYNAMODB_WRITES:
            targets = self._write_targets(model.name, params)
            context["metered_writes"] = [(table, key, transactional, self._stored(table, key))
                                         for table, key, transactional in targets]
        context["metered_params"] = params
        self._exclude(started)

    def _after(self, parsed: Mapping[str, Any], model: Any, context: dict[str, Any], event_name: str,
               **_: Any) -> None:
        started = time.thread_time()
        service = event_name.split(".")[1]
        writes: Counter = Counter()
        kinds: Counter = Counter()
        reads: Counter = Counter()
        if service == "dynamodb":
            params = context.get("metered_params", {})
            for table, key, transactional, before in context.get("metered_writes", ()):
                after = self._stored(table, key)
                on_item = table_write_units(before, after, (), transactional)
                on_indexes = {index.name: index_write_units(before, after, index) for index in self._indexes(table)}
                writes[table] += on_item + sum(on_indexes.values())
                kinds[f"{table}:{item_kind(key)}"] += on_item
                for name, index_units in on_indexes.items():
                    if index_units:
                        kinds[f"{table}:index {name}"] += index_units
            self._count_reads(model.name, params, parsed, reads)
        with self._lock:
            self.requests[(service, model.name)] += 1
            self.write_units.update(writes)
            self.write_units_by_kind.update(kinds)
            self.read_units.update(reads)
        self._exclude(started)

    def _count_reads(self, operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any],
                     reads: Counter) -> None:
        if "Error" in parsed:
            return
        if operation == "GetItem":
            table = params["TableName"]
            reads[table] += read_units(item_size(self._stored(table, params["Key"])),
                                       bool(params.get("ConsistentRead")))
        elif operation == "BatchGetItem":
            unprocessed = parsed.get("UnprocessedKeys", {})
            for table, request in params["RequestItems"].items():
                skipped = unprocessed.get(table, {}).get("Keys", [])
                for key in request["Keys"]:
                    if key not in skipped:
                        reads[table] += read_units(item_size(self._stored(table, key)),
                                                   bool(request.get("ConsistentRead")))
        elif operation == "TransactGetItems":
            for entry in params["TransactItems"]:
                table, key = entry["Get"]["TableName"], entry["Get"]["Key"]
                reads[table] += read_units(item_size(self._stored(table, key)), transactional=True)
        elif operation in ("Query", "Scan"):
            table = params["TableName"]
            index = next((found for found in self._indexes(table) if found.name == params.get("IndexName")), None)
            size = 0
            for item in parsed.get("Items", ()):
                stored = self._stored(table, {**_key_condition_values(params), **item})
                size += item_size(index.entry(stored) if index else stored)
            reads[table] += read_units(size, bool(params.get("ConsistentRead")))

    def _exclude(self, started: float) -> None:
        spent = time.thread_time() - started
        with self._lock:
            self.excluded_cpu_s += spent

    def _timed_moto(self, handler: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return handler(*args, **kwargs)
            finally:
                self._exclude(started)

        return timed


# The grouped counter items (chalicelib/data/counters.py), most specific first: (name prefix, kind).
GROUPED_KINDS = ((HOUR_PREFIX, "bucket-hour"), (f"{TALLY}#u", "tally-urls"), (f"{TALLY}#a", "tally-ua"),
                 (f"{TALLY}#d", "tally-domains"), (TALLY, "tally"))


def item_kind(key: Mapping[str, Any]) -> str:
    """What kind of item a key names, for the breakdown of write units: a grouped counter item's kind
    (GROUPED_KINDS), else a stats item's or workflow item's name up to its first '#' (indicators, url, bucket,
    ua, domain, log, objects, state), "item" otherwise."""
    for name in ("stat", "pk"):
        if name in key:
            (value,) = key[name].values()
            grouped = next((kind for prefix, kind in GROUPED_KINDS if str(value).startswith(prefix)), None)
            return grouped if name == "stat" and grouped else str(value).split("#", 1)[0]
    return "item"


def _key_condition_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """`name = :value` terms of a Query's key condition, resolved: the partition key a projection left out."""
    names = params.get("ExpressionAttributeNames", {})
    values = params.get("ExpressionAttributeValues", {})
    found = {}
    for term in re.split(r"\s+AND\s+", params.get("KeyConditionExpression", ""), flags=re.IGNORECASE):
        match = re.fullmatch(r"\s*([#\w]+)\s*=\s*(:\w+)\s*", term)
        if match and match.group(2) in values:
            found[names.get(match.group(1), match.group(1))] = values[match.group(2)]
    return found


@contextmanager
def metered() -> Iterator[AwsMeter]:
    """Meter every AWS call of the clients created inside the block (sendtrail's shared clients are reset)."""
    from moto.core.models import botocore_stubber

    from tests.tracking_harness import hooked

    meter = AwsMeter()
    moto_entry = ("before-send", botocore_stubber)
    position = botocore_handlers.BUILTIN_HANDLERS.index(moto_entry)
    botocore_handlers.BUILTIN_HANDLERS[position] = ("before-send", meter._timed_moto(botocore_stubber))
    try:
        with hooked([("before-parameter-build", meter._before), ("after-call", meter._after)]):
            yield meter
    finally:
        botocore_handlers.BUILTIN_HANDLERS[position] = moto_entry
