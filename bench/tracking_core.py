"""The pure tracking core's throughput: parse + verify + aggregate, plain and gzip.

    .venv/bin/python -m bench.tracking_core

The native (Rust) twin is measured against these figures.
"""

from __future__ import annotations

import gzip
import time

from chalicelib.tracking import core
from tests.tracking_load import load_records
from tests.tracking_logs import KEYS, log_bytes

DELIVERY = "0a0b0c0d0e0f1011"


def _best_of(runs: int, function) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    records = load_records(DELIVERY, recipients=1000, hits_per_recipient=10)
    plain = log_bytes(records)
    zipped = gzip.compress(plain)
    print(f"tracking core: {len(records):,} lines, {len(plain) / 1e6:.1f} MB plain, {len(zipped) / 1e6:.2f} MB gzip")
    for name, data in (("plain", plain), ("gzip", zipped)):
        seconds = _best_of(3, lambda data=data: core.parse_log(data, KEYS))
        print(f"  parse_log ({name}):  {seconds * 1000:7.1f} ms  {len(records) / seconds:,.0f} lines/s")
    hits = core.parse_log(plain, KEYS).hits
    seconds = _best_of(3, lambda: core.aggregate(hits, {}))
    print(f"  aggregate:          {seconds * 1000:7.1f} ms  {len(hits) / seconds:,.0f} hits/s")


if __name__ == "__main__":
    main()
