"""The tracking API over moto: indicators, URLs, recipients' tracking, workflow runs; reads by key only."""

from __future__ import annotations

import re
from typing import Any

import boto3
import pytest

from chalicelib.data.redirection_logs import LOG_PREFIX
from chalicelib.settings import get_settings
from infra.local_runtime.firehose_pump import pumps_for
from infra.local_runtime.ses_outbox import OUTBOX
from tests.tracking_harness import FakeClock, put_log, tap, workflow
from tests.tracking_logs import record

T0 = 1_740_823_200_000


SHOP_HTML = '<p><a href="https://shop.example.com/x">Shop</a> <a href="{{unsubscribe_url}}">stop</a></p>'


def create_and_send(api: Any, mta: Any, recipients: list[str], name: str = "api", html: str = SHOP_HTML) -> str:
    response = api.post("/api/deliveries", body={
        "name": name, "subject": "Hello", "from_address": "news@example.com", "html": html,
        "recipients": [{"id": recipient, "email": f"{recipient}@example.net"} for recipient in recipients],
    })
    delivery_id = response.json_body["id"]
    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 202
    mta.send()
    return delivery_id


ROUTES = ["/api/deliveries/{id}/indicators", "/api/deliveries/{id}/urls", "/api/deliveries/{id}/timeline",
          "/api/deliveries/{id}/user-agents"]


@pytest.mark.parametrize("route", ROUTES)
def test_delivery_tracking_routes_need_the_token_and_a_known_delivery(api: Any, client: Any, route: str) -> None:
    assert client.get(route.format(id="0011223344556677")).status_code == 401
    for unknown in ("0011223344556677", "not-an-id", "0011223344556677X"):
        response = api.get(route.format(id=unknown))
        assert response.status_code == 404 and response.json_body["error"] == "not_found"


def test_a_sent_delivery_without_hits_has_zero_indicators(api: Any, mta: Any) -> None:
    delivery_id = create_and_send(api, mta, ["ann", "bob"])
    body = api.get(f"/api/deliveries/{delivery_id}/indicators").json_body
    assert (body["processed"], body["success"], body["opens_unique"], body["clicks_total"]) == (2, 2, 0, 0)
    assert body["last_updated"] is None and body["rates"]["opens_unique"] == 0
    urls = api.get(f"/api/deliveries/{delivery_id}/urls").json_body["rows"]
    assert sorted((row["url_ids"], row["types"], row["clicks_total"]) for row in urls) == [
        ([2], ["optout"], 0), ([3], ["mirror"], 0), ([4], ["click"], 0)]
    assert api.get(f"/api/deliveries/{delivery_id}/timeline").json_body["buckets"] == []


def test_recipient_tracking_pages_newest_first_across_deliveries(api: Any, mta: Any) -> None:
    first = create_and_send(api, mta, ["ann", "bob"], "first")
    second = create_and_send(api, mta, ["carl", "ann"], "second")
    # ann is log 1 of the first delivery and log 2 of the second; her hits interleave in time.
    times = {first: [0, 50, 200, 420], second: [10, 100, 300, 310, 500]}
    records = [record(kind="click", delivery_id=delivery, log_id=1 if delivery == first else 2, url_id=4,
                      ts=T0 + offset * 1000) for delivery, offsets in times.items() for offset in offsets]
    records.append(record(kind="click", delivery_id=first, log_id=2, url_id=4, ts=T0 + 1000))  # bob's
    put_log("ann", records, T0)
    workflow(FakeClock(T0 / 1000 + 600)).run()

    seen, cursor, pages = [], None, 0
    while True:
        response = api.get("/api/recipients/ann/tracking", query={"limit": "3", **({"next": cursor} if cursor else {})})
        assert response.status_code == 200
        body = response.json_body
        seen += [(item["delivery_id"], item["at"] - T0) for item in body["items"]]
        pages += 1
        cursor = body["next"]
        if not cursor:
            break
    expected = sorted(((delivery, offset * 1000) for delivery, offsets in times.items() for offset in offsets),
                      key=lambda pair: pair[1], reverse=True)
    assert seen == expected and pages == 3
    assert api.get("/api/recipients/nobody/tracking").json_body == {"recipient_id": "nobody", "items": [],
                                                                    "next": None}
    one = api.get("/api/recipients/ann/tracking", query={"limit": "1"}).json_body["items"][0]
    assert one["url"] == "https://shop.example.com/x" and one["label"] == "Shop" and one["kind"] == "click"


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "201"}, {"limit": "x"}, {"next": "%%%"},
                                   {"next": "eyJ4IjoxfQ"}])
def test_recipient_tracking_refuses_bad_paging(api: Any, query: dict[str, str]) -> None:
    response = api.get("/api/recipients/ann/tracking", query=query)
    assert response.status_code == 400 and response.json_body["error"] == "invalid_request"


def test_the_api_reads_only_by_key(api: Any, mta: Any) -> None:
    delivery_id = create_and_send(api, mta, ["ann"])
    put_log("one", [record(kind="click", delivery_id=delivery_id, log_id=1, url_id=4, ts=T0)], T0)
    workflow(FakeClock(T0 / 1000 + 600)).run()
    with tap() as observed:
        for route in ROUTES:
            assert api.get(route.format(id=delivery_id)).status_code == 200
        assert len(api.get("/api/recipients/ann/tracking").json_body["items"]) == 1
    # (BatchGetItem: a recipient's items by the keys their keys-only index gives)
    assert observed.operations("dynamodb") <= {"GetItem", "BatchGetItem", "Query"}
    assert observed.calls  # the tap saw the API's calls


def test_running_the_workflow_through_the_api(api: Any, mta: Any, client: Any) -> None:
    assert client.post("/api/workflow/run").status_code == 401
    delivery_id = create_and_send(api, mta, ["ann"])
    put_log("one", [record(kind="open", delivery_id=delivery_id, log_id=1, ts=T0), b"garbage\n"], T0)
    body = api.post("/api/workflow/run").json_body
    assert {key: body[key] for key in ("status", "objects", "lines", "hits_accepted", "rejected", "duplicates")} == {
        "status": "completed", "objects": 1, "lines": 2, "hits_accepted": 1, "rejected": {"not_json": 1},
        "duplicates": 0}
    assert isinstance(body["duration_ms"], int)
    assert api.post("/api/workflow/run").json_body["status"] == "idle"


def test_a_click_through_kinesis_and_firehose_shows_in_the_indicators(api: Any, mta: Any, client: Any,
                                                                     resources: Any) -> None:
    """The whole path in-process: tracked link -> Kinesis -> (pump) Firehose -> S3 -> workflow -> API."""
    delivery_id = create_and_send(api, mta, ["ann", "bob"])
    [message] = [m for m in OUTBOX.messages() if m.to == ["ann@example.net"]]
    html = message.to_dict()["html"]
    link = re.search(r'href="https://t\.example\.com(/r/[^"]+)"', html).group(1)
    pixel = re.search(r'src="https://t\.example\.com(/o/[^"]+)"', html).group(1)
    assert client.get(link, headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"}).status_code == 302
    assert client.get(pixel).status_code == 200
    [pump] = pumps_for(resources)
    assert pump.step() == 2 and pump.step() == 0
    s3 = boto3.client("s3")
    [log_object] = s3.list_objects_v2(Bucket=get_settings().redirection_log_bucket, Prefix=LOG_PREFIX)["Contents"]
    assert re.fullmatch(r"redirection-logs/\d{4}/\d{2}/\d{2}/\d{2}/sendtrail-local-redirection-logs-.+",
                        log_object["Key"])
    statistics = api.post("/api/workflow/run").json_body
    assert (statistics["objects"], statistics["hits_accepted"]) == (1, 2)
    indicators = api.get(f"/api/deliveries/{delivery_id}/indicators").json_body
    assert (indicators["opens_unique"], indicators["opens_total"], indicators["clicks_unique"],
            indicators["clicks_total"], indicators["success"]) == (1, 1, 1, 1, 2)
    assert indicators["rates"]["clicks_unique"] == 50.0
    [item] = api.get("/api/recipients/ann/tracking").json_body["items"][:1]
    assert item["ip"] == "203.0.113.0"  # the test client's address, truncated to its /24


def test_a_scanner_and_apples_proxy_beside_a_person(api: Any, mta: Any) -> None:
    """People first, every hit kept: a link scanner clicks every link within a second of delivery and Apple's
    proxy fetches the pixel; the person opens half a minute later and clicks one link."""
    delivery_id = create_and_send(api, mta, ["ann"], html='<p><a href="https://shop.example.com/x">Shop</a> '
                                  '<a href="https://shop.example.com/y">Sale</a></p>')
    settings = get_settings()
    log = boto3.client("dynamodb").get_item(TableName=settings.delivery_logs_table, Key={
        "delivery_id": {"S": delivery_id}, "log_id": {"N": "1"}})["Item"]
    sent = int(log["sent_at"]["N"])
    scanner = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 " \
              "Safari/537.36 Edg/131.0.0.0"
    person = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) " \
             "Version/18.1 Mobile/15E148 Safari/604.1"
    records = [record(kind="open", delivery_id=delivery_id, ts=sent + 2_000, ua="Mozilla/5.0", ip="17.58.97.0")]
    records += [record(kind="click", delivery_id=delivery_id, url_id=url_id, ts=sent + 3_000 + 200 * index,
                       ua=scanner, ip="40.107.22.0") for index, url_id in enumerate((4, 5))]
    records += [record(kind="open", delivery_id=delivery_id, ts=sent + 32_000, ua=person, ip="73.162.84.0"),
                record(kind="click", delivery_id=delivery_id, url_id=4, ts=sent + 45_000, ua=person,
                       ip="73.162.84.0")]
    # Two runs: the scanner's second click arrives after its first was counted.
    put_log("first", records[:2], sent)
    workflow(FakeClock(sent / 1000 + 600)).run()
    put_log("second", records[2:], sent)
    workflow(FakeClock(sent / 1000 + 660)).run()

    indicators = api.get(f"/api/deliveries/{delivery_id}/indicators").json_body
    assert (indicators["clicks_total"], indicators["opens_total"], indicators["opens_unique"]) == (3, 1, 1)
    assert (indicators["clicks_unique_human"], indicators["clicks_total_human"]) == (1, 1)
    assert (indicators["opens_unique_human"], indicators["opens_total_human"]) == (1, 1)
    assert indicators["reactivity_human"] == 100.0
    assert indicators["machine"]["hits"] == 3
    assert indicators["machine"]["by_reason"]["apple_proxy"] == 1
    assert indicators["machine"]["by_reason"]["scanner_address"] == 2
    items = api.get("/api/recipients/ann/tracking").json_body["items"]
    by_time = {item["at"] - sent: (item["class"], item["reasons"]) for item in items}
    assert by_time[2_000] == ("machine", ["apple_proxy"])
    assert by_time[3_000] == ("machine", ["scanner_address", "burst", "too_fast"])  # the proxy opened before
    assert by_time[32_000] == ("human", []) and by_time[45_000] == ("human", [])


def test_a_click_on_the_hidden_honeypot_link_is_a_machines(api: Any, mta: Any, client: Any, resources: Any) -> None:
    response = api.post("/api/deliveries", body={
        "name": "honeypot", "subject": "Hello", "from_address": "news@example.com", "html": SHOP_HTML,
        "recipients": [{"id": "ann", "email": "ann@example.net"}], "tracking": {"honeypot": True}})
    delivery_id = response.json_body["id"]
    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 202
    mta.send()
    [message] = [m for m in OUTBOX.messages() if m.to == ["ann@example.net"]]
    hidden = re.search(r'<a href="https://t\.example\.com(/r/[^"]+)" style="display:none', message.to_dict()["html"])
    assert hidden, "the hidden link is in the message"
    response = client.get(hidden.group(1), headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) "
                                                                  "AppleWebKit/537.36 Chrome/131.0.0.0 Safari/537.36"})
    assert response.status_code == 302 and response.headers["Location"] == "https://shop.example.com/"
    [pump] = pumps_for(resources)
    assert pump.step() == 1
    api.post("/api/workflow/run")
    indicators = api.get(f"/api/deliveries/{delivery_id}/indicators").json_body
    assert (indicators["clicks_total"], indicators["clicks_total_human"]) == (1, 0)
    assert indicators["machine"]["by_reason"]["honeypot"] == 1
