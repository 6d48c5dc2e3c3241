"""The cost model's arithmetic: AWS's billing rules, applied to measured quantities.

Pure functions (no AWS, no measuring): bench/cost.py measures the quantities
(requests, record sizes, CPU time, the items the workflow reads and writes)
and prices them here with the one price table, bench/prices.toml. The rules,
each as its pricing or developer guide page states it:

- DynamoDB item size: attribute names and values in UTF-8 bytes, numbers
  about one byte per two significant digits plus one, binary its length,
  booleans and nulls one byte, lists and maps three bytes plus one per
  element (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html);
- write units: the item rounded up to 1 KB, the larger of the item before
  and after for PutItem/UpdateItem (an item replaced or updated bills its
  larger image), at least one unit, twice in a transaction; each global
  secondary index the write changes bills its own writes (two when an
  index key changes: the old entry deleted, the new one put), once;
- read units: each item rounded up to 4 KB (a missing item still costs one
  unit), a Query's items summed then rounded, half for an eventually
  consistent read, twice in a transaction;
- Kinesis on-demand bills each record rounded up to 1 KB, provisioned in
  PUT payload units of 25 KB; Firehose rounds each record up to 5 KB;
- Lambda bills whole milliseconds of duration at the configured memory, and
  gives CPU in proportion to memory (one vCPU at 1,769 MB).
"""

from __future__ import annotations

import base64
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

PRICES_PATH = Path(__file__).with_name("prices.toml")
GB = 1024**3
MILLION = 1_000_000


def load_prices(path: Path = PRICES_PATH) -> dict[str, Any]:
    with open(path, "rb") as handle:
        return tomllib.load(handle)


# --- DynamoDB ------------------------------------------------------------------

def number_size(text: str) -> int:
    """Bytes DynamoDB counts for a number: one per two significant digits, plus one (plus one if negative)."""
    negative = text.startswith("-")
    mantissa = text.lstrip("+-").lower().split("e", 1)[0]
    digits = mantissa.replace(".", "").lstrip("0").rstrip("0")
    return math.ceil(max(1, len(digits)) / 2) + 1 + int(negative)


def _binary_size(value: Any) -> int:
    """Raw bytes of a B value: bytes as a client passes them, base64 text as the wire and moto hold them."""
    return len(value) if isinstance(value, (bytes, bytearray)) else len(base64.b64decode(value))


def value_size(value: Mapping[str, Any]) -> int:
    """The size of one attribute value in DynamoDB's wire format ({"S": ...}, {"N": ...}, {"M": {...}}, ...)."""
    (kind, content), = value.items()
    if kind == "S":
        return len(content.encode("utf-8"))
    if kind == "N":
        return number_size(str(content))
    if kind == "B":
        return _binary_size(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(item.encode("utf-8")) for item in content)
    if kind == "NS":
        return sum(number_size(str(item)) for item in content)
    if kind == "BS":
        return sum(_binary_size(item) for item in content)
    if kind == "L":
        return 3 + sum(value_size(item) + 1 for item in content)
    if kind == "M":
        return 3 + sum(len(name.encode("utf-8")) + value_size(item) + 1 for name, item in content.items())
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]] | None) -> int:
    """An item's size as DynamoDB bills it: every attribute's name and value (0 for no item)."""
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def write_units(before: int, after: int, transactional: bool = False) -> int:
    """Write request units of one item write: the larger image rounded up to 1 KB, at least 1."""
    units = max(1, math.ceil(max(before, after) / 1024))
    return units * (2 if transactional else 1)


def read_units(size: int, consistent: bool = True, transactional: bool = False) -> float:
    """Read request units of reading `size` bytes (one item, or a Query page's items summed): 4 KB each, at
    least 1; half for an eventually consistent read, double in a transaction."""
    units = max(1, math.ceil(size / 4096))
    if transactional:
        return units * 2
    return units if consistent else units / 2


@dataclass(frozen=True)
class Index:
    """A global secondary index as billing sees it: its key attributes and what it projects."""

    name: str
    keys: tuple[str, ...]
    projection: str = "ALL"  # ALL, KEYS_ONLY or INCLUDE
    included: tuple[str, ...] = ()
    table_keys: tuple[str, ...] = ()

    def entry(self, item: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The item's entry in the index (None when it lacks an index key: a sparse index skips it)."""
        if not item or any(key not in item for key in self.keys):
            return None
        if self.projection == "ALL":
            return dict(item)
        kept = {*self.keys, *self.table_keys, *(self.included if self.projection == "INCLUDE" else ())}
        return {name: value for name, value in item.items() if name in kept}


def index_write_units(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, index: Index) -> int:
    """Write units a table write spends on one global secondary index.

    In the index after and not before: one put; before and not after: one
    delete; an index key changed: a delete and a put; only projected
    attributes changed: one write; nothing projected changed: none.
    """
    old, new = index.entry(before), index.entry(after)
    if old is None and new is None:
        return 0
    if old is None:
        return write_units(0, item_size(new))
    if new is None:
        return write_units(item_size(old), 0)
    if any(old[key] != new[key] for key in index.keys):
        return write_units(item_size(old), 0) + write_units(0, item_size(new))
    if old != new:
        return write_units(item_size(old), item_size(new))
    return 0


def table_write_units(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
                      indexes: Iterable[Index] = (), transactional: bool = False) -> int:
    """Write units of one item write on a table and its global secondary indexes."""
    base = write_units(item_size(before), item_size(after), transactional)
    return base + sum(index_write_units(before, after, index) for index in indexes)


# --- streams -------------------------------------------------------------------------

def rounded(size: int, unit: int) -> int:
    """`size` rounded up to a whole number of `unit`s (at least one unit: an empty record is billed too)."""
    return max(1, math.ceil(size / unit)) * unit


def kinesis_on_demand_usd(record_sizes: Iterable[int], prices: Mapping[str, Any]) -> dict[str, float]:
    """Ingestion and retrieval (one consumer: Firehose) of these records, each rounded up to 1 KB."""
    kinesis = prices["kinesis"]
    billed = sum(rounded(size, kinesis["on_demand_record_rounding_bytes"]) for size in record_sizes)
    return {"ingested": billed / GB * kinesis["on_demand_usd_per_gb_ingested"],
            "retrieved": billed / GB * kinesis["on_demand_usd_per_gb_retrieved"]}


def kinesis_provisioned_usd(record_sizes: Iterable[int], prices: Mapping[str, Any]) -> dict[str, float]:
    """PUT payload units (25 KB chunks, at least one per record) of these records; no per-GB fees."""
    kinesis = prices["kinesis"]
    units = sum(rounded(size, kinesis["provisioned_put_payload_unit_bytes"])
                // kinesis["provisioned_put_payload_unit_bytes"] for size in record_sizes)
    return {"put_payload_units": units / MILLION * kinesis["provisioned_usd_per_million_put_payload_units"]}


def firehose_usd(record_sizes: Iterable[int], prices: Mapping[str, Any]) -> float:
    """Firehose ingestion of these records, each rounded up to 5 KB."""
    firehose = prices["firehose"]
    billed = sum(rounded(size, firehose["record_rounding_bytes"]) for size in record_sizes)
    return billed / GB * firehose["usd_per_gb_ingested"]


# --- API and Lambda ----------------------------------------------------------------

FRONT_DOORS = ("rest", "http", "function_url")


def front_door_usd_per_request(front_door: str, prices: Mapping[str, Any], request_bytes: int = 0) -> float:
    """What the front door bills for one request: REST or HTTP API (512 KB metering), or a function URL."""
    if front_door == "rest":
        return prices["api_gateway"]["rest_usd_per_million_requests"] / MILLION
    if front_door == "http":
        api = prices["api_gateway"]
        increments = rounded(request_bytes, api["http_request_metering_bytes"]) // api["http_request_metering_bytes"]
        return increments * api["http_usd_per_million_requests"] / MILLION
    if front_door == "function_url":
        return prices["lambda_function_url"]["usd_per_million_requests"] / MILLION
    raise ValueError(f"unknown front door {front_door!r} (one of {', '.join(FRONT_DOORS)})")


def lambda_duration_ms(cpu_ms: float, memory_mb: int, prices: Mapping[str, Any]) -> float:
    """Wall time of `cpu_ms` of single-threaded CPU work at `memory_mb` (CPU share grows with memory, up to
    one full core for a single thread)."""
    share = min(1.0, memory_mb / prices["lambda"]["mb_per_vcpu"])
    return cpu_ms / share


def lambda_billed_ms(duration_ms: float, prices: Mapping[str, Any]) -> int:
    """Lambda rounds each invocation's duration up to its granularity (1 ms), at least one step."""
    step = prices["lambda"]["billed_duration_granularity_ms"]
    return max(1, math.ceil(duration_ms / step)) * step


# The lines Lambda itself writes for every invocation at system log level INFO (its default), in each log
# format (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-logformat.html): at WARN it
# writes none of them for an invocation that succeeds.
_REQUEST_ID = "8f507cfc-1c4e-4d2b-9a1e-2b3c4d5e6f70"  # a request id: a UUID, 36 characters
_PLATFORM_LINES = {
    "Text": ("START RequestId: {id} Version: $LATEST\n", "END RequestId: {id}\n",
             "REPORT RequestId: {id}\tDuration: {duration:.2f} ms\tBilled Duration: {billed} ms\t"
             "Memory Size: {memory} MB\tMax Memory Used: {memory} MB\t\n"),
    "JSON": ('{{"time":"2026-12-04T02:00:00.000Z","type":"platform.start","record":{{"requestId":"{id}",'
             '"version":"$LATEST"}}}}\n',
             '{{"time":"2026-12-04T02:00:00.000Z","type":"platform.report","record":{{"requestId":"{id}",'
             '"metrics":{{"durationMs":{duration:.3f},"billedDurationMs":{billed},"memorySizeMB":{memory},'
             '"maxMemoryUsedMB":{memory}}},"status":"success"}}}}\n'),
}


def lambda_platform_log_bytes(log_format: str, system_log_level: str, duration_ms: float, billed_ms: int,
                              memory_mb: int) -> int:
    """Bytes of CloudWatch Logs that Lambda writes itself for one successful invocation (START, END and REPORT
    in Text, platform.start and platform.report in JSON); none at system log level WARN (JSON only)."""
    if log_format == "JSON" and system_log_level == "WARN":
        return 0
    lines = _PLATFORM_LINES["JSON" if log_format == "JSON" else "Text"]
    return sum(len(line.format(id=_REQUEST_ID, duration=duration_ms, billed=billed_ms, memory=memory_mb))
               for line in lines)


def lambda_usd(invocations: float, billed_ms_each: float, memory_mb: int, architecture: str,
               prices: Mapping[str, Any]) -> dict[str, float]:
    """Requests and GB-seconds of `invocations` invocations billed `billed_ms_each` ms each."""
    function = prices["lambda"]
    gb_seconds = invocations * billed_ms_each / 1000 * memory_mb / 1024
    return {"requests": invocations * function["usd_per_million_requests"] / MILLION,
            "gb_seconds": gb_seconds * function[f"{architecture}_usd_per_gb_second"]}


def dynamodb_usd(write_units_: float, read_units_: float, prices: Mapping[str, Any]) -> dict[str, float]:
    dynamodb = prices["dynamodb"]
    return {"writes": write_units_ * dynamodb["usd_per_million_write_request_units"] / MILLION,
            "reads": read_units_ * dynamodb["usd_per_million_read_request_units"] / MILLION}


def s3_usd(put_requests: float, get_requests: float, prices: Mapping[str, Any]) -> float:
    """PUT, COPY, POST and LIST requests at the PUT price; GET and the rest at the GET price."""
    s3 = prices["s3"]
    return (put_requests * s3["usd_per_thousand_put_requests"]
            + get_requests * s3["usd_per_thousand_get_requests"]) / 1000

