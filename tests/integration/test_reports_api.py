"""The reports over HTTP: routes, query parameters (400 with a reason), CSV pages, the reference page.

The numbers themselves are tests/integration/test_reports.py's; here the
answers are checked to be the service's, reached through the API Gateway
emulation with its authorizer.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest

from chalicelib.reports import activity, breakdown, domains, hot_clicks, throughput, tracking_log, urls
from tests.reports_harness import MINUTE, T0, play, send
from tests.tracking_logs import record

REPORTS = ["hot-clicks", "urls", "timeline", "time-to-react", "breakdown", "user-agents", "indicators", "domains",
           "tracking"]
HOSTILE_LABEL = '=HYPERLINK("https://evil.example/","open")'


@pytest.fixture
def delivered(api: Any, mta: Any) -> str:
    html = ('<p><a href="https://shop.example.com/sale">Sale</a> <a href="https://shop.example.com/new">New</a> '
            '<a href="{{unsubscribe_url}}">stop</a></p>')
    delivery_id = send(api, mta, [f"p{index}@example.net" for index in range(1, 6)], html=html,
                       tracking={"urls": [{"match": "https://shop.example.com/sale", "label": HOSTILE_LABEL}]})
    play([record(kind="open", delivery_id=delivery_id, log_id=1, ts=T0),
          record(kind="click", delivery_id=delivery_id, log_id=1, url_id=4, ts=T0 + MINUTE),
          record(kind="click", delivery_id=delivery_id, log_id=2, url_id=4, ts=T0 + 70 * MINUTE),
          record(kind="click", delivery_id=delivery_id, log_id=2, url_id=5, ts=T0 + 71 * MINUTE)])
    return delivery_id


def _csv(response: Any) -> list[list[str]]:
    assert response.headers["Content-Type"].startswith("text/csv"), response.headers
    body = response.body.decode("utf-8") if isinstance(response.body, bytes) else response.body
    return list(csv.reader(io.StringIO(body)))


@pytest.mark.parametrize("report", REPORTS)
def test_report_routes_need_the_token_and_a_known_delivery(api: Any, client: Any, report: str) -> None:
    assert client.get(f"/api/deliveries/0011223344556677/{report}").status_code == 401
    for unknown in ("0011223344556677", "not-a-delivery"):
        response = api.get(f"/api/deliveries/{unknown}/{report}")
        assert response.status_code == 404 and response.json_body["error"] == "not_found", report


def test_each_report_answers_what_its_service_computes(api: Any, delivered: str) -> None:
    def body(path: str, **query: str) -> Any:
        response = api.get(f"/api/deliveries/{delivered}/{path}", query=query or None)
        assert response.status_code == 200, (path, response.json_body)
        assert response.headers["Content-Type"] == "application/json"
        return response.json_body

    assert body("hot-clicks") == hot_clicks.hot_clicks(delivered).model_dump(mode="json")
    assert body("time-to-react") == activity.time_to_react(delivered).model_dump(mode="json")
    for group in ("url", "label", "category"):
        assert body("urls", group=group) == urls.urls(delivered, group).model_dump(mode="json")
    assert body("urls") == body("urls", group="url")
    for bucket in ("5m", "1h", "1d"):
        assert body("timeline", bucket=bucket) == activity.timeline(delivered, bucket).model_dump(mode="json")
    assert [row["clicks"] for row in body("timeline", bucket="1h")["buckets"]] == [1, 2]
    for by in ("os", "device", "browser", "client"):
        assert body("breakdown", by=by) == breakdown.breakdown(delivered, by).model_dump(mode="json")
    assert body("breakdown") == body("breakdown", by="os")
    assert body("domains") == domains.domains(delivered).model_dump(mode="json")


@pytest.mark.parametrize(("path", "query", "field"), [
    ("timeline", {"bucket": "7m"}, "bucket"),
    ("urls", {"group": "domain"}, "group"),
    ("urls", {"format": "xml"}, "format"),
    ("breakdown", {"by": "country"}, "by"),
    ("logs", {"limit": "0"}, "limit"),
    ("logs", {"limit": "ten"}, "limit"),
    ("logs", {"limit": "500"}, "limit"),  # more than a JSON page; a CSV page may
    ("logs", {"status": "lost"}, "status"),
    ("logs", {"next": "not-a-cursor"}, "next"),
    ("tracking", {"kind": "view"}, "kind"),
    ("tracking", {"limit": "201"}, "limit"),
    ("tracking", {"next": "eyJ4IjoxfQ"}, "next"),  # a cursor, but not one of this route's
])
def test_a_bad_query_parameter_is_a_400_naming_it(api: Any, delivered: str, path: str, query: dict[str, str],
                                                  field: str) -> None:
    response = api.get(f"/api/deliveries/{delivered}/{path}", query=query)
    assert response.status_code == 400, response.json_body
    body = response.json_body
    assert body["error"] == "invalid_request" and field in body["message"]
    assert [item["field"] for item in body["fields"]] == [field]


def test_the_timeline_refusal_says_which_buckets_exist(api: Any, delivered: str) -> None:
    message = api.get(f"/api/deliveries/{delivered}/timeline", query={"bucket": "7m"}).json_body["message"]
    assert all(bucket in message for bucket in ("5m", "1h", "1d")), message


def test_delivery_logs_as_csv_pages_that_append_into_one_file(api: Any, delivered: str) -> None:
    everything = api.get(f"/api/deliveries/{delivered}/logs").json_body["items"]
    rows: list[list[str]] = []
    query: dict[str, str] = {"format": "csv", "limit": "2"}
    pages = 0
    while True:
        response = api.get(f"/api/deliveries/{delivered}/logs", query=query)
        assert response.status_code == 200
        assert response.headers["Content-Disposition"] == f'attachment; filename="delivery-{delivered}-logs.csv"'
        rows += _csv(response)
        pages += 1
        link = response.headers.get("Link")
        if not link:
            break
        match = re.fullmatch(r'<\?([^>]*)>; rel="next"', link)
        assert match, link
        query = dict(pair.split("=", 1) for pair in match.group(1).split("&"))
        assert query["format"] == "csv" and query["limit"] == "2"
    assert pages == 3
    header, data = rows[0], rows[1:]
    assert header[:4] == ["log_id", "recipient_id", "email", "status"] and "log_id" not in sum(data, [])
    assert [int(row[0]) for row in data] == [item["log_id"] for item in everything] == [1, 2, 3, 4, 5]
    assert [row[header.index("email")] for row in data] == [item["email"] for item in everything]


def test_accept_text_csv_answers_csv_too(api: Any, delivered: str) -> None:
    response = api.get(f"/api/deliveries/{delivered}/logs", headers={"Accept": "text/csv"})
    assert len(_csv(response)) == 1 + 5
    assert "Link" not in response.headers


def test_a_csv_page_may_be_larger_than_a_json_page(api: Any, delivered: str) -> None:
    response = api.get(f"/api/deliveries/{delivered}/logs", query={"format": "csv", "limit": "1000"})
    assert response.status_code == 200 and len(_csv(response)) == 6
    assert api.get(f"/api/deliveries/{delivered}/logs", query={"format": "csv", "limit": "1001"}).status_code == 400


def test_the_url_report_as_csv_with_spreadsheet_safe_cells(api: Any, delivered: str) -> None:
    report = api.get(f"/api/deliveries/{delivered}/urls", query={"group": "label"}).json_body
    rows = _csv(api.get(f"/api/deliveries/{delivered}/urls", query={"group": "label", "format": "csv"}))
    header = rows[0]
    assert header[:3] == ["key", "url_ids", "urls"]
    assert [row[header.index("clicks_total")] for row in rows[1:]] == [str(row["clicks_total"])
                                                                       for row in report["rows"]]
    keys = [row[0] for row in rows[1:]]
    assert "'" + HOSTILE_LABEL in keys and HOSTILE_LABEL not in keys  # a formula is never a formula


def test_a_recipients_tracking_as_csv(api: Any, delivered: str) -> None:
    rows = _csv(api.get("/api/recipients/r2/tracking", query={"format": "csv"}))
    header = rows[0]
    assert header[:3] == ["delivery_id", "log_id", "hit_id"]
    assert [(row[header.index("kind")], row[header.index("url_id")]) for row in rows[1:]] == [
        ("click", "5"), ("click", "4")]
    json_page = api.get("/api/recipients/r2/tracking", query={"limit": "1"}).json_body
    csv_page = api.get("/api/recipients/r2/tracking", query={"limit": "1", "format": "csv"})
    assert len(_csv(csv_page)) == 2 and "next=" + json_page["next"] in csv_page.headers["Link"]


def test_the_reference_page_and_its_assets_are_served_without_the_token(client: Any) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    html = page.body.decode() if isinstance(page.body, bytes) else page.body
    for asset in re.findall(r'(?:src|href)="(docs/[^"]+)"', html):
        response = client.get("/" + asset)
        assert response.status_code == 200 and len(response.body) > 100, asset
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/docs/../app.py").status_code in (403, 404)
    assert client.get("/docs/swagger-ui-bundle.js.map").status_code == 404
    assert client.get("/api/openapi.json").status_code == 401


def test_the_delivery_tracking_tab_pages_newest_first_by_kind(api: Any, delivered: str) -> None:
    service = tracking_log.delivery_tracking(delivered, None, 200)
    seen, query = [], {"limit": "2"}
    while True:
        body = api.get(f"/api/deliveries/{delivered}/tracking", query=query).json_body
        seen += body["items"]
        if not body["next"]:
            break
        query = {"limit": "2", "next": body["next"]}
    assert seen == [item.model_dump(mode="json", by_alias=True) for item in service.items]
    assert all(item["class"] in ("human", "machine") and isinstance(item["reasons"], list) for item in seen)
    assert [(item["kind"], item["recipient_id"]) for item in seen] == [
        ("click", "r2"), ("click", "r2"), ("click", "r1"), ("open", "r1")]
    clicks = api.get(f"/api/deliveries/{delivered}/tracking", query={"kind": "click"}).json_body
    assert clicks["kind"] == "click" and [item["kind"] for item in clicks["items"]] == ["click"] * 3


def test_throughput_across_deliveries(api: Any, delivered: str) -> None:
    recent = api.get("/api/throughput").json_body  # the last 24 hours, per hour: the delivery was just sent
    assert recent["bucket"] == "1h" and recent["messages"] == 5
    window = {"from": str(recent["start"]), "to": str(recent["end"])}
    for bucket in ("1h", "1d"):
        answer = api.get("/api/throughput", query={**window, "bucket": bucket}).json_body
        expected = throughput.throughput(recent["start"], recent["end"], bucket).model_dump(mode="json")
        assert answer == expected
    for query, field in (({"bucket": "5m"}, "bucket"), ({"from": "yesterday"}, "from"), ({"to": "-1"}, "to"),
                         ({"from": "2000", "to": "1000"}, "from")):
        response = api.get("/api/throughput", query=query)
        assert response.status_code == 400 and response.json_body["fields"][0]["field"] == field, query
