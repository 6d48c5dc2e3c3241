"""moto's Kinesis shards, made safe for the local stack's threads.

moto's Shard.put_record reads the shard's last sequence number and then
inserts after it ("not safe for concurrency", says moto), and get_records
iterates the shard's records: the local stack's threaded server runs the
hit endpoints' puts and the Firehose pump's reads at once, so under the
demo's traffic two puts can take the same sequence number (one hit
overwrites another) and a read fails with "OrderedDict mutated during
iteration". Kinesis itself orders and keeps every put. This patch holds one
lock per shard around moto's own put_record and get_records (nothing else
changes). Lambda code never imports this; the local stack and the tests
install it with moto.

And without moto's scans: its put_record finds the last sequence number by
listing every key of the shard, and get_records walks the shard from its
first record to the iterator's position, so each call costs the shard's
length and 100,000 hits cost 100,000^2 / 2 steps (a profile of `make fuzz`:
the largest single cost). Sequence numbers in a moto shard are consecutive
(put_record adds one), so the first and last are the dict's ends and a
read starts at its position directly; a shard whose numbers are not
consecutive is read by moto's own get_records.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable

_installed: dict[str, Callable[..., Any]] = {}
_locks_guard = threading.Lock()


def _lock(shard: Any) -> threading.Lock:
    lock = shard.__dict__.get("_sendtrail_lock")
    if lock is None:
        with _locks_guard:
            lock = shard.__dict__.setdefault("_sendtrail_lock", threading.Lock())
    return lock


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(shard: Any, *args: Any, **kwargs: Any) -> Any:
        with _lock(shard):
            return method(shard, *args, **kwargs)

    return wrapper


def _first_sequence_number(shard: Any) -> int:
    return next(iter(shard.records)) if shard.records else 0


def _last_sequence_number(shard: Any) -> int:
    return next(reversed(shard.records)) if shard.records else 0


def _get_records(shard: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
    """moto's Shard.get_records (the records after `last_sequence_id`, the last one's number, milliseconds behind
    the latest), read from the position instead of from the shard's first record."""
    records, position = shard.records, int(last_sequence_id)
    first, last = _first_sequence_number(shard), _last_sequence_number(shard)
    if records and last - first + 1 != len(records):
        return _installed["moto_get_records"](shard, last_sequence_id, limit)
    results: list[Any] = []
    seconds_behind = 0.0
    number = max(position + 1, first)
    while records and number <= last and (limit is None or len(results) < limit):
        record = records[number]
        results.append(record)
        position = number
        seconds_behind = records[last].created_at - record.created_at
        number += 1
    return results, position, int(seconds_behind * 1000)


def install() -> None:
    """Idempotent."""
    from moto.kinesis.models import Shard

    if "moto_get_records" not in _installed:
        _installed["moto_get_records"] = Shard.get_records
        Shard.get_records = _get_records  # type: ignore[assignment]
        Shard.get_min_sequence_number = _first_sequence_number  # type: ignore[assignment]
        Shard.get_max_sequence_number = _last_sequence_number  # type: ignore[assignment]
    for name in ("put_record", "get_records"):
        if name not in _installed:
            _installed[name] = getattr(Shard, name)
            setattr(Shard, name, _locked(_installed[name]))
