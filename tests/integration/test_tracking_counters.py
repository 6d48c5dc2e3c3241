"""A delivery's counters in grouped items, across an upgrade from one item per counter.

A deployment upgraded from the per-counter layout holds url#, ua#, bucket#
and indicators items, and may hold a pending run written (and partly
applied) by the older version: that run completes in its own layout, later
runs write grouped items, and every report sums both.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from chalicelib.data import counters
from chalicelib.reports import activity, breakdown, domains, urls
from chalicelib.settings import get_settings
from chalicelib.tracking.service import TrackingReports
from tests.integration.test_tracking_workflow import NOW, T0, known_truth_logs, make_delivery
from tests.tracking_harness import FakeClock, SimulatedCrash, pin_layout, put_log, reset_workflow_tables, tap, workflow
from tests.tracking_logs import GMAIL_PROXY, record


@pytest.fixture(autouse=True)
def _items_layout(request: pytest.FixtureRequest) -> None:
    """These tests read the items layout's tables (the append layout's: test_tracking_append_layout.py)."""
    pin_layout(request, "items")


def _later_logs(delivery_id: str) -> None:
    """A fifth object, 10 minutes on: more clicks, a new window, another recipient's open."""
    at = T0 + 10 * 60_000
    put_log("later", [record(kind="click", delivery_id=delivery_id, log_id=2, url_id=5, ts=at),
                      record(kind="open", delivery_id=delivery_id, log_id=6, ts=at + 1_000, ua=GMAIL_PROXY),
                      record(kind="click", delivery_id=delivery_id, log_id=6, url_id=4, ts=at + 90_000)], at)


def _answers(delivery_id: str) -> dict[str, Any]:
    """What every reader of the counters says about the delivery."""
    tracking = TrackingReports(get_settings())
    indicators = tracking.indicators(delivery_id).model_dump()
    indicators.pop("last_updated")
    return {
        "indicators": indicators,
        "user_agents": tracking.user_agents(delivery_id).model_dump(),
        "urls": urls.urls(delivery_id).model_dump(),
        "breakdown": {by: breakdown.breakdown(delivery_id, by).model_dump() for by in breakdown.DIMENSIONS},
        "timeline": activity.timeline(delivery_id).model_dump(),
        "time_to_react": activity.time_to_react(delivery_id).model_dump(),
        "domains": domains.domains(delivery_id).model_dump(),
    }


def _stat_names(delivery_id: str) -> set[str]:
    items = boto3.client("dynamodb").query(
        TableName=get_settings().tracking_stats_table, KeyConditionExpression="delivery_id = :d",
        ExpressionAttributeValues={":d": {"S": delivery_id}})["Items"]
    return {item["stat"]["S"] for item in items}


def _record_name(key: str) -> str:
    from chalicelib.data.redirection_logs import RUN_RECORD_PREFIX

    return key[len(RUN_RECORD_PREFIX):-len(".json.gz")]


def _counted_in_two_runs(api: Any, mta: Any) -> tuple[str, dict[str, Any]]:
    """A delivery whose known-truth logs and a later object two runs counted, and what the reports say."""
    delivery_id = make_delivery(api, mta)
    known_truth_logs(delivery_id)
    _later_logs(delivery_id)
    clock = FakeClock(NOW)
    assert workflow(clock, max_objects=4).run()["objects"] == 4
    clock.advance(60)
    assert workflow(clock).run()["objects"] == 1
    return delivery_id, _answers(delivery_id)


def _pending_after_a_crash(clock: FakeClock) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Run 1 over the first four objects, stopped once registered: (workflow, state, its pending record)."""
    with tap(crash_after_writes=3), pytest.raises(SimulatedCrash):  # acquire, run record, register
        workflow(clock, max_objects=4).run()
    old = workflow(clock)
    state = old.state.get_state()
    return old, state, old.logs.get_run_record(state["pending_record"])


def _rewrite_pending(clock: FakeClock, old: Any, state: dict[str, Any], pending: dict[str, Any]) -> None:
    """Store the pending record as given (as an older version wrote it), and let its lease lapse."""
    assert old.logs.put_run_record(_record_name(state["pending_record"]), pending) == state["pending_record"]
    clock.advance(get_settings().workflow_lease_seconds + 1)


def test_an_upgrade_keeps_every_count_whatever_layout_wrote_it(api: Any, mta: Any) -> None:
    delivery_id, expected = _counted_in_two_runs(api, mta)
    grouped = _stat_names(delivery_id)
    assert counters.TALLY in grouped and not any(name.startswith(("url#", "ua#", "indicators")) for name in grouped)

    reset_workflow_tables()
    clock = FakeClock(NOW)
    with tap(crash_after_writes=3), pytest.raises(SimulatedCrash):  # acquire, run record, register
        workflow(clock, max_objects=4).run()
    _rewrite_pending_as_the_previous_version(clock, applied_before_the_upgrade=2)
    resumed = workflow(clock, max_objects=4).run()  # the upgraded version completes run 1 per counter...
    assert (resumed["resumed_run"], resumed["run"], resumed["objects"]) == (1, 2, 1)  # ...then run 2, grouped
    names = _stat_names(delivery_id)
    assert {"indicators", counters.TALLY} <= names and any(name.startswith("url#") for name in names)
    assert any(name.startswith("ua#") for name in names) and any(name.startswith("bucket#0") for name in names)
    assert _answers(delivery_id) == expected


def _rewrite_pending_as_the_previous_version(clock: FakeClock, applied_before_the_upgrade: int) -> None:
    old = workflow(clock)
    state = old.state.get_state()
    pending = old.logs.get_run_record(state["pending_record"])
    del pending["counter_layout"]  # the previous version's record: no layout, applied one item per counter
    assert old.logs.put_run_record(_record_name(state["pending_record"]), pending) == state["pending_record"]
    expires = int(pending["created_at"]) // 1000 + 86_400
    for stat in pending["stats"][:applied_before_the_upgrade]:  # what it wrote before the upgrade stopped it
        assert old.tracking.apply_stat(stat["delivery_id"], stat["stat"], stat["add"], 1, pending["created_at"],
                                       expires)
    clock.advance(get_settings().workflow_lease_seconds + 1)


def test_domain_counters_read_the_same_from_shards_and_from_a_record_without_audiences(api: Any, mta: Any) -> None:
    """The workflow's counters of a delivery's other domains go to tally#d<n> shards (by its audience, which
    the run record holds); a pending record of the version before (no audiences) completes with them in the
    domain# items, next to the MTA's counters; the reports read the same either way."""
    delivery_id, expected = _counted_in_two_runs(api, mta)
    assert expected["domains"]["rows"] and "tally#d0" in _stat_names(delivery_id)  # 6 recipients: one shard
    domain_item = _stats_item(delivery_id, "domain#example.net")
    assert domain_item["sent"] and "opens" not in domain_item  # the MTA's counters only

    reset_workflow_tables()
    clock = FakeClock(NOW)
    old, state, pending = _pending_after_a_crash(clock)
    assert pending["audiences"] == {delivery_id: 6}
    del pending["audiences"]  # as the version before the shards wrote it
    _rewrite_pending(clock, old, state, pending)
    resumed = workflow(clock, max_objects=4).run()
    assert (resumed["resumed_run"], resumed["run"]) == (1, 2)
    assert _stats_item(delivery_id, "domain#example.net").get("opens")  # run 1's, in the domain# item
    assert _answers(delivery_id) == expected


def _stats_item(delivery_id: str, stat: str) -> dict[str, Any]:
    from chalicelib.data.dynamo import from_item

    item = boto3.client("dynamodb").get_item(TableName=get_settings().tracking_stats_table,
                                             Key={"delivery_id": {"S": delivery_id}, "stat": {"S": stat}})["Item"]
    return from_item(item) or {}


def test_a_pending_record_of_the_unpacked_layout_completes_as_it_was_written(api: Any, mta: Any) -> None:
    """A run record of the layout before packed counters (grouped-1), partly applied when the upgrade came,
    completes with each counter in its own attribute (the same items, so no item takes a run twice), and
    every report reads the same as if the new version had written it all."""
    delivery_id = make_delivery(api, mta)
    known_truth_logs(delivery_id)
    clock = FakeClock(NOW)
    assert workflow(clock, max_objects=4).run()["objects"] == 4
    expected = _answers(delivery_id)

    reset_workflow_tables()
    clock = FakeClock(NOW)
    old, state, pending = _pending_after_a_crash(clock)
    assert pending["counter_layout"] == counters.LAYOUT
    pending["counter_layout"] = counters.UNPACKED_LAYOUT
    _rewrite_pending(clock, old, state, pending)
    assert workflow(clock, max_objects=4).run()["resumed_run"] == 1
    tally = _stats_item(delivery_id, counters.TALLY)
    assert any(name.startswith("a") and name.endswith(".o") for name in tally)
    assert not any(name.endswith(counters.PACKED_CODES) for name in tally)
    assert _answers(delivery_id) == expected
