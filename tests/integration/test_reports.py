"""The report service (chalicelib/reports) over moto: numbers checked against hand-computed answers,
and the reads each report makes counted (a bounded number of GetItem/Query, never a Scan)."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.errors import InvalidField, NotFound
from chalicelib.reports import activity
from tests.reports_harness import MINUTE, T0, play, reads, send, set_started
from tests.tracking_harness import pin_layout
from tests.tracking_logs import record


@pytest.fixture(autouse=True)
def _items_layout(request: pytest.FixtureRequest) -> None:
    """These tests read the items layout's tables (the append layout's: test_tracking_append_layout.py)."""
    pin_layout(request, "items")


EMAILS = [f"p{index}@example.net" for index in range(1, 11)]


def _opens_and_clicks(delivery_id: str) -> list[dict[str, Any]]:
    """A known pattern, each hit from another recipient (the 1-minute rule drops none).

    Opens (10): 4 in the window [T0, T0+5m), 2 in [T0+5m, T0+10m), 2 in [T0+15m, T0+20m),
    2 in [T0+2h, T0+2h05).  Clicks (4): 1 in [T0, T0+5m), 3 in [T0+1h, T0+1h05).
    """
    opens = [(1, 0), (2, 1), (3, 2), (4, 4), (5, 6), (6, 9), (7, 15), (8, 19), (9, 120), (10, 121)]
    clicks = [(1, 3), (2, 60), (3, 61), (4, 64)]
    return ([record(kind="open", delivery_id=delivery_id, log_id=log_id, ts=T0 + minute * MINUTE)
             for log_id, minute in opens]
            + [record(kind="click", delivery_id=delivery_id, log_id=log_id, url_id=4, ts=T0 + minute * MINUTE)
               for log_id, minute in clicks])


@pytest.fixture
def reacted(api: Any, mta: Any) -> str:
    delivery_id = send(api, mta, EMAILS)
    set_started(delivery_id, T0 + MINUTE)  # sending started one minute into the first window
    play(_opens_and_clicks(delivery_id))
    return delivery_id


def test_time_to_react_against_hand_computed_percentiles(reacted: str) -> None:
    with reads() as calls:
        report = activity.time_to_react(reacted)
    assert calls == {"dynamodb.GetItem": 1, "dynamodb.Query": 1}
    # Sending started at S = T0+60 s. Windows as seconds after S, the first clipped at 0:
    #   opens  W0 (0, 240): 4   W1 (240, 540): 2   W3 (840, 1140): 2   W24 (7140, 7440): 2   total 10
    #   25% = 2.5 opens: in W0, 0 + 2.5/4 x 240 = 150 s
    #   50% = 5:   4 before W1, 240 + 1/2 x 300 = 390 s
    #   75% = 7.5: 6 before W3, 840 + 1.5/2 x 300 = 1065 s
    #   90% = 9:   8 before W24, 7140 + 1/2 x 300 = 7290 s
    #   by 1 h (3600 s): W0+W1+W3 = 8 of 10 = 80%; by 3 h and 24 h: all
    assert report.started_at == T0 + MINUTE
    assert report.opens.total == 10
    assert [(p.percent, p.seconds) for p in report.opens.percentiles] == [
        (25, 150.0), (50, 390.0), (75, 1065.0), (90, 7290.0)]
    assert [(s.label, s.seconds, s.percent) for s in report.opens.shares] == [
        ("1h", 3600, 80.0), ("3h", 10800, 100.0), ("24h", 86400, 100.0)]
    #   clicks W0 (0, 240): 1   W12 (3540, 3840): 3   total 4
    #   25% = 1:   0 + 1/1 x 240 = 240 s
    #   50% = 2:   1 before W12, 3540 + 1/3 x 300 = 3640 s
    #   75% = 3:   3540 + 2/3 x 300 = 3740 s
    #   90% = 3.6: 3540 + 2.6/3 x 300 = 3800 s
    #   by 1 h: 1 + 3 x (3600-3540)/300 = 1.6 of 4 = 40%
    assert report.clicks.total == 4
    assert [(p.percent, p.seconds) for p in report.clicks.percentiles] == [
        (25, 240.0), (50, 3640.0), (75, 3740.0), (90, 3800.0)]
    assert [s.percent for s in report.clicks.shares] == [40.0, 100.0, 100.0]
    # The curve: the cumulative shares at each window's end (W0, W1, W3, W12, W24).
    assert [(point.seconds, point.opens_percent, point.clicks_percent) for point in report.curve] == [
        (240.0, 40.0, 25.0), (540.0, 60.0, 25.0), (1140.0, 80.0, 25.0), (3840.0, 80.0, 100.0),
        (7440.0, 100.0, 100.0)]


def test_time_to_react_without_hits_says_so(api: Any, mta: Any) -> None:
    delivery_id = send(api, mta, EMAILS[:1])
    report = activity.time_to_react(delivery_id)
    assert report.opens.total == 0 and all(p.seconds is None for p in report.opens.percentiles)
    assert [s.percent for s in report.clicks.shares] == [0.0, 0.0, 0.0] and report.curve == []
    assert report.started_at is not None  # the MTA started sending


def _indicators(delivery_id: str) -> dict[str, Any]:
    from chalicelib.reports.common import stores

    return stores().tracking.indicators(delivery_id) or {}


@pytest.mark.parametrize("bucket, expected", [
    # 5m: the stored windows as they are
    ("5m", [(0, 4, 1), (5, 2, 0), (15, 2, 0), (60, 0, 3), (120, 2, 0)]),
    # 1h: 10:00-11:00 holds W0, W1, W3 (8 opens, 1 click); 11:00 the 3 clicks; 12:00 the last 2 opens
    ("1h", [(0, 8, 1), (60, 0, 3), (120, 2, 0)]),
    # 1d: everything on 2025-03-01 (UTC), whose day starts 10 h before T0
    ("1d", [(-600, 10, 4)]),
])
def test_timeline_rolls_the_windows_up(reacted: str, bucket: str, expected: list[tuple[int, int, int]]) -> None:
    with reads() as calls:
        report = activity.timeline(reacted, bucket)  # type: ignore[arg-type]
    assert calls == {"dynamodb.GetItem": 1, "dynamodb.Query": 1}
    assert [((row.start - T0) // MINUTE, row.opens, row.clicks) for row in report.buckets] == expected
    assert (report.opens_total, report.clicks_total) == (10, 4)
    # People's hits (the classification's) add up to the delivery's human indicators.
    indicators = _indicators(reacted)
    assert (report.opens_total_human, report.clicks_total_human) == (indicators.get("opens_total_human", 0),
                                                                     indicators.get("clicks_total_human", 0))
    assert report.opens_total_human == activity.time_to_react(reacted).opens_human.total


def test_reports_refuse_unknown_deliveries_and_buckets(reacted: str) -> None:
    for unknown in ("0011223344556677", "nope"):
        with pytest.raises(NotFound):
            activity.time_to_react(unknown)
    with pytest.raises(InvalidField):
        activity.timeline(reacted, "2h")  # type: ignore[arg-type]


# --- URLs and click streams, and hot clicks --------------------------------------------

LINKS_HTML = ('<html><body><p>Hi {{first_name}},</p>'
              '<a href="https://shop.example.com/a?u={{id}}">Spring sale</a> '
              '<a href="https://shop.example.com/b">Spring sale</a> '
              '<a href="https://blog.example.com/c">Blog</a> '
              '<a href="https://shop.example.com/a?u={{id}}"><img src="https://cdn.example.com/x.png" alt="banner"></a>'
              '<p><a href="{{unsubscribe_url}}">stop</a> <a href="{{mirror_url}}">view online</a></p>'
              '</body></html>')
LINKS_TEXT = "Sale: https://shop.example.com/a?u={{id}}\nStop: {{unsubscribe_url}}\n"
CATEGORIES = [{"match": "https://shop.example.com/a?u={{id}}", "category": "Products"},
              {"match": "https://shop.example.com/b", "category": "Products"},
              {"match": "Blog", "category": "Content"}]
A, B, C, OPTOUT, MIRROR = 4, 5, 6, 2, 3


@pytest.fixture
def clicked(api: Any, mta: Any) -> str:
    """Five recipients' clicks: A is clicked 3 times by 2 people, B 2 by 2, C 4 by 2; 1 opt-out, 1 mirror view."""
    delivery_id = send(api, mta, EMAILS[:5], html=LINKS_HTML, text=LINKS_TEXT, tracking={"urls": CATEGORIES})
    pattern = [(1, "click", A), (1, "click", A), (1, "click", B), (2, "click", A), (2, "click", C),
               (3, "click", B), (3, "optout", OPTOUT), (4, "click", C), (4, "click", C), (4, "click", C),
               (5, "mirror", MIRROR)]
    play([record(kind=kind, delivery_id=delivery_id, log_id=log_id, url_id=url_id, ts=T0 + index * MINUTE)
          for index, (log_id, kind, url_id) in enumerate(pattern)])
    return delivery_id


def _rows(report: Any) -> list[tuple[Any, ...]]:
    return [(row.key, row.url_ids, row.clicks_total, row.clicks_unique, row.clicks_total_rate,
             row.clicks_unique_rate, row.share_percent) for row in report.rows]


def test_urls_grouped_by_url_label_and_category(clicked: str) -> None:
    from chalicelib.reports import urls

    with reads() as calls:
        by_url = urls.urls(clicked, "url")
    assert calls == {"dynamodb.GetItem": 2, "dynamodb.Query": 2}  # summary, links; the URL counters (grouped, old)
    # 5 messages accepted (success); 11 URL hits in all: A 3, B 2, C 4, opt-out 1, mirror 1.
    assert (by_url.success, by_url.clicks_total) == (5, 11)
    # Rates are of success (3/5 = 60%), shares of the 11 hits (3/11 = 27.27%).
    assert _rows(by_url) == [
        ("https://blog.example.com/c", [C], 4, 2, 80.0, 40.0, 36.36),
        ("https://shop.example.com/a?u={{id}}", [A], 3, 2, 60.0, 40.0, 27.27),
        ("https://shop.example.com/b", [B], 2, 2, 40.0, 40.0, 18.18),
        ("Unsubscribe", [OPTOUT], 1, 1, 20.0, 20.0, 9.09),
        ("Mirror page", [MIRROR], 1, 1, 20.0, 20.0, 9.09),
    ]
    # By label, A and B ("Spring sale") add up: 3+2 = 5 hits, 2+2 = 4 clickers as Campaign sums them
    # (recipient 1 clicked both and counts twice): 5/5 = 100%, 4/5 = 80%, 5/11 = 45.45%.
    assert _rows(urls.urls(clicked, "label"))[:2] == [
        ("Spring sale", [A, B], 5, 4, 100.0, 80.0, 45.45),
        ("Blog", [C], 4, 2, 80.0, 40.0, 36.36),
    ]
    # By category: Products = A+B, Content = C, and sendtrail's own pages have none: 1+1 = 2, 2/11 = 18.18%.
    by_category = urls.urls(clicked, "category")
    assert _rows(by_category) == [
        ("Products", [A, B], 5, 4, 100.0, 80.0, 45.45),
        ("Content", [C], 4, 2, 80.0, 40.0, 36.36),
        ("", [OPTOUT, MIRROR], 2, 2, 40.0, 40.0, 18.18),
    ]
    assert by_category.rows[2].types == ["optout", "mirror"]
    with pytest.raises(InvalidField):
        urls.urls(clicked, "domain")  # type: ignore[arg-type]


def test_hot_clicks_shows_the_message_with_each_links_share(clicked: str) -> None:
    from chalicelib.reports import hot_clicks

    with reads() as calls:
        report = hot_clicks.hot_clicks(clicked)
    # summary, content, links; the URL counters (grouped items, per-counter items of an older version)
    assert calls == {"dynamodb.GetItem": 3, "dynamodb.Query": 2}
    # 11 URL hits are the 100%: A 3 (27.27%), B 2 (18.18%), C 4 (36.36%) are shown; the opt-out and the
    # mirror view (2, 18.18%) are not. 27.27 + 18.18 + 36.36 + 18.18 = 99.99: 100 within rounding.
    assert report.clicks_total == 11
    assert [(link.url_id, link.label, link.clicks_total, link.clicks_unique, link.percent, link.in_html,
             link.in_text) for link in report.links] == [
        (A, "Spring sale", 3, 2, 27.27, True, True), (B, "Spring sale", 2, 2, 18.18, True, False),
        (C, "Blog", 4, 2, 36.36, True, False)]
    assert (report.shown_percent, report.hidden_clicks, report.hidden_percent) == (81.82, 2, 18.18)
    # The HTML is the author's, placeholders and all, each shown link marked; no pixel, no recipient's data.
    marked = LINKS_HTML
    for url, url_id in (("https://shop.example.com/a?u={{id}}", A), ("https://shop.example.com/b", B),
                        ("https://blog.example.com/c", C)):
        marked = marked.replace(f'href="{url}"', f'href="{url}" data-sendtrail-link="{url_id}"')
    assert report.html == marked
    assert report.subject == "Hi {{first_name}}" and "Person" not in report.html
    assert [(segment.text, segment.url_id) for segment in report.text or []] == [
        ("Sale: ", None), ("https://shop.example.com/a?u={{id}}", A), ("\nStop: {{unsubscribe_url}}\n", None)]


def test_hot_clicks_of_a_message_without_clicks_or_text(api: Any, mta: Any) -> None:
    from chalicelib.reports import hot_clicks

    html = ("<a href='https://x.example.com/a'>A</a><a href=https://x.example.com/b>B</a>"
            '<a href="https://x.example.com/prefs?a=1&amp;b=2">Preferences</a>')
    prefs = {"match": "Preferences", "type": "optout"}  # a tracked link of type opt-out: counted, never shown
    report = hot_clicks.hot_clicks(send(api, mta, EMAILS[:1], html=html, tracking={"urls": [prefs]}))
    assert report.text is None and report.clicks_total == 0 and report.hidden_percent == 0.0
    assert report.html == ("<a href='https://x.example.com/a' data-sendtrail-link=\"4\">A</a>"
                           '<a href="https://x.example.com/b" data-sendtrail-link="5">B</a>'
                           '<a href="https://x.example.com/prefs?a=1&amp;b=2">Preferences</a>')
    assert [(link.url_id, link.percent) for link in report.links] == [(4, 0.0), (5, 0.0)]


def test_breakdown_by_os_device_browser_and_client(api: Any, mta: Any) -> None:
    from chalicelib.reports import breakdown
    from tests.tracking_logs import CHROME, GMAIL_PROXY, IPHONE_MAIL

    delivery_id = send(api, mta, EMAILS[:6])
    # Opens: 3 from iPhone Mail, 2 through Gmail's image proxy, 1 from Chrome on Windows.
    # Clicks: 3 from Chrome on Windows, 1 from the iPhone.
    pattern = [("open", IPHONE_MAIL)] * 3 + [("open", GMAIL_PROXY)] * 2 + [("open", CHROME)] + \
              [("click", CHROME)] * 3 + [("click", IPHONE_MAIL)]
    play([record(kind=kind, delivery_id=delivery_id, log_id=index % 6 + 1, ua=ua, ts=T0 + index * 2 * MINUTE)
          for index, (kind, ua) in enumerate(pattern)])
    with reads() as calls:
        by_device = breakdown.breakdown(delivery_id, "device")
    assert calls == {"dynamodb.GetItem": 1, "dynamodb.Query": 2}  # the families' grouped and per-counter items
    # Devices: Mobile 3 opens (50%) + 1 click (25%); Desktop (Windows, also behind the Gmail proxy's
    # "Windows NT 5.1") 3 opens (50%) + 3 clicks (75%).
    assert [(row.value, row.opens, row.clicks, row.opens_percent, row.clicks_percent) for row in by_device.rows] == [
        ("Desktop", 3, 3, 50.0, 75.0), ("Mobile", 3, 1, 50.0, 25.0)]
    assert (by_device.opens_total, by_device.clicks_total) == (6, 4)
    clients = breakdown.breakdown(delivery_id, "client")
    # 3/6 = 50%, 2/6 = 33.33%, 1/6 = 16.67%
    assert [(row.value, row.opens, row.opens_percent) for row in clients.rows] == [
        ("Apple Mail", 3, 50.0), ("Gmail (image proxy)", 2, 33.33), ("Web browser", 1, 16.67)]
    assert {row.value for row in breakdown.breakdown(delivery_id, "os").rows} == {"iOS", "Windows"}
    indicators = _indicators(delivery_id)
    assert sum(row.opens_human for row in clients.rows) == indicators.get("opens_total_human", 0) > 0
    assert sum(row.clicks_human for row in clients.rows) == indicators.get("clicks_total_human", 0)
    assert breakdown.breakdown(delivery_id, "browser").clicks_total == 4
    with pytest.raises(InvalidField):
        breakdown.breakdown(delivery_id, "mail_client")  # type: ignore[arg-type]


# --- statistics by domain ----------------------------------------------------------

DOMAIN_EMAILS = ["a@gmail.com", "b@gmail.com", "c@Gmail.com", "d@outlook.com", "e@outlook.com",
                 "bounce@simulator.amazonses.com", "complaint@simulator.amazonses.com",
                 "success@simulator.amazonses.com", "f@example.org"]


def test_statistics_by_domain_kept_by_the_worker_the_events_and_the_workflow(api: Any, mta: Any) -> None:
    from chalicelib.reports import domains
    from infra.local_runtime import ses_events as build
    from infra.local_runtime.ses_outbox import OUTBOX

    delivery_id = send(api, mta, DOMAIN_EMAILS)
    mta.events()  # the simulator: delivered, except bounce@ (hard) and complaint@ (delivered, then complaint)
    [message] = [m for m in OUTBOX.messages() if m.to == ["e@outlook.com"]]
    mail = build.mail_object(message)
    soft = build.bounce_event(mail, message.accepted_at + 5, "Transient", "MailboxFull", "4.2.2")
    assert mta.publisher.publish(message, [soft]) == 1
    mta.triggers["ses_events"].drain()
    # Opens and clicks (recipients): log 1 opens, clicks, opens again; log 2 opens; log 4 clicks (an open too);
    # log 8's open is a browser's declared prefetch. The clicks are dated before the send: faster than anyone
    # reads (too_fast), so no person clicked; the opens of logs 1 and 2 are people's, log 8's a machine's.
    play([record(kind="open", delivery_id=delivery_id, log_id=1, ts=T0),
          record(kind="click", delivery_id=delivery_id, log_id=1, url_id=4, ts=T0 + MINUTE),
          record(kind="open", delivery_id=delivery_id, log_id=1, ts=T0 + 9 * MINUTE),
          record(kind="open", delivery_id=delivery_id, log_id=2, ts=T0 + 2 * MINUTE),
          record(kind="click", delivery_id=delivery_id, log_id=4, url_id=5, ts=T0 + 3 * MINUTE),
          record(kind="open", delivery_id=delivery_id, log_id=8, ts=T0 + 4 * MINUTE, purpose="prefetch")])

    with reads() as calls:
        report = domains.domains(delivery_id, top=2)
    assert calls == {"dynamodb.GetItem": 1, "dynamodb.Query": 2}  # the domain# items, the tally (gmail, outlook)

    def row(entry: Any) -> tuple[Any, ...]:
        return (entry.domain, entry.domains, entry.sent, entry.delivered, entry.bounces_hard, entry.bounces_soft,
                entry.complaints, entry.opens, entry.clicks, entry.opens_human, entry.clicks_human)

    # gmail.com: 3 sent and delivered, 2 opened (logs 1, 2; people), 1 clicked (not a person).
    # simulator: 3 sent; success@ delivered (its open: a prefetch), bounce@ hard, complaint@ delivered then
    # complained.
    # other = outlook.com (2 sent: d delivered and clicked, e delivered then soft-bounced) + example.org (1).
    assert [row(entry) for entry in report.rows] == [
        ("gmail.com", 1, 3, 3, 0, 0, 0, 2, 1, 2, 0),
        ("simulator.amazonses.com", 1, 3, 1, 1, 0, 1, 1, 0, 0, 0),
        ("other", 2, 3, 2, 0, 1, 0, 1, 1, 0, 0),
    ]
    # Rates of sent: 2/3 = 66.67%, 1/3 = 33.33%.
    gmail, simulator, other = report.rows
    assert (gmail.delivered_rate, gmail.opens_rate, gmail.clicks_rate) == (100.0, 66.67, 33.33)
    assert (gmail.opens_human_rate, gmail.clicks_human_rate, simulator.opens_rate, simulator.opens_human_rate) == (
        66.67, 0.0, 33.33, 0.0)
    assert (simulator.bounces_hard_rate, simulator.complaints_rate) == (33.33, 33.33)
    assert (other.delivered_rate, other.bounces_soft_rate) == (66.67, 33.33)
    # All 9: delivered 3+1+1+1 = 6 (66.67%), 1 hard, 1 soft, 1 complaint (11.11% each), 4 opened (2 people),
    # 2 clicked (no person).
    assert row(report.total) == ("all", 4, 9, 6, 1, 1, 1, 4, 2, 2, 0)
    assert (report.total.delivered_rate, report.total.bounces_soft_rate, report.total.clicks_rate) == (
        66.67, 11.11, 22.22)
    # The same numbers as the delivery's own counters.
    body = api.get(f"/api/deliveries/{delivery_id}").json_body
    assert body["counts"]["delivered"] == report.total.delivered

    # SES publishes again (at least once): nothing counts twice.
    assert mta.publisher.publish(message, [soft, build.send_event(mail)]) == 2
    [complained] = [m for m in OUTBOX.messages() if m.to == ["complaint@simulator.amazonses.com"]]
    assert mta.publisher.publish(complained, build.simulated_events(complained)) == 3
    mta.triggers["ses_events"].drain()
    assert domains.domains(delivery_id, top=2) == report


# --- throughput across deliveries ----------------------------------------------------

def test_throughput_per_hour_against_hand_computed_figures(resources: Any) -> None:
    import boto3

    from chalicelib.data.throughput import hour_update
    from chalicelib.reports import throughput
    from chalicelib.settings import get_settings

    table = get_settings().tracking_stats_table
    hour = 3_600_000
    written = [  # (shard, when, messages, bytes): what send workers' transactions would add
        (0, T0 + 5 * MINUTE, 100, 3_600_000), (5, T0 + 50 * MINUTE, 50, 900_000),  # hour 0, two shards
        (3, T0 + hour, 30, 450_000),  # hour 1
        (7, T0 + 3 * hour + MINUTE, 20, 90_000),  # hour 3
        (2, T0 - MINUTE, 999, 999),  # the hour before: outside the range
    ]
    for shard, when, messages, size in written:
        boto3.client("dynamodb").transact_write_items(TransactItems=[
            hour_update(table, when, messages, size, 2_000_000_000, pick=lambda _, shard=shard: shard)])
    with reads() as calls:
        report = throughput.throughput(T0 + 10 * MINUTE, T0 + 3 * hour + 5 * MINUTE)
    assert calls == {"dynamodb.Query": 8}  # one per counter shard
    # hour 0: 150 messages, 4,500,000 bytes: 4.5e6 x 8 / 3600 s = 10,000 bit/s
    # hour 1: 30 messages, 450,000 bytes: 1,000 bit/s;  hour 3: 20 messages, 90,000 bytes: 200 bit/s
    assert [((row.start - T0) // hour, row.messages, row.bytes, row.messages_per_hour, row.bits_per_second)
            for row in report.rows] == [(0, 150, 4_500_000, 150.0, 10_000.0), (1, 30, 450_000, 30.0, 1_000.0),
                                        (3, 20, 90_000, 20.0, 200.0)]
    assert (report.messages, report.bytes, report.peak_messages_per_hour) == (200, 5_040_000, 150.0)
    assert (report.start, report.end) == (T0, T0 + 4 * hour - 1)
    # By day, the hour before T0 counts too (same UTC day): 1,199 messages, 1,199 / 24 = 49.96 -> 50.0 an hour;
    # 5,040,999 bytes x 8 / 86,400 s = 466.759 -> 466.76 bit/s.
    [day] = throughput.throughput(T0, T0, "1d").rows
    assert (day.messages, day.bytes, day.messages_per_hour, day.bits_per_second) == (
        1199, 5_040_999, 50.0, 466.76)
    for bad in ({"from_ms": T0, "to_ms": T0 - 1}, {"from_ms": T0, "to_ms": T0 + 93 * 24 * hour},
                {"from_ms": T0, "to_ms": T0, "bucket": "5m"}):
        with pytest.raises(InvalidField):
            throughput.throughput(**bad)  # type: ignore[arg-type]


def test_the_send_worker_counts_throughput_with_the_delivery(api: Any, mta: Any) -> None:
    from chalicelib.clock import now_ms
    from chalicelib.reports import throughput

    delivery_id = send(api, mta, EMAILS[:7])
    summary = api.get(f"/api/deliveries/{delivery_id}").json_body
    report = throughput.throughput(now_ms() - 3_600_000, now_ms())
    assert report.messages == 7 == summary["throughput"]["messages"]
    assert report.bytes == summary["throughput"]["bytes"] > 0


# --- the delivery's Tracking tab ------------------------------------------------------

def test_the_tracking_tab_pages_newest_first_at_a_bounded_cost(api: Any, mta: Any) -> None:
    from chalicelib.reports import tracking_log
    from tests.tracking_logs import IPHONE_MAIL

    delivery_id = send(api, mta, EMAILS[:5])
    # Run 1: 120 hits, one a minute, opens and clicks in turn, recipients 1..5 in turn.
    first = [record(kind=("open", "click")[index % 2], delivery_id=delivery_id, log_id=index % 5 + 1,
                    url_id=None if index % 2 == 0 else 4, ts=T0 + index * MINUTE) for index in range(120)]
    # Run 2: 10 more in the same windows (half a minute later), an opt-out and a mirror view among them.
    second = [record(kind=kind, delivery_id=delivery_id, log_id=3, ua=IPHONE_MAIL, ts=T0 + index * 7 * MINUTE + 30_000)
              for index, kind in enumerate(["click"] * 8 + ["optout", "mirror"])]
    play(first, "first")
    play(second, "second")
    everything = sorted(first + second, key=lambda hit: (hit["ts"], hit["hit_id"]), reverse=True)

    seen: list[Any] = []
    cursor, costs = None, []
    while True:
        with reads() as calls:
            page = tracking_log.delivery_tracking(delivery_id, limit=25, before=cursor)
        costs.append(calls)
        seen += page.items
        cursor = page.next
        if cursor is None:
            break
    assert [(item.at, item.hit_id) for item in seen] == [(hit["ts"], hit["hit_id"]) for hit in everything]
    assert len(costs) == 6  # 130 hits, 25 a page
    # Every page, the first as the deepest: the summary, the links, one Query per kind, and the classes of
    # the page's hits from their recipients' tracking items (one BatchGetItem: at most 100 recipients).
    assert all(calls == {"dynamodb.GetItem": 2, "dynamodb.Query": 4, "dynamodb.BatchGetItem": 1}
               for calls in costs), costs
    newest = seen[0]
    assert (newest.kind, newest.recipient_id, newest.log_id, newest.url, newest.label) == (
        "click", "r5", 5, "https://shop.example.com/sale?u={{id}}", "Sale")
    assert seen[1].kind == "open" and seen[1].url == "" and seen[1].label == "Open"

    # One kind: the 68 clicks (60 + 8) newest first, 50 then 18; opt-outs: recipient 3's one, with its agent.
    clicks = tracking_log.delivery_tracking(delivery_id, kind="click", limit=50)
    rest = tracking_log.delivery_tracking(delivery_id, kind="click", limit=50, before=clicks.next)
    assert [item.hit_id for item in clicks.items + rest.items] == [
        hit["hit_id"] for hit in everything if hit["kind"] == "click"] and rest.next is None
    [optout] = tracking_log.delivery_tracking(delivery_id, kind="optout").items
    assert (optout.recipient_id, optout.user_agent, optout.label) == ("r3", IPHONE_MAIL, "Unsubscribe")
    for bad in ({"kind": "bounce"}, {"limit": 0}, {"limit": 201}):
        with pytest.raises(InvalidField):
            tracking_log.delivery_tracking(delivery_id, **bad)  # type: ignore[arg-type]


def test_the_reports_split_people_from_machines(api: Any, mta: Any) -> None:
    """A scanner clicks every link at delivery and Apple's proxy fetches the pixel; a person opens and clicks A
    later. Every report keeps all the hits and says how many were people's."""
    import boto3

    from chalicelib.reports import breakdown, domains, tracking_log, urls
    from chalicelib.settings import get_settings
    from tests.tracking_logs import CHROME, IPHONE_MAIL

    delivery_id = send(api, mta, EMAILS[:1], html=LINKS_HTML)
    sent = int(boto3.client("dynamodb").get_item(TableName=get_settings().delivery_logs_table, Key={
        "delivery_id": {"S": delivery_id}, "log_id": {"N": "1"}})["Item"]["sent_at"]["N"])
    hits = [record(kind="open", delivery_id=delivery_id, ua="Mozilla/5.0", ts=sent + 1_000)]
    hits += [record(kind="click", delivery_id=delivery_id, url_id=url_id, ua=CHROME, ts=sent + 2_000 + 100 * index)
             for index, url_id in enumerate((A, B, C))]
    hits += [record(kind="open", delivery_id=delivery_id, ua=IPHONE_MAIL, ts=sent + 40 * MINUTE),
             record(kind="click", delivery_id=delivery_id, url_id=A, ua=IPHONE_MAIL, ts=sent + 41 * MINUTE)]
    play(hits)
    by_url = urls.urls(delivery_id, "url")
    assert (by_url.clicks_total, by_url.clicks_total_human) == (4, 1)
    assert {row.key: (row.clicks_total, row.clicks_total_human, row.clicks_unique_human) for row in by_url.rows} == {
        "https://shop.example.com/a?u={{id}}": (2, 1, 1), "https://shop.example.com/b": (1, 0, 0),
        "https://blog.example.com/c": (1, 0, 0), "Unsubscribe": (0, 0, 0), "Mirror page": (0, 0, 0)}
    line = activity.timeline(delivery_id, "1d")
    assert (line.opens_total, line.clicks_total, line.opens_total_human, line.clicks_total_human) == (2, 4, 1, 1)
    reacted = activity.time_to_react(delivery_id)
    assert (reacted.clicks.total, reacted.clicks_human.total, reacted.opens_human.total) == (4, 1, 1)
    clients = breakdown.breakdown(delivery_id, "client")
    assert (clients.opens_total_human, clients.clicks_total_human) == (1, 1)
    assert {row.value: (row.opens, row.opens_human, row.clicks, row.clicks_human) for row in clients.rows} == {
        "Apple Mail": (1, 1, 1, 1), "Web browser": (0, 0, 3, 0), "Other": (1, 0, 0, 0)}
    # The Tracking tab says who made each hit, and why.
    log = tracking_log.delivery_tracking(delivery_id)
    assert [(item.kind, item.hit_class, item.reasons) for item in log.items] == [
        ("click", "human", []), ("open", "human", []),
        *[("click", "machine", ["burst", "too_fast"])] * 3, ("open", "machine", ["apple_proxy"])]
    [domain] = domains.domains(delivery_id).rows
    assert (domain.opens, domain.clicks, domain.opens_human, domain.clicks_human) == (1, 1, 1, 1)

    # A later prefetch of the person's link (Chrome's, declared): a machine's click, beside the person's.
    play([record(kind="click", delivery_id=delivery_id, url_id=B, ua=CHROME, ts=sent + 50 * MINUTE,
                 purpose="prefetch")], "prefetch")
    [newest] = tracking_log.delivery_tracking(delivery_id, limit=1).items
    assert (newest.kind, newest.hit_class, newest.reasons) == ("click", "machine", ["prefetch"])
    assert api.get(f"/api/deliveries/{delivery_id}/tracking?limit=1").json_body["items"][0]["class"] == "machine"
    assert urls.urls(delivery_id, "url").clicks_total_human == 1
    # The next run classifies the recipient's stored hits again: the prefetch is still one (its purpose is stored).
    play([record(kind="open", delivery_id=delivery_id, ua=IPHONE_MAIL, ts=sent + 90 * MINUTE)], "later")
    log = tracking_log.delivery_tracking(delivery_id, limit=2)
    assert [(item.hit_class, item.reasons) for item in log.items] == [("human", []), ("machine", ["prefetch"])]
    assert urls.urls(delivery_id, "url").clicks_total_human == 1
    assert api.get(f"/api/deliveries/{delivery_id}/indicators").json_body["machine"]["by_reason"]["prefetch"] == 1
