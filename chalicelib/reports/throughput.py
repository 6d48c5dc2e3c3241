"""Delivery throughput across deliveries: messages per hour and bits per second.

The send workers count what SES accepted per hour (data/throughput.py) in
the transaction that records it; a time range is read with one Query per
counter shard, whatever the volume. (One delivery's own figure is in the
delivery monitor: chalicelib/mta/monitoring.py.)
"""

from __future__ import annotations

from chalicelib.data import throughput as counters
from chalicelib.errors import InvalidField
from chalicelib.reports.models import Throughput, ThroughputBucket, ThroughputRow
from chalicelib.settings import Settings, get_settings

BUCKET_MS: dict[str, int] = {"1h": 3_600_000, "1d": 86_400_000}
MAX_RANGE_MS = 92 * 86_400_000  # a quarter: at most 2,208 hourly items per shard


def throughput(from_ms: int, to_ms: int, bucket: ThroughputBucket = "1h",
               settings: Settings | None = None) -> Throughput:
    """Messages and bits per second per hour (or day) from `from_ms` to `to_ms` (inclusive, whole buckets)."""
    if bucket not in BUCKET_MS:
        raise InvalidField("bucket", f"bucket must be one of {', '.join(BUCKET_MS)}")
    if not 0 <= from_ms <= to_ms:
        raise InvalidField("from", "from must be a time (ms since the epoch) no later than to")
    if to_ms - from_ms > MAX_RANGE_MS:
        raise InvalidField("to", f"at most {MAX_RANGE_MS // 86_400_000} days at once")
    size = BUCKET_MS[bucket]
    first, last = from_ms - from_ms % size, to_ms - to_ms % size
    settings = settings or get_settings()
    totals: dict[int, list[int]] = {}
    for hour, messages, size_bytes in counters.hours(settings.tracking_stats_table, first, last + size - 1):
        entry = totals.setdefault(hour - hour % size, [0, 0])
        entry[0] += messages
        entry[1] += size_bytes
    rows = [ThroughputRow(start=start, messages=messages, bytes=size_bytes,
                          messages_per_hour=round(messages * 3_600_000 / size, 1),
                          bits_per_second=round(size_bytes * 8 * 1000 / size, 2))
            for start, (messages, size_bytes) in sorted(totals.items()) if messages or size_bytes]
    return Throughput(start=first, end=last + size - 1, bucket=bucket, rows=rows,
                      messages=sum(row.messages for row in rows), bytes=sum(row.bytes for row in rows),
                      peak_messages_per_hour=max((row.messages_per_hour for row in rows), default=0.0))
