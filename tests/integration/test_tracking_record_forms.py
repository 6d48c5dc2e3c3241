"""A run record's item writes across an upgrade of their form.

This version's run records carry recipient items and log pages in DynamoDB's
form (data/item_json.py, `items_encoding`); the versions before wrote them as
plain values. A run the previous version wrote, registered and partly applied
before an upgrade is completed by the new version from its record as it is,
giving the very tables an uninterrupted run gives; and a record of this
version reads back from S3 as the one the run applied.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.data import item_json
from chalicelib.data.dynamo import from_item, to_item
from chalicelib.settings import get_settings
from tests.integration.test_tracking_counters import _later_logs, _record_name
from tests.integration.test_tracking_workflow import NOW, known_truth_logs, make_delivery
from tests.tracking_harness import FakeClock, SimulatedCrash, pin_layout, reset_workflow_tables, snapshot, tap, workflow


@pytest.fixture(autouse=True)
def _items_layout(request: pytest.FixtureRequest) -> None:
    """These tests read the items layout's tables (the append layout's: test_tracking_append_layout.py)."""
    pin_layout(request, "items")


def _clean_then_pending(api: Any, mta: Any, clock: FakeClock) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the tables an uninterrupted run gives, the record of the same run stopped once its record is written
    and registered: acquire, run record, register)."""
    delivery_id = make_delivery(api, mta)
    known_truth_logs(delivery_id)
    _later_logs(delivery_id)
    workflow(FakeClock(NOW), write_concurrency=1).run()
    clean = snapshot()
    reset_workflow_tables()
    with tap(crash_after_writes=3), pytest.raises(SimulatedCrash):
        workflow(clock, write_concurrency=1).run()
    run = workflow(clock)
    return clean, run.logs.get_run_record(run.state.get_state()["pending_record"])


def test_a_pending_record_of_the_previous_form_is_completed_as_written(api: Any, mta: Any) -> None:
    clock = FakeClock(NOW)
    clean, pending = _clean_then_pending(api, mta, clock)
    assert pending["items_encoding"] == item_json.ENCODING
    old = workflow(clock)
    for name in ("recipients", "log_pages"):  # the previous version's form: plain values
        pending[name] = [from_item(item) for item in pending[name]]
    del pending["items_encoding"]
    assert all(isinstance(item["log_id"], int) for item in pending["recipients"]) and pending["log_pages"]
    key = old.state.get_state()["pending_record"]
    assert old.logs.put_run_record(_record_name(key), pending) == key
    assert old.tracking.put_recipient(pending["recipients"][0], 1)  # what it applied before the upgrade stopped it
    clock.advance(get_settings().workflow_lease_seconds + 1)

    resumed = workflow(clock, write_concurrency=1).run()
    assert (resumed["resumed_run"], resumed["status"]) == (1, "idle")
    assert snapshot() == clean


def test_encoded_items_split_into_the_items_they_hold() -> None:
    items = [{"delivery_id": "d", "log_id": index, "hits": ["a\tb"] * index, "ua": "Ünïcödé"} for index in range(4)]
    encoded = item_json.EncodedItems.encode(items)
    assert [json.loads(text) for text in encoded.texts()] == encoded.items() == [to_item(item) for item in items]
    assert encoded.values() == items and len(encoded) == 4
    assert item_json.EncodedItems.encode([]).texts() == [] and item_json.dumps({"a": encoded}) == (
        b'{"a":' + json.dumps([to_item(item) for item in items], separators=(",", ":")).encode() + b"}")


def test_a_record_reads_back_as_the_run_applied_it(api: Any, mta: Any) -> None:
    clock = FakeClock(NOW)
    clean, pending = _clean_then_pending(api, mta, clock)
    recipients = pending["recipients"]
    assert recipients and all(set(item["log_id"]) == {"N"} for item in recipients)  # DynamoDB's form, as written
    clock.advance(get_settings().workflow_lease_seconds + 1)
    assert workflow(clock, write_concurrency=1).run()["resumed_run"] == 1
    assert snapshot() == clean
