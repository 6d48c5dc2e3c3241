"""The tracking workflow on moto: a log with known truth, replays, crashes, backlogs, overlaps."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import boto3
import pytest

from chalicelib.data.redirection_logs import hour_partition
from chalicelib.data.tracking import TrackingStore
from chalicelib.settings import get_settings
from chalicelib.tracking.items import decode_hits
from tests.tracking_harness import (
    FakeClock,
    SimulatedCrash,
    pin_layout,
    put_log,
    replay_after_each_crash,
    reset_workflow_tables,
    snapshot,
    tap,
    use_layout,
    workflow,
)
from tests.tracking_logs import GMAIL_PROXY, IPHONE_MAIL, line, record


@pytest.fixture(autouse=True)
def _items_layout(request: pytest.FixtureRequest) -> None:
    """These tests read the items layout's tables (the append layout's: test_tracking_append_layout.py)."""
    pin_layout(request, "items")


T0 = 1_740_823_200_000  # 2025-03-01 10:00:00 UTC
NOW = T0 / 1000 + 20 * 60  # the workflow runs 20 minutes later
OTHER_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"


def make_delivery(api: Any, mta: Any, recipients: int = 6) -> str:
    html = ('<html><body><a href="https://shop.example.com/a">Shop A</a> <a href="https://shop.example.com/b">B</a>'
            ' <a href="{{mirror_url}}">online</a> <a href="{{unsubscribe_url}}">unsubscribe</a></body></html>')
    response = api.post("/api/deliveries", body={
        "name": "truth", "subject": "s", "from_address": "news@example.com", "html": html,
        "recipients": [{"id": f"r{index}", "email": f"r{index}@example.net"} for index in range(1, recipients + 1)],
    })
    assert response.status_code == 201, response.body
    delivery_id = response.json_body["id"]
    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 202
    mta.send()
    return delivery_id


def known_truth_logs(delivery_id: str) -> dict[str, Any]:
    """Four log objects whose exact tracking is known; returns the records by name."""
    def rec(kind: str, log_id: int, offset_s: float, **extra: Any) -> dict[str, Any]:
        return record(kind=kind, delivery_id=delivery_id, log_id=log_id, ts=T0 + int(offset_s * 1000), **extra)

    r = {
        # r1: opens at 0 s, 30 s (inside the minute: dropped) and 61 s; clicks on link 4 twice (same
        # browser) and link 5 once from another device: 2 persons clicking.
        "r1_open_0": rec("open", 1, 0, ua=IPHONE_MAIL),
        "r1_open_30": rec("open", 1, 30, ua=IPHONE_MAIL),
        "r1_open_61": rec("open", 1, 61, ua=IPHONE_MAIL),
        "r1_click_70": rec("click", 1, 70, url_id=4),
        "r1_click_80": rec("click", 1, 80, url_id=4),
        "r1_click_5": rec("click", 1, 400, url_id=5, ua=OTHER_UA),
        # r2: a click without an open (still an open).
        "r2_click": rec("click", 2, 5, url_id=4),
        # r3: an open delivered twice (in two objects), another open later.
        "r3_open_10": rec("open", 3, 10, ua=GMAIL_PROXY),
        "r3_open_100": rec("open", 3, 100, ua=GMAIL_PROXY),
        # r4: unsubscribes twice (counted once), r5 views the mirror page twice.
        "r4_optout_a": rec("optout", 4, 20),
        "r4_optout_b": rec("optout", 4, 25),
        "r5_mirror_a": rec("mirror", 5, 30),
        "r5_mirror_b": rec("mirror", 5, 320),
    }
    tampered = {**rec("click", 6, 40, url_id=4)}
    tampered["url_id"] = 5  # the token says 4
    forged = rec("click", 6, 41, url_id=4, secret=b"z" * 32)
    wrong_kind = rec("open", 6, 42, url_id=4, token_kind="click")
    bad_field = {**rec("click", 6, 43, url_id=4), "ts": "yesterday"}
    put_log("a-gzip", [r["r1_open_0"], r["r1_open_30"], r["r2_click"], r["r3_open_10"], tampered, r["r4_optout_a"]],
            T0, compress=True)
    put_log("b-plain", [line(r["r1_open_61"]).replace(b"\n", b"\r\n"), b"this is not json\n", r["r1_click_70"],
                        r["r3_open_10"], forged, r["r4_optout_b"], r["r5_mirror_a"]], T0)
    put_log("c-gzip", [r["r1_click_80"], r["r1_click_70"], wrong_kind, r["r3_open_100"], bad_field,
                       r["r5_mirror_b"], r["r1_click_5"]], T0 + 60_000, compress=True)
    # d: a fallback object (one record, no final newline) that also reached Kinesis.
    key = f"redirection-logs/{hour_partition(T0)}/fallback-{r['r2_click']['hit_id']}"
    boto3.client("s3").put_object(Bucket=get_settings().redirection_log_bucket, Key=key,
                                  Body=line(r["r2_click"])[:-1])
    return r


EXPECTED_INDICATORS = {
    "processed": 6, "success": 6, "to_deliver": 6, "text_only": 0,
    "opens_unique": 5, "opens_total": 4, "opens_estimated": 5,
    "clicks_unique": 2, "clicks_total": 4, "persons_clicking": 3, "forwards_estimated": 1,
    "reactivity": 40.0, "reactivity_estimated": 40.0, "optouts": 1, "mirror_views": 2,
    # People: these hits are dated T0, before the messages were sent (now), so every click is faster than
    # anyone can read (too_fast; r2's also came with no open before it): no person's click. The opens are
    # people's (iPhone Mail, Gmail's image proxy), and the opt-out and mirror view imply theirs: r1, r3, r4, r5.
    "opens_unique_human": 4, "opens_total_human": 4, "clicks_unique_human": 0, "clicks_total_human": 0,
    "reactivity_human": 0.0,
    "machine": {"hits": 4, "by_reason": {"apple_proxy": 0, "scanner_agent": 0, "scanner_address": 0, "crawler": 0,
                                         "prefetch": 0, "honeypot": 0, "burst": 0, "too_fast": 4, "no_open": 1}},
    "rates": {"opens_unique": 83.33, "opens_total": 66.67, "opens_estimated": 83.33, "clicks_unique": 33.33,
              "clicks_total": 66.67, "persons_clicking": 50.0, "forwards_estimated": 16.67, "optouts": 16.67,
              "mirror_views": 33.33, "opens_unique_human": 66.67, "opens_total_human": 66.67,
              "clicks_unique_human": 0.0, "clicks_total_human": 0.0},
}


def test_a_log_with_known_truth_gives_exactly_the_expected_tables(api: Any, mta: Any) -> None:
    delivery_id = make_delivery(api, mta)
    records = known_truth_logs(delivery_id)
    clock = FakeClock(NOW)
    statistics = workflow(clock).run()

    assert statistics["status"] == "completed" and statistics["run"] == 1
    assert statistics["objects"] == 4
    assert statistics["lines"] == 6 + 7 + 7 + 1
    assert statistics["rejected"] == {"not_json": 1, "bad_field": 1, "token_bad_signature": 1,
                                      "token_kind_mismatch": 1, "token_claims_mismatch": 1}
    assert statistics["duplicates"] == 3  # r3's open, r1's click at 70 s, r2's click in the fallback object
    assert statistics["hits_accepted"] == 13
    assert statistics["backlog"] is False

    indicators = api.get(f"/api/deliveries/{delivery_id}/indicators").json_body
    assert indicators.pop("last_updated") == int(NOW * 1000)
    assert indicators == {"delivery_id": delivery_id, **EXPECTED_INDICATORS}

    rows = api.get(f"/api/deliveries/{delivery_id}/urls").json_body["rows"]
    urls = {row["url_ids"][0]: row for row in rows}
    assert {url_id: (row["clicks_total"], row["clicks_unique"]) for url_id, row in urls.items()} == {
        2: (2, 1), 3: (2, 1), 4: (3, 2), 5: (1, 1)}
    assert urls[4]["urls"] == ["https://shop.example.com/a"] and urls[4]["labels"] == ["Shop A"]
    assert urls[4]["clicks_unique_rate"] == 33.33 and urls[2]["types"] == ["optout"]

    [tracking] = [item for item in TrackingStore(get_settings().tracking_table, "").recipient_items("r1")]
    assert [hit.hit_id for hit in decode_hits(tracking)] == [records[name]["hit_id"] for name in (
        "r1_open_0", "r1_open_30", "r1_open_61", "r1_click_70", "r1_click_80", "r1_click_5")]
    page = api.get("/api/recipients/r1/tracking").json_body
    assert [(item["kind"], item["at"] - T0, item["counted"]) for item in page["items"]] == [
        ("click", 400_000, True), ("click", 80_000, True), ("click", 70_000, True),
        ("open", 61_000, True), ("open", 30_000, False), ("open", 0, True)]
    assert page["items"][0]["url"] == "https://shop.example.com/b" and page["items"][0]["user_agent"] == OTHER_UA
    assert page["items"][-1]["ip"] == "203.0.113.0" and page["next"] is None
    assert api.get("/api/recipients/r6/tracking").json_body["items"] == []

    start = T0 - T0 % 300_000
    timeline = api.get(f"/api/deliveries/{delivery_id}/timeline").json_body["buckets"]
    assert timeline == [{"start": start, "opens": 4, "clicks": 3, "opens_human": 4, "clicks_human": 0},
                        {"start": start + 300_000, "opens": 0, "clicks": 1, "opens_human": 0, "clicks_human": 0}]
    agents = api.get(f"/api/deliveries/{delivery_id}/user-agents").json_body
    assert {row["family"]: (row["opens"], row["clicks"]) for row in agents["mail_client"]} == {
        "Apple Mail": (2, 1), "Gmail (image proxy)": (2, 0), "Web browser": (0, 3)}
    assert {row["family"]: (row["opens"], row["clicks"]) for row in agents["device"]} == {
        "Mobile": (2, 0), "Desktop": (2, 4)}

    quarantined = _quarantine()
    assert sorted(quarantined) == [f"redirection-quarantine/{hour_partition(T0)}/{name}.jsonl"
                                   for name in ("a-gzip", "b-plain")] + [
        f"redirection-quarantine/{hour_partition(T0 + 60_000)}/c-gzip.jsonl"]
    b_lines = quarantined[f"redirection-quarantine/{hour_partition(T0)}/b-plain.jsonl"]
    assert [(entry["line"], entry["reason"]) for entry in b_lines] == [(2, "not_json"), (5, "token_bad_signature")]
    assert b_lines[0]["data"] == "this is not json"


def _quarantine() -> dict[str, list[dict[str, Any]]]:
    s3 = boto3.client("s3")
    bucket = get_settings().redirection_log_bucket
    found = {}
    for entry in s3.list_objects_v2(Bucket=bucket, Prefix="redirection-quarantine/").get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read().decode()
        found[entry["Key"]] = [json.loads(text) for text in body.splitlines()]
    return found


@pytest.fixture(params=["items", "append"])
def layout(request: pytest.FixtureRequest, resources: Any) -> str:
    """The crash and replay tests run for both tracking layouts (settings.tracking_layout)."""
    use_layout(request.param)
    return str(request.param)


def test_three_more_runs_change_nothing(api: Any, mta: Any, layout: str) -> None:
    delivery_id = make_delivery(api, mta)
    known_truth_logs(delivery_id)
    clock = FakeClock(NOW)
    workflow(clock).run()
    before = snapshot()
    for _ in range(3):
        clock.advance(30)
        assert workflow(clock).run()["status"] == "idle"
    assert snapshot() == before


def test_a_crash_after_any_write_then_a_normal_run_gives_the_clean_tables(api: Any, mta: Any, layout: str) -> None:
    """Crash injected after the 1st, 2nd, ... write of a run (every write step), then one normal run."""
    delivery_id = make_delivery(api, mta)
    known_truth_logs(delivery_id)
    with tap() as observer:
        workflow(FakeClock(NOW), write_concurrency=1).run()
        clean = snapshot()
        total = observer.writes
        # acquire, run record, register, recipients, grouped stats, log pages (append: one run item), quarantine,
        # markers, finish
        assert total >= (20 if layout == "items" else 8)
        replay_after_each_crash(observer, clean, total, lambda: FakeClock(NOW), write_concurrency=1)


def test_crashes_with_parallel_writes_and_a_crash_while_resuming(api: Any, mta: Any, layout: str) -> None:
    delivery_id = make_delivery(api, mta)
    known_truth_logs(delivery_id)
    workflow(FakeClock(NOW), write_concurrency=1).run()
    clean = snapshot()
    with tap() as observer:
        # After register (write 3), so the second crash is in the run that resumes the first's record.
        crashes = ((6, 3), (12, 5), (20, 2)) if layout == "items" else ((4, 3), (5, 2), (7, 2))
        for first_crash, second_crash in crashes:
            reset_workflow_tables()
            clock = FakeClock(NOW)
            for crash in (first_crash, second_crash):
                observer.arm(crash)
                with pytest.raises(SimulatedCrash):
                    workflow(clock, write_concurrency=4).run()
                clock.advance(get_settings().workflow_lease_seconds + 1)
            observer.arm(None)
            workflow(clock, write_concurrency=4).run()
            assert snapshot() == clean


def test_an_error_releases_the_lease_and_the_next_run_completes_the_pending_run(
        api: Any, mta: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    delivery_id = make_delivery(api, mta)
    known_truth_logs(delivery_id)
    workflow(FakeClock(NOW)).run()
    clean = snapshot()
    reset_workflow_tables()
    clock = FakeClock(NOW)
    broken = workflow(clock, write_concurrency=1)
    calls = {"n": 0}
    original = broken.tracking.apply_stat

    def failing(*args: Any, **kwargs: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("DynamoDB throttled us")
        return original(*args, **kwargs)

    monkeypatch.setattr(broken.tracking, "apply_stat", failing)
    with pytest.raises(RuntimeError):
        broken.run()
    resumed = workflow(clock).run()  # no waiting: the failed run released its lease
    assert resumed["resumed_run"] == 1 and resumed["status"] == "idle"
    assert snapshot() == clean


def test_overlapping_runs_do_not_both_apply(api: Any, mta: Any) -> None:
    delivery_id = make_delivery(api, mta)
    known_truth_logs(delivery_id)
    clock = FakeClock(time.time())  # the API's run below uses the real clock
    first = workflow(clock)
    state = first.state.acquire("someone-else", int(clock.now * 1000), 60_000)
    assert state is not None
    busy = workflow(clock).run()
    assert busy["status"] == "busy"
    assert api.post("/api/workflow/run").status_code == 409
    clock.advance(61)
    assert workflow(clock).run()["status"] == "completed"
    indicators = api.get(f"/api/deliveries/{delivery_id}/indicators").json_body
    assert indicators["clicks_total"] == 4


def test_a_stalled_run_replaying_its_record_late_changes_nothing(api: Any, mta: Any) -> None:
    """A run that lost its lease (stalled past expiry) and wakes up cannot apply its writes again."""
    delivery_id = make_delivery(api, mta)
    records = known_truth_logs(delivery_id)
    clock = FakeClock(NOW)
    with tap(crash_after_writes=3), pytest.raises(SimulatedCrash):  # acquire, run record, register
        workflow(clock).run()
    settings = get_settings()
    state = workflow(clock).state.get_state()
    stalled_record = workflow(clock).logs.get_run_record(state["pending_record"])
    clock.advance(settings.workflow_lease_seconds + 1)
    workflow(clock).run()  # completes run 1
    put_log("later", [record(kind="click", delivery_id=delivery_id, log_id=1, url_id=4, ts=T0 + 900_000)],
            T0 + 900_000)
    clock.advance(60)
    assert workflow(clock).run()["run"] == 2  # run 2 writes r1 and the indicators again
    after = snapshot()
    zombie = workflow(clock)
    with pytest.raises(Exception, match="lease"):
        zombie._apply(stalled_record, owner="the-stalled-run", release=True)  # noqa: SLF001
    assert snapshot() == after
    hits = decode_hits(TrackingStore(settings.tracking_table, "").get_recipient(delivery_id, 1))
    assert len(hits) == 7 and records["r1_open_0"]["hit_id"] == hits[0].hit_id


def test_a_backlog_larger_than_one_run_drains_over_runs(api: Any, mta: Any) -> None:
    delivery_id = make_delivery(api, mta)
    for index in range(7):
        put_log(f"part-{index:02d}", [record(kind="click", delivery_id=delivery_id, log_id=index % 6 + 1,
                                             url_id=4, ts=T0 + index * 1000)], T0 + index * 1000)
    clock = FakeClock(NOW)
    runs = []
    while True:
        result = workflow(clock, max_objects=3).run()
        runs.append((result["status"], result["objects"], result["backlog"]))
        if result["status"] == "idle":
            break
        clock.advance(60)
    assert runs == [("completed", 3, True), ("completed", 3, True), ("completed", 1, False), ("idle", 0, False)]
    indicators = api.get(f"/api/deliveries/{delivery_id}/indicators").json_body
    assert (indicators["clicks_total"], indicators["clicks_unique"]) == (7, 6)


def test_the_time_budget_bounds_a_run(api: Any, mta: Any) -> None:
    delivery_id = make_delivery(api, mta)
    for index in range(4):
        put_log(f"slow-{index}", [record(kind="open", delivery_id=delivery_id, log_id=1, ts=T0 + index * 70_000)],
                T0)

    class SlowClock(FakeClock):
        def __call__(self) -> float:
            self.now += 5  # every look at the clock costs 5 s
            return self.now

    result = workflow(SlowClock(NOW), max_seconds=20, write_concurrency=1).run()
    assert result["backlog"] is True and 1 <= result["objects"] < 4
    clock = FakeClock(NOW + 3600)
    while workflow(clock).run()["status"] != "idle":
        clock.advance(60)
    assert api.get(f"/api/deliveries/{delivery_id}/indicators").json_body["opens_total"] == 4


def test_late_objects_in_an_older_hour_are_still_read(api: Any, mta: Any) -> None:
    delivery_id = make_delivery(api, mta)
    put_log("first", [record(kind="click", delivery_id=delivery_id, log_id=1, url_id=4, ts=T0 + 3_600_000)],
            T0 + 3_600_000)
    clock = FakeClock(T0 / 1000 + 2 * 3600)
    assert workflow(clock).run()["objects"] == 1
    # Firehose retried an older buffer, or a fallback write arrived late: an earlier hour's object.
    put_log("late", [record(kind="click", delivery_id=delivery_id, log_id=2, url_id=4, ts=T0)], T0)
    clock.advance(60)
    assert workflow(clock).run()["objects"] == 1
    assert api.get(f"/api/deliveries/{delivery_id}/indicators").json_body["clicks_unique"] == 2


def test_unreadable_objects_are_quarantined_whole_and_the_run_goes_on(api: Any, mta: Any) -> None:
    delivery_id = make_delivery(api, mta)
    settings = get_settings()
    s3 = boto3.client("s3")
    bad_key = f"redirection-logs/{hour_partition(T0)}/broken"
    truncated = gzip.compress(b"x" * 100)[:-5]
    s3.put_object(Bucket=settings.redirection_log_bucket, Key=bad_key, Body=truncated)
    put_log("good", [record(kind="click", delivery_id=delivery_id, log_id=1, url_id=4, ts=T0)], T0)
    result = workflow(FakeClock(NOW)).run()
    assert result["rejected"] == {"bad_gzip": 1} and result["hits_accepted"] == 1
    copy = s3.get_object(Bucket=settings.redirection_log_bucket,
                         Key=f"redirection-quarantine/objects/{hour_partition(T0)}/broken")["Body"].read()
    assert copy == truncated


def test_objects_outside_the_partition_layout_are_ignored(api: Any) -> None:
    settings = get_settings()
    boto3.client("s3").put_object(Bucket=settings.redirection_log_bucket, Key="redirection-logs/README.txt",
                                  Body=b"not a log")
    result = workflow(FakeClock(NOW)).run()
    assert (result["status"], result["ignored_objects"]) == ("idle", 1)


def test_the_workflow_reads_only_by_key(api: Any, mta: Any) -> None:
    delivery_id = make_delivery(api, mta)
    known_truth_logs(delivery_id)
    with tap() as observed:
        workflow(FakeClock(NOW)).run()
    assert "Scan" not in observed.operations("dynamodb")
    assert observed.operations("dynamodb") <= {"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem",
                                               "BatchWriteItem"}


@pytest.mark.parametrize(("mode", "expected"), [
    ("full", ["203.0.113.77", "2001:db8:1234:5678::1", "198.51.100.0"]),
    ("truncated", ["203.0.113.0", "2001:db8:1234::", "198.51.100.0"]),
    ("none", ["", "", ""]),
])
def test_ips_are_kept_as_the_privacy_setting_allows_when_the_workflow_runs(
        api: Any, mta: Any, mode: str, expected: list[str]) -> None:
    """Records keep the IP as the setting allowed when the hit came; a stricter setting since then applies."""
    from infra.local_runtime import environment

    delivery_id = make_delivery(api, mta, recipients=1)
    ips = ["203.0.113.77", "2001:db8:1234:5678::1", "198.51.100.0"]
    put_log("ips", [record(kind="click", delivery_id=delivery_id, log_id=1, url_id=4, ts=T0 + index * 1000, ip=ip)
                    for index, ip in enumerate(ips)], T0)
    environment.apply({"SENDTRAIL_IP_ADDRESS_MODE": mode})
    assert workflow(FakeClock(NOW)).run()["hits_accepted"] == 3
    [tracking] = TrackingStore(get_settings().tracking_table, "").recipient_items("r1")
    assert [hit.ip for hit in decode_hits(tracking)] == expected



def test_objects_written_behind_the_cursor_in_the_same_hour_are_found_by_the_sweep(api: Any, mta: Any) -> None:
    """Keys sort by writer first (fallback-<hit id> before Firehose's stream names): a late writer lands behind."""
    delivery_id = make_delivery(api, mta)
    put_log("sendtrail-local-redirection-logs-1-2025-03-01-10-00-05-aaaa",
            [record(kind="click", delivery_id=delivery_id, log_id=1, url_id=4, ts=T0 + 5_000)], T0 + 5_000)
    clock = FakeClock(NOW)
    assert workflow(clock).run()["objects"] == 1
    late = record(kind="click", delivery_id=delivery_id, log_id=2, url_id=4, ts=T0 + 1_000)
    put_log(f"fallback-{late['hit_id']}", [late], T0 + 1_000)  # the hit path's fallback, behind the cursor
    clock.advance(60)
    result = workflow(clock).run()
    assert (result["status"], result["objects"], result["backlog_objects"]) == ("completed", 1, 0)
    clock.advance(60)
    assert workflow(clock).run()["status"] == "idle"
    assert api.get(f"/api/deliveries/{delivery_id}/indicators").json_body["clicks_unique"] == 2


def test_a_backlog_is_counted_and_its_oldest_object_gives_the_lag(api: Any, mta: Any) -> None:
    delivery_id = make_delivery(api, mta)
    for index in range(5):
        put_log(f"part-{index}", [record(kind="click", delivery_id=delivery_id, log_id=1, url_id=4,
                                         ts=T0 + index)], T0 + index)
    clock = FakeClock(time.time() + 600)
    result = workflow(clock, max_objects=2).run()
    assert (result["objects"], result["backlog_objects"], result["backlog_exact"]) == (2, 3, True)
    assert 590 <= result["lag_seconds"] <= 660
    state = workflow().state.get_state()
    assert (state["backlog_objects"], state["oldest_waiting_at"]) == (3, result["oldest_waiting_at"])
