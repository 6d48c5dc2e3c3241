"""Campaign's delivery reports over HTTP: hot clicks, URLs, timeline, time to react, breakdown, domains,
the delivery's Tracking tab, and throughput across deliveries.

The computations are chalicelib/reports/'s (each a bounded number of key
reads); these handlers parse the query parameters and shape the answer,
CSV included for the URL report.
"""

from __future__ import annotations

from chalice import Response
from chalice.app import Request

from chalicelib.api.csv_pages import csv_page
from chalicelib.api.http import BadRequest, cursor_value, encode_cursor
from chalicelib.api.models import (
    BreakdownQuery,
    DeliveryTrackingPage,
    DeliveryTrackingQuery,
    ThroughputQuery,
    TimelineQuery,
    UrlsQuery,
)
from chalicelib.api.operations import operation, wants_csv
from chalicelib.clock import now_ms
from chalicelib.reports import activity, tracking_log
from chalicelib.reports import breakdown as breakdowns
from chalicelib.reports import domains as domain_reports
from chalicelib.reports import hot_clicks as hot
from chalicelib.reports import throughput as throughputs
from chalicelib.reports import urls as url_reports
from chalicelib.reports.models import (
    Breakdown,
    DomainsReport,
    HotClicks,
    Throughput,
    Timeline,
    TimeToReact,
    TrackingCursor,
    UrlRow,
    UrlsReport,
)

DAY_MS = 86_400_000


@operation("GET", "/api/deliveries/{delivery_id}/hot-clicks", response=HotClicks, tag="reports",
           summary="Hot clicks: the message with each link's share of the clicks")
def hot_clicks(request: Request, delivery_id: str) -> HotClicks:
    """The HTML part (and the text part when there is one) as written, placeholders as placeholders, each click
    link with its clicks, unique and total, and its percentage of the delivery's URL hits. Opt-out and mirror
    links count in the total and are not shown (`hidden_clicks`). The HTML is the author's markup: show it
    sandboxed."""
    return hot.hot_clicks(delivery_id)


@operation("GET", "/api/deliveries/{delivery_id}/urls", query=UrlsQuery, response=UrlsReport, csv=True,
           tag="reports", summary="URLs and click streams, by URL, label or category")
def urls(request: Request, delivery_id: str, query: UrlsQuery) -> UrlsReport | Response:
    """Rows sum the URLs with the same URL, label or category as Campaign does ("URLs or labels with the same
    name"), most clicked first, with rates of success and shares of the delivery's URL hits. As CSV
    (?format=csv or Accept: text/csv) the rows, lists joined with ` | `; one answer (a delivery's URLs are few)."""
    report = url_reports.urls(delivery_id, query.group)
    if wants_csv(request, query):
        return csv_page(request, UrlRow, report.rows, None, first=True,
                        filename=f"delivery-{delivery_id}-urls-by-{query.group}.csv")
    return report


@operation("GET", "/api/deliveries/{delivery_id}/timeline", query=TimelineQuery, response=Timeline, tag="reports",
           summary="Opens and clicks over time")
def timeline(request: Request, delivery_id: str, query: TimelineQuery) -> Timeline:
    """The stored 5-minute windows, or rolled up per hour or day (UTC); windows without hits are left out."""
    return activity.timeline(delivery_id, query.bucket)


@operation("GET", "/api/deliveries/{delivery_id}/time-to-react", response=TimeToReact, tag="reports",
           summary="Tracking statistics: time to 25, 50, 75 and 90% of the opens and clicks")
def time_to_react(request: Request, delivery_id: str) -> TimeToReact:
    """From the start of sending; and the share of the opens and of the clicks reached by 1 h, 3 h and 24 h."""
    return activity.time_to_react(delivery_id)


@operation("GET", "/api/deliveries/{delivery_id}/breakdown", query=BreakdownQuery, response=Breakdown,
           tag="reports", summary="Opens and clicks per operating system, device, browser or email client")
def breakdown(request: Request, delivery_id: str, query: BreakdownQuery) -> Breakdown:
    """Hits, not people: each value's opens and clicks and its share of the delivery's, most opens first."""
    return breakdowns.breakdown(delivery_id, query.by)


@operation("GET", "/api/deliveries/{delivery_id}/domains", response=DomainsReport, tag="reports",
           summary="Statistics by recipient domain: sent, delivered, bounces, complaints, opens, clicks")
def domains(request: Request, delivery_id: str) -> DomainsReport:
    """The top domains by messages sent, then "other", with rates of sent: which mailbox provider refuses or
    ignores the delivery. Read from counters kept as messages are sent, bounce and are opened, never a scan."""
    return domain_reports.domains(delivery_id)


def _tracking_cursor(raw: str | None, scope: str) -> TrackingCursor | None:
    cursor = cursor_value(raw, scope)
    if cursor is None:
        return None
    try:
        return TrackingCursor.model_validate(cursor)
    except ValueError:
        raise BadRequest("next is not a cursor this API returned", [{"field": "next", "message": "invalid"}]) from None


@operation("GET", "/api/deliveries/{delivery_id}/tracking", query=DeliveryTrackingQuery,
           response=DeliveryTrackingPage, tag="reports",
           summary="The delivery's Tracking tab: its tracking logs, newest first")
def delivery_tracking(request: Request, delivery_id: str, query: DeliveryTrackingQuery) -> DeliveryTrackingPage:
    """Each hit with its recipient, kind, URL and label, time and user agent, and who made it (class: a person
    or a machine, with the reasons, as it counts now); ?kind= for one kind. What a page costs depends on its
    size, not on the delivery's."""
    scope = f"tracking/{delivery_id}?kind={query.kind or ''}"
    page = tracking_log.delivery_tracking(delivery_id, query.kind, query.limit, _tracking_cursor(query.next, scope))
    return DeliveryTrackingPage(delivery_id=page.delivery_id, kind=page.kind, items=page.items,
                                next=encode_cursor(page.next.model_dump() if page.next else None, scope))


@operation("GET", "/api/throughput", query=ThroughputQuery, response=Throughput, errors=(), tag="reports",
           summary="Delivery throughput across deliveries: messages per hour and bits per second")
def throughput(request: Request, query: ThroughputQuery) -> Throughput:
    """Per hour (or day) over [from, to], whole UTC buckets, every delivery; at most 92 days at once.
    Without `to`, now; without `from`, 24 hours before `to`."""
    end = now_ms() if query.end is None else query.end
    start = max(0, end - DAY_MS) if query.start is None else query.start
    return throughputs.throughput(start, end, query.bucket)
