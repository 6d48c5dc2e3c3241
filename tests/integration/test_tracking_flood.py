"""Issue 13: a flood of hits on one recipient's link cannot hide their later real hits, and totals stay exact.

Through the workflow on moto, the API and the recipient's page: 5,000 clicks
by a script on one link, spread over runs and replayed, then the person's own
click on another link an hour later.
"""

from __future__ import annotations

from typing import Any, Iterator

import boto3
import pytest

from chalicelib.data.dynamo import from_item
from chalicelib.settings import get_settings
from chalicelib.tracking.items import decode_hits, decode_summary
from tests.integration.test_pages import login, session_cookie
from tests.integration.test_tracking_api import create_and_send
from tests.tracking_harness import FakeClock, pin_layout, put_log, replay_after_each_crash, snapshot, tap, workflow
from tests.tracking_logs import record


@pytest.fixture(autouse=True)
def _items_layout(request: pytest.FixtureRequest) -> None:
    """These tests read the items layout's tables (the append layout's: test_tracking_append_layout.py)."""
    pin_layout(request, "items")


TWO_LINKS = ('<p><a href="https://shop.example.com/x">Shop</a> <a href="https://shop.example.com/y">Sale</a> '
             '<a href="{{unsubscribe_url}}">stop</a></p>')
SCRIPT = "python-requests/2.32.3"
PERSON = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/18.1 Mobile/15E148 Safari/604.1")
FLOOD = 5_000
T_FLOOD = 1_740_823_200_000  # 2025-03-01 10:00:00 UTC


def test_a_flood_on_one_link_keeps_the_later_real_click_and_exact_totals(api: Any, mta: Any, client: Any) -> None:
    delivery_id = create_and_send(api, mta, ["ann"], "flood", TWO_LINKS)
    rows = api.get(f"/api/deliveries/{delivery_id}/urls").json_body["rows"]
    urls = {row["key"]: row["url_ids"][0] for row in rows}
    shop, sale = urls["https://shop.example.com/x"], urls["https://shop.example.com/y"]
    settings = get_settings()
    log = boto3.client("dynamodb").get_item(TableName=settings.delivery_logs_table, Key={
        "delivery_id": {"S": delivery_id}, "log_id": {"N": "1"}})["Item"]
    sent = int(log["sent_at"]["N"])
    flood = [record(kind="click", delivery_id=delivery_id, url_id=shop, ts=sent + 60_000 + 50 * index, ua=SCRIPT,
                    ip="198.51.100.0") for index in range(FLOOD)]
    real = record(kind="click", delivery_id=delivery_id, url_id=sale, ts=sent + 3_600_000, ua=PERSON,
                  ip="73.162.84.0")
    # The flood over three runs (the last one replays part of the first: duplicates), then the person's click.
    for run, (name, part) in enumerate((("flood-a", flood[:2_000]), ("flood-b", flood[2_000:])), start=1):
        put_log(name, part, sent + 60_000)
        assert workflow(FakeClock(sent / 1000 + 600 + 60 * run)).run()["status"] == "completed"
    put_log("flood-replayed", flood[1_000:1_500], sent + 60_000)
    replayed = workflow(FakeClock(sent / 1000 + 800)).run()
    assert (replayed["duplicates"], replayed["hits_accepted"], replayed["recipients_updated"]) == (500, 0, 0)
    put_log("person", [real], sent + 3_600_000)
    assert workflow(FakeClock(sent / 1000 + 3_700)).run()["hits_accepted"] == 1

    item = boto3.client("dynamodb").get_item(TableName=settings.tracking_table, Key={
        "delivery_id": {"S": delivery_id}, "log_id": {"N": "1"}})["Item"]
    stored = [hit.hit_id for hit in decode_hits(from_item(item) or {})]
    assert len(stored) == settings.workflow_first_hits_per_recipient + settings.workflow_last_hits_per_recipient
    assert stored[-1] == real["hit_id"] and stored[0] == flood[0]["hit_id"]  # the first hits and the latest
    summary = decode_summary(from_item(item) or {})
    assert summary is not None and summary.count == FLOOD + 1 - len(stored)

    # Every total is the hand count: 5,001 clicks, 5,000 of them a script's (a crawler), 1 the person's.
    indicators = api.get(f"/api/deliveries/{delivery_id}/indicators").json_body
    assert {name: indicators[name] for name in ("opens_unique", "opens_total", "clicks_unique", "clicks_total",
                                                 "persons_clicking", "clicks_unique_human", "clicks_total_human",
                                                 "opens_unique_human")} == {
        "opens_unique": 1, "opens_total": 0, "clicks_unique": 1, "clicks_total": FLOOD + 1, "persons_clicking": 2,
        "clicks_unique_human": 1, "clicks_total_human": 1, "opens_unique_human": 1}
    assert indicators["machine"]["hits"] == FLOOD and indicators["machine"]["by_reason"]["crawler"] == FLOOD
    by_url = {row["url_ids"][0]: row for row in api.get(f"/api/deliveries/{delivery_id}/urls").json_body["rows"]}
    assert (by_url[shop]["clicks_total"], by_url[sale]["clicks_total"]) == (FLOOD, 1)
    timeline = api.get(f"/api/deliveries/{delivery_id}/timeline").json_body["buckets"]
    assert sum(bucket["clicks"] for bucket in timeline) == FLOOD + 1

    # The person's click is the recipient's newest hit, in the API and on their page.
    [newest] = api.get("/api/recipients/ann/tracking", query={"limit": "1"}).json_body["items"]
    assert (newest["hit_id"], newest["url"], newest["class"]) == (real["hit_id"], "https://shop.example.com/y",
                                                                  "human")
    response = login(client)
    page = client.get("/dashboard/recipients/ann", headers={"cookie": session_cookie(response)})
    assert page.status_code == 200 and b"https://shop.example.com/y" in page.body


def test_a_crash_after_any_write_of_a_run_past_the_bound_then_a_normal_run_gives_the_clean_tables(
        api: Any, mta: Any) -> None:
    """Exactly once with summaries: the second run evicts more of a flood into the stored summary, takes a
    replay as duplicates and stores the real click; a crash after any of its writes, then a normal run,
    leaves exactly the tables of a clean second run."""
    delivery_id = create_and_send(api, mta, ["ann"], "flood-crash", TWO_LINKS)
    urls = {row["key"]: row["url_ids"][0] for row in api.get(f"/api/deliveries/{delivery_id}/urls").json_body["rows"]}
    flood = [record(kind="click", delivery_id=delivery_id, url_id=urls["https://shop.example.com/x"],
                    ts=T_FLOOD + 50 * index, ua=SCRIPT, ip="198.51.100.0") for index in range(30)]
    real = record(kind="click", delivery_id=delivery_id, url_id=urls["https://shop.example.com/y"],
                  ts=T_FLOOD + 3_600_000, ua=PERSON, ip="73.162.84.0")
    put_log("a-flood", flood[:20], T_FLOOD)
    put_log("b-more", flood[20:] + [real] + flood[5:8], T_FLOOD)
    limits = {"write_concurrency": 1, "max_objects": 1, "first_hits_per_recipient": 2, "last_hits_per_recipient": 3}
    now = T_FLOOD / 1000 + 4_000
    with tap() as observer:
        workflow(FakeClock(now), **limits).run()
        observer.arm(None)
        second = workflow(FakeClock(now + 60), **limits).run()
        assert (second["duplicates"], second["hits_accepted"], second["over_limit"]) == (3, 11, 11)
        clean, total = snapshot(), observer.writes
        assert total >= 10

        def first_run_done() -> FakeClock:
            clock = FakeClock(now)
            workflow(clock, **limits).run()
            clock.advance(60)
            return clock

        replay_after_each_crash(observer, clean, total, first_run_done, **limits)
    indicators = api.get(f"/api/deliveries/{delivery_id}/indicators").json_body
    # (Every click is machine here: dated before the message was sent, too fast for anyone.)
    assert (indicators["clicks_total"], indicators["persons_clicking"], indicators["machine"]["hits"]) == (31, 2, 31)


@pytest.fixture(params=["on", "off"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The run computed natively, then by the Python reference (SENDTRAIL_NATIVE)."""
    from infra.local_runtime import environment

    monkeypatch.setenv("SENDTRAIL_NATIVE", request.param)
    environment.forget_cached_configuration()
    yield request.param
    monkeypatch.undo()
    environment.forget_cached_configuration()


def test_the_tracking_tab_lists_every_hit_of_a_run_past_the_bound(api: Any, mta: Any, backend: str) -> None:
    """A run that brings one recipient more hits than their item keeps evicts some at once: those hits are
    still logged, once each, in the delivery's Tracking tab (only the item forgets them)."""
    from chalicelib.reports import tracking_log

    delivery_id = create_and_send(api, mta, ["ann"], f"flood-tab-{backend}", TWO_LINKS)
    shop = {row["key"]: row["url_ids"][0]
            for row in api.get(f"/api/deliveries/{delivery_id}/urls").json_body["rows"]}["https://shop.example.com/x"]
    flood = [record(kind="click", delivery_id=delivery_id, url_id=shop, ts=T_FLOOD + 50 * index, ua=SCRIPT,
                    ip="198.51.100.0") for index in range(12)]
    put_log("flood", flood[:8], T_FLOOD)
    put_log("flood-more", flood[8:] + flood[2:4], T_FLOOD)  # the replayed two are duplicates
    limits = {"write_concurrency": 1, "first_hits_per_recipient": 2, "last_hits_per_recipient": 3}
    clock = FakeClock(T_FLOOD / 1000 + 4_000)
    first = workflow(clock, max_objects=1, **limits).run()
    clock.advance(60)
    second = workflow(clock, max_objects=1, **limits).run()
    assert (first["hits_accepted"], second["hits_accepted"], second["duplicates"]) == (8, 4, 2)

    listed = tracking_log.delivery_tracking(delivery_id, kind="click", limit=50)
    assert listed.next is None
    assert sorted(item.hit_id for item in listed.items) == sorted(hit["hit_id"] for hit in flood)
    assert {item.recipient_id for item in listed.items} == {"ann"}
