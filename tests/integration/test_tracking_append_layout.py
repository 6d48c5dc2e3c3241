"""The append layout's write path (TrackingLayout=append, docs/design/append-only-tracking.md) on moto.

The same logs, run the same way, must give in run items what the items
layout gives in recipient items and counter items: the same hits with the
same verdicts, and counter deltas that sum to the same counters. The
crash tests of test_tracking_workflow.py run for both layouts.
"""

from __future__ import annotations

import gzip
from collections import defaultdict
from typing import Any

import boto3
import pytest

from bench.inputs import KEYRING_JSON, generate_lines
from chalicelib.data.redirection_logs import LOG_PREFIX, RUN_RECORD_PREFIX, hour_partition
from chalicelib.data.run_items import RECIPIENTS_PER_SHARD, shard_key
from chalicelib.settings import get_settings
from chalicelib.tracking import run_items
from chalicelib.tracking.items import decode_hits, decode_verdicts
from tests.integration.test_tracking_workflow import EXPECTED_INDICATORS, NOW, T0, known_truth_logs, make_delivery
from tests.tracking_harness import FakeClock, pin_layout, reset_workflow_tables, scan_all, use_layout, workflow


@pytest.fixture(autouse=True)
def _items_layout_first(request: pytest.FixtureRequest) -> None:
    """The comparisons run the items layout first, whichever is the default; each test switches to append."""
    pin_layout(request, "items")


def _run_items() -> list[dict[str, Any]]:
    return sorted(scan_all(get_settings().tracking_runs_table), key=lambda item: (item["shard"], item["seq"]))


def _appended() -> tuple[dict[str, tuple[Any, int]], dict[tuple[str, str, str], int]]:
    """(hit id -> (hit, verdict)), (delivery, stat, field) -> summed delta) of every run item, in run order."""
    hits: dict[str, tuple[Any, int]] = {}
    sums: dict[tuple[str, str, str], int] = defaultdict(int)
    for item in sorted(_run_items(), key=lambda item: item["seq"]):
        decoded = run_items.decode(item["delivery_id"], bytes(item["body"]))
        hits.update((hit.hit_id, (hit, verdict)) for hit, verdict in decoded.hits)
        for hit_id, verdict in decoded.corrections:
            hits[hit_id] = (hits[hit_id][0], verdict)  # a correction is of a hit an earlier run stored
        for stat, name, delta in decoded.counters:
            sums[(item["delivery_id"], stat, name)] += delta
    return hits, {key: value for key, value in sums.items() if value}


def _itemised() -> tuple[dict[str, tuple[Any, int]], dict[tuple[str, str, str], int]]:
    """The same from the items layout: its recipient items, and the counter deltas of its run records."""
    settings = get_settings()
    hits: dict[str, tuple[Any, int]] = {}
    for item in scan_all(settings.tracking_table):
        verdicts = decode_verdicts(item)
        hits.update((hit.hit_id, (hit, verdicts[hit.hit_id])) for hit in decode_hits(item))
    sums: dict[tuple[str, str, str], int] = defaultdict(int)
    s3 = boto3.client("s3")
    for entry in s3.list_objects_v2(Bucket=settings.redirection_log_bucket, Prefix=RUN_RECORD_PREFIX)["Contents"]:
        record = get_record(entry["Key"])
        for stat in record["stats"]:
            for name, delta in stat["add"].items():
                sums[(stat["delivery_id"], stat["stat"], name)] += delta
    return hits, {key: value for key, value in sums.items() if value}


def get_record(key: str) -> dict[str, Any]:
    from chalicelib.data.redirection_logs import RedirectionLogStore

    return RedirectionLogStore(get_settings().redirection_log_bucket).get_run_record(key)


def test_a_log_with_known_truth_gives_run_items_that_count_what_the_items_layout_counts(api: Any, mta: Any) -> None:
    delivery_id = make_delivery(api, mta)
    records = known_truth_logs(delivery_id)
    items_statistics = workflow(FakeClock(NOW)).run()
    expected = _itemised()
    reset_workflow_tables()
    use_layout("append")
    statistics = workflow(FakeClock(NOW)).run()

    assert {name: statistics[name] for name in ("hits_accepted", "duplicates", "rejected", "recipients_updated")} == {
        name: items_statistics[name] for name in ("hits_accepted", "duplicates", "rejected", "recipients_updated")}
    assert statistics["log_pages_written"] == 0 and statistics["stat_items_updated"] == 0
    assert not scan_all(get_settings().tracking_table)
    assert not [item for item in scan_all(get_settings().tracking_stats_table) if item["delivery_id"] == delivery_id
                and not item["stat"].startswith("domain#")]  # the MTA's domain counters only

    # Log ids 1 to 6: one shard's run item, and one of the delivery's counters.
    assert [(item["shard"], item["run"], item["delivery_id"]) for item in _run_items()] == [
        (shard_key(delivery_id, 0), 1, delivery_id), (shard_key(delivery_id, None), 1, delivery_id)]
    assert RECIPIENTS_PER_SHARD > 6
    shard, counters = (run_items.decode(delivery_id, bytes(item["body"])) for item in _run_items())
    assert shard.hits and not shard.counters and counters.counters and not counters.hits
    hits, sums = _appended()
    assert (hits, sums) == expected
    assert {name: sums.get((delivery_id, "indicators", name), 0) for name in (
        "opens_unique", "opens_total", "clicks_unique", "clicks_total", "persons_clicking", "optouts",
        "mirror_views", "opens_unique_human", "clicks_unique_human", "machine_too_fast")} == {
        "opens_unique": 5, "opens_total": 4, "clicks_unique": 2, "clicks_total": 4, "persons_clicking": 3,
        "optouts": 1, "mirror_views": 2, "opens_unique_human": 4, "clicks_unique_human": 0, "machine_too_fast": 4}
    assert sorted(hit_id for hit_id, (hit, _) in hits.items() if hit.log_id == 1) == sorted(
        records[name]["hit_id"] for name in ("r1_open_0", "r1_open_30", "r1_open_61", "r1_click_70", "r1_click_80",
                                             "r1_click_5"))


def _put_object(name: str, lines: list[bytes], at_ms: int) -> None:
    boto3.client("s3").put_object(Bucket=get_settings().redirection_log_bucket,
                                  Key=f"{LOG_PREFIX}{hour_partition(at_ms)}/{name}",
                                  Body=gzip.compress(b"".join(lines), mtime=0))


def _delete_logs() -> None:
    """Test-only: every redirection log object deleted (reset_workflow_tables keeps them)."""
    s3 = boto3.client("s3")
    bucket = get_settings().redirection_log_bucket
    for entry in s3.list_objects_v2(Bucket=bucket, Prefix=LOG_PREFIX).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=entry["Key"])


def _runs_of_generated_hits(runs: int) -> dict[str, Any]:
    """The bench's generated hits (duplicates, floods, machines) in `runs` objects, one run each."""
    _delete_logs()  # a layout's runs start from no log at all
    lines = list(generate_lines(900, seed=11, audience=0.01))
    clock = FakeClock(1_764_000_000 + 3600)
    size = -(-len(lines) // runs)
    statistics = []
    for run in range(runs):
        _put_object(f"part-{run:02d}", lines[run * size:(run + 1) * size], int(clock.now * 1000))
        statistics.append(workflow(clock).run())
        clock.advance(60)
    return {"statistics": statistics}


@pytest.mark.parametrize("runs", [1, 4])
def test_over_several_runs_the_run_items_hold_the_same_hits_verdicts_and_counters(resources: Any, runs: int) -> None:
    """Later runs read the shards' run items: duplicates across runs are dropped, late hits change stored
    verdicts (corrections), and the deltas still sum to the items layout's counters."""
    import os

    from infra.local_runtime import environment

    os.environ["SENDTRAIL_SIGNING_KEYS"] = KEYRING_JSON  # the bench's hits are signed with its key
    environment.forget_cached_configuration()
    itemised = _runs_of_generated_hits(runs)
    expected = _itemised()
    reset_workflow_tables()
    use_layout("append")
    appended = _runs_of_generated_hits(runs)

    for by_items, by_runs in zip(itemised["statistics"], appended["statistics"], strict=True):
        assert by_runs["status"] == by_items["status"] == "completed"
        assert (by_runs["hits_accepted"], by_runs["duplicates"]) == (by_items["hits_accepted"], by_items["duplicates"])
    hits, sums = _appended()
    assert len(hits) == len(expected[0]) > 500
    assert hits == expected[0]
    assert sums == expected[1]
    if runs > 1:
        assert any(run_items.decode(item["delivery_id"], bytes(item["body"])).corrections for item in _run_items())
        assert len({item["shard"] for item in _run_items()}) > 1


def test_a_replayed_run_item_is_refused_and_changes_nothing(api: Any, mta: Any) -> None:
    delivery_id = make_delivery(api, mta)
    known_truth_logs(delivery_id)
    use_layout("append")
    workflow(FakeClock(NOW)).run()
    written = _run_items()
    store = workflow().runs
    assert not store.put(delivery_id, 0, 1, b"\x01\x00\x00\x00\x00", T0, 0)
    assert not store.put(delivery_id, None, 1, b"\x01\x00\x00\x00\x00", T0, 0)
    assert _run_items() == written
    assert store.put(delivery_id, 0, 2, b"\x01\x00\x00\x00\x00", T0, 0)  # another run's: written
    assert [item.run for item in store.read_shard(delivery_id, 0)] == [1, 2]


def test_a_crash_after_any_write_of_a_later_run_then_a_normal_run_gives_the_clean_run_items(
        resources: Any) -> None:
    """The run that reads earlier run items (its duplicates, its corrections) crashed after each of its writes."""
    import os

    from infra.local_runtime import environment
    from tests.tracking_harness import replay_after_each_crash, snapshot, tap

    os.environ["SENDTRAIL_SIGNING_KEYS"] = KEYRING_JSON
    environment.forget_cached_configuration()
    use_layout("append")
    lines = list(generate_lines(160, seed=3, audience=0.005))
    start = 1_764_000_000 + 3600

    def prepare() -> FakeClock:
        _delete_logs()
        clock = FakeClock(start)
        _put_object("part-0", lines[:80], int(clock.now * 1000))
        assert workflow(clock, write_concurrency=1).run()["run"] == 1
        clock.advance(60)
        _put_object("part-1", lines[80:], int(clock.now * 1000))
        return clock

    reset_workflow_tables()
    with tap() as observer:
        clock = prepare()
        observer.arm(None)
        second = workflow(clock, write_concurrency=1).run()
        clean = snapshot()
        total = observer.writes
    assert second["run"] == 2 and second["duplicates"] > 0
    assert total > 6  # acquire, run record, register, the run items, markers, finish
    with tap() as observer:
        replay_after_each_crash(observer, clean, total, prepare, write_concurrency=1)


def test_the_counter_and_recipient_reports_read_the_run_items(api: Any, mta: Any) -> None:
    """Indicators, URLs, timeline, user agents, domains, a recipient's tracking and the Tracking tab (paged) from
    run items: what the items layout shows."""
    delivery_id = make_delivery(api, mta)
    known_truth_logs(delivery_id)
    workflow(FakeClock(NOW)).run()
    paths = [f"/api/deliveries/{delivery_id}/{report}" for report in (
        "indicators", "urls", "timeline", "user-agents", "domains")] + [
        f"/api/recipients/r{index}/tracking" for index in range(1, 7)] + ["/api/recipients/r1/tracking?limit=2"] + [
        f"/api/deliveries/{delivery_id}/tracking{query}" for query in ("", "?kind=click", "?limit=3", "?kind=open&limit=1")]
    responses = {path: api.get(path) for path in paths}
    assert all(response.status_code == 200 for response in responses.values())
    shown = {path: response.json_body for path, response in responses.items()}
    assert shown[paths[1]]["rows"] and shown[paths[2]]["buckets"] and shown[paths[3]]["browser"]
    assert len(shown[paths[5]]["items"]) == 6 and shown[paths[11]]["next"]  # r1's, and its first 2
    assert len(shown[paths[12]]["items"]) == 13 and not shown[paths[12]]["next"] and shown[paths[14]]["next"]
    paths.append(f"/api/deliveries/{delivery_id}/tracking?limit=3&next={shown[paths[14]]['next']}")
    shown[paths[-1]] = api.get(paths[-1]).json_body
    assert len(shown[paths[-1]]["items"]) == 3
    reset_workflow_tables()
    use_layout("append")
    workflow(FakeClock(NOW)).run()

    indicators = api.get(paths[0]).json_body
    assert indicators.pop("last_updated") == int(NOW * 1000)
    assert indicators == {"delivery_id": delivery_id, **EXPECTED_INDICATORS}
    for path in paths:
        assert api.get(path).json_body == shown[path], path


def test_a_flooded_shard_is_written_in_parts_read_back_whole_and_replayed_once(
        resources: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's item of a shard past the part size (DynamoDB refuses items past 400 KB) is written in parts;
    the next run reads them all (its repeats are duplicates), and a crash after any write changes nothing."""
    from chalicelib.tracking import workflow as workflow_module
    from tests.tracking_harness import put_log, replay_after_each_crash, snapshot, tap
    from tests.tracking_logs import record

    monkeypatch.setattr(workflow_module, "MAX_BODY_BYTES", 4_000)
    use_layout("append")
    delivery_id = "00112233445566ff"
    flood = [record(kind="click", delivery_id=delivery_id, log_id=3, url_id=4, ts=T0 + index * 10,
                    ip=f"198.51.100.{index % 200}") for index in range(600)]

    def prepare() -> FakeClock:
        _delete_logs()
        clock = FakeClock(NOW)
        put_log("flood-1", flood[:400], T0)
        assert workflow(clock, write_concurrency=1).run()["hits_accepted"] == 400
        clock.advance(60)
        put_log("flood-2", flood[300:], T0 + 60_000)  # 100 seen already, 200 new
        return clock

    reset_workflow_tables()
    with tap() as observer:
        clock = prepare()
        parts = [item for item in _run_items() if item["shard"] == shard_key(delivery_id, 0)]
        assert len(parts) > 3 and {item["run"] for item in parts} == {1}
        observer.arm(None)
        second = workflow(clock, write_concurrency=1).run()
        clean = snapshot()
        total = observer.writes
    assert (second["hits_accepted"], second["duplicates"]) == (200, 100)
    hits, sums = _appended()
    assert len(hits) == 600 and sums[(delivery_id, "indicators", "clicks_total")] == 600
    with tap() as observer:
        replay_after_each_crash(observer, clean, total, prepare, write_concurrency=1)
