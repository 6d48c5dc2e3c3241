"""DynamoDB writes of a run grow with the distinct keys it touches, not with the number of hits."""

from __future__ import annotations

import math
from typing import Any

from tests.tracking_harness import FakeClock, reset_workflow_tables, tap, workflow
from tests.tracking_load import T0, create_recipients, load_records, put_load

DELIVERY = "0a0b0c0d0e0f1011"
RECIPIENTS = 1000
NOW = T0 / 1000 + 3600


def _run(objects: int) -> tuple[dict[str, Any], int]:
    with tap() as observer:
        statistics = workflow(FakeClock(NOW), max_objects=1000).run()
    return statistics, observer.dynamodb_writes()


def test_writes_for_10000_hits_over_1000_recipients_are_bounded_by_distinct_keys(resources: Any) -> None:
    create_recipients(DELIVERY, RECIPIENTS)
    put_load(load_records(DELIVERY, RECIPIENTS, 10), objects=10)
    statistics, writes = _run(10)
    assert statistics["hits_accepted"] == 10_000 and statistics["recipients_updated"] == RECIPIENTS
    # one PutItem per recipient, one UpdateItem per stats item, one PutItem per log page (a kind's hits in a
    # 5-minute window, in parts of at most 256 KB), markers 25 a request, 3 state writes
    distinct_stat_items = 1 + 3 + 6 + 4 * 5 + 1  # indicators, links, 5-minute buckets, 4 user-agent dimensions
    assert statistics["stat_items_updated"] <= distinct_stat_items  # x 5 at most, 1 recipient domain
    assert statistics["log_pages_written"] == 2 * 6  # opens and clicks in 6 windows: one part each
    bound = RECIPIENTS + statistics["stat_items_updated"] + statistics["log_pages_written"] + math.ceil(10 / 25) + 3
    assert writes <= bound
    print(f"\n10,000 hits, 1,000 recipients: {writes} DynamoDB write requests "
          f"= {writes / 10:.1f} per 1,000 hits")

    # Twice the hits on the same recipients, links, buckets and user agents: the same writes.
    reset_workflow_tables()
    put_load(load_records(DELIVERY, RECIPIENTS, 10, salt=1), objects=10, prefix="more")
    statistics_twice, writes_twice = _run(20)
    assert statistics_twice["hits_accepted"] == 20_000
    assert writes_twice <= writes + 1  # one more marker batch at most: 20 objects instead of 10
