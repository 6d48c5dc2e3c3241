"""DynamoDB writes of a run grow with the distinct keys it touches, not with the number of hits."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.tracking_harness import FakeClock, pin_layout, reset_workflow_tables, tap, workflow
from tests.tracking_load import T0, create_recipients, load_records, put_load


@pytest.fixture(autouse=True)
def _items_layout(request: pytest.FixtureRequest) -> None:
    """These tests read the items layout's tables (the append layout's: test_tracking_append_layout.py)."""
    pin_layout(request, "items")


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


def test_a_run_that_adds_hits_to_stored_recipients_writes_no_recipient_index_entry(resources: Any) -> None:
    """The by-recipient index is keyed by the first hit and projects keys: written when a recipient's item is
    created, not each time a run adds hits to it (it used to be moved at the item's size on every rewrite)."""
    from bench.aws_meter import metered
    from chalicelib.data.tracking import BY_RECIPIENT_INDEX, TrackingStore
    from chalicelib.settings import get_settings

    recipients = 40
    create_recipients(DELIVERY, recipients)
    records = sorted(load_records(DELIVERY, recipients, 6), key=lambda record: record["ts"])
    middle = len(records) // 2
    index_units = f"{get_settings().tracking_table}:index {BY_RECIPIENT_INDEX}"
    with metered() as meter:
        put_load(records[:middle], objects=2, prefix="earlier")
        first = workflow(FakeClock(NOW), max_objects=1000).run()
        created = meter.write_units_by_kind[index_units]
        meter.reset()
        put_load(records[middle:], objects=2, prefix="later")
        second = workflow(FakeClock(NOW + 120), max_objects=1000).run()
    new_recipients = {record["log_id"] for record in records[middle:]} - {record["log_id"] for record in records[:middle]}
    assert first["recipients_updated"] + len(new_recipients) == recipients
    assert second["recipients_updated"] > len(new_recipients)  # most recipients are rewritten...
    assert created == first["recipients_updated"]  # ...one small entry each when created...
    assert meter.write_units_by_kind[index_units] == len(new_recipients)  # ...and none when rewritten
    # The index still finds every recipient's item, with all its hits.
    tracking = TrackingStore(get_settings().tracking_table, "")
    for log_id in (1, recipients):
        [item] = tracking.recipient_items(f"load-{log_id}")
        assert item["hit_count"] == 6
