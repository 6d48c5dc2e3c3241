"""Campaign's delivery reports over HTTP: hot clicks, URLs, timeline, time to react, breakdown.

The computations are chalicelib/reports/'s (each a bounded number of key
reads); these handlers parse the query parameters and shape the answer,
CSV included for the URL report.
"""

from __future__ import annotations

from chalice import Response
from chalice.app import Request

from chalicelib.api.csv_pages import csv_page
from chalicelib.api.models import BreakdownQuery, TimelineQuery, UrlsQuery
from chalicelib.api.operations import operation, wants_csv
from chalicelib.reports import activity
from chalicelib.reports import breakdown as breakdowns
from chalicelib.reports import hot_clicks as hot
from chalicelib.reports import urls as url_reports
from chalicelib.reports.models import Breakdown, HotClicks, Timeline, TimeToReact, UrlRow, UrlsReport


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
