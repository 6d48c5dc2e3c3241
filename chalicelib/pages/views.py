"""The dashboard's pages: what a marketer or an operator opens in a browser.

Handlers read through the services (deliveries, monitoring, reports, the
status check), never over HTTP, and hand plain values to the templates in
templates/. Every page but the login needs a session (web.page_handler);
a bad id is a friendly 404 page.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Callable, cast
from urllib.parse import quote

from chalice import Response

from chalicelib import auth
from chalicelib.api.http import decode_cursor, encode_cursor, query_params
from chalicelib.clock import now_ms
from chalicelib.errors import InvalidField
from chalicelib.mta import monitoring, states
from chalicelib.pages import charts, sessions
from chalicelib.pages.message import preview
from chalicelib.pages.web import (
    Page,
    configured_tokens,
    form_fields,
    now_s,
    page_handler,
    same_origin,
    session_cookie,
    when,
)
from chalicelib.reports import activity, breakdown, domains, hot_clicks, throughput, tracking_log, urls
from chalicelib.reports.common import sending_started_at, stores
from chalicelib.reports.models import BreakdownBy, Bucket
from chalicelib.tracking import indicators as formulas

NEXT_PATH = re.compile(r"^/dashboard(/[A-Za-z0-9._~%+-]+)*$")
LIST_PAGE_SIZE = 20


# --- login and logout ---------------------------------------------------------------------

def _next_path(value: str | None) -> str:
    """Where the login may send a person on: a dashboard path of ours, nothing else."""
    return value if value and NEXT_PATH.match(value) and "//" not in value else "/dashboard"


@page_handler(signed_in=False)
def login_form(page: Page) -> Response:
    target = _next_path(query_params(page.request).get("next"))
    if page.session is not None:
        return page.redirect(target)
    return page.render("login.html", title="Sign in", next=target,
                       lifetime_hours=page.settings.dashboard_session_hours)


@page_handler(signed_in=False)
def login(page: Page) -> Response:
    """POST /dashboard/login: the API token for a session cookie (same origin only)."""
    fields = form_fields(page.request)
    target = _next_path(fields.get("next"))
    context: dict[str, Any] = {"title": "Sign in", "next": target,
                               "lifetime_hours": page.settings.dashboard_session_hours}
    if not same_origin(page.request):
        return page.render("login.html", status=403, error="This form must be sent from this dashboard's own "
                                                          "login page.", **context)
    token = fields.get("token", "").strip()
    scope = auth.scope_of(token, tuple(auth.TokenHash(*entry) for entry in configured_tokens())) if token else None
    if scope is None or not auth.includes(scope, auth.READ):
        return page.render("login.html", status=401, error="That is not an API token of this stack.", **context)
    lifetime = page.settings.dashboard_session_hours * 3600
    session = sessions.issue(page.settings.keyring(), auth.token_sha256(token), scope, now_s(), lifetime)
    response = page.redirect(target)
    response.headers["Set-Cookie"] = session_cookie(page, session.value, lifetime)
    return response


@page_handler(signed_in=False)
def logout(page: Page) -> Response:
    """POST /dashboard/logout: the session cookie cleared (same origin, with the session's form token)."""
    if page.session is None:
        return page.redirect("/dashboard/login")
    form_token = form_fields(page.request).get("form_token")
    if not same_origin(page.request) or not page.session.accepts_form_token(form_token):
        return page.render("error.html", status=403, title="Not logged out",
                           message="The logout must come from a dashboard page.")
    response = page.redirect("/dashboard/login")
    response.headers["Set-Cookie"] = session_cookie(page, "", 0)
    return response


# --- deliveries ---------------------------------------------------------------------------------

def _indicators(delivery_id: str, summary: dict[str, Any]) -> dict[str, Any]:
    """Campaign's indicators of one delivery (chalicelib/tracking/indicators.py, one BatchGetItem)."""
    return formulas.compute(summary, stores().tracking.indicators(delivery_id))


@page_handler()
def deliveries(page: Page) -> Response:
    """/dashboard: deliveries newest first, a page at a time, with their state and indicators."""
    context = stores()
    start = decode_cursor(page.request)
    items, last = context.deliveries.list_summaries(LIST_PAGE_SIZE, start)
    rows = []
    for item in items:
        delivery_id = item["delivery_id"]
        rows.append({**monitoring.summary_view(delivery_id, item), "indicators": _indicators(delivery_id, item)})
    totals = {
        "sending": sum(1 for row in rows if row.get("state") in states.SENDING),
        "success": sum(row["indicators"]["success"] for row in rows),
        "opens_unique": sum(row["indicators"]["opens_unique"] for row in rows),
        "clicks_unique": sum(row["indicators"]["clicks_unique"] for row in rows),
    }
    totals["opens_rate"] = formulas.percentage(totals["opens_unique"], totals["success"])
    totals["clicks_rate"] = formulas.percentage(totals["clicks_unique"], totals["success"])
    return page.render("deliveries.html", title="Deliveries", rows=rows, totals=totals,
                       next_page=page.url("/dashboard", next=encode_cursor(last)) if last else None)


def _timeline(delivery_id: str) -> Any:
    """Opens and clicks over time: 5-minute windows for half a day, then hours for two weeks, then days."""
    timeline = activity.timeline(delivery_id, "5m")
    if timeline.buckets:
        span = timeline.buckets[-1].start - timeline.buckets[0].start
        bucket: Bucket = "5m" if span <= 12 * 3_600_000 else "1h" if span <= 14 * 86_400_000 else "1d"
        if bucket != "5m":
            timeline = activity.timeline(delivery_id, bucket)
    return timeline


def _timeline_chart(page: Page, timeline: Any) -> Any:
    if not timeline.buckets:
        return None
    labels = [when(row.start)[5:16] for row in timeline.buckets]
    draw = charts.lines if len(labels) > 24 else charts.bars
    return draw(page, "Opens and clicks over time", labels, height=260, series=[
        ("Opens (total)", [row.opens for row in timeline.buckets]),
        ("Clicks (total)", [row.clicks for row in timeline.buckets]),
    ])


def gather(reads: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Every read at once (each is a few GetItem or Query calls): the page waits for the slowest, not the sum."""
    with ThreadPoolExecutor(max_workers=min(PARALLEL_READS, len(reads)), thread_name_prefix="page") as pool:
        futures = {name: pool.submit(read) for name, read in reads.items()}
        return {name: future.result() for name, future in futures.items()}


PARALLEL_READS = 8


@page_handler()
def delivery(page: Page, delivery_id: str) -> Response:
    """/dashboard/deliveries/{id}: the delivery's dashboard."""
    context = stores()
    summary = context.summary(delivery_id)
    data = gather({
        "view": lambda: monitoring.delivery_view(delivery_id, summary, context.settings, now_ms()),
        "indicators": lambda: _indicators(delivery_id, summary),
        "timeline": lambda: _timeline(delivery_id),
        "reaction": lambda: activity.time_to_react(delivery_id),
        "urls": lambda: urls.urls(delivery_id, "url"),
        "domains": lambda: domains.domains(delivery_id),
        "sending": lambda: _sending_throughput(summary),
        **{f"breakdown:{by}": partial(breakdown.breakdown, delivery_id, by) for by in BREAKDOWNS},
    })
    breakdowns = {by: data[f"breakdown:{by}"] for by in BREAKDOWNS}
    # People first (issue: privacy proxies and link scanners are not readers); ?counting=all puts Campaign's
    # every-hit indicators first. Anything else is the default.
    counting = "all" if query_params(page.request).get("counting") == "all" else "people"
    counts = [(name, value) for name, value in data["view"]["counts"].items() if name != "processed" and value]
    return page.render(
        "delivery.html", title=summary.get("name") or delivery_id, delivery_id=delivery_id, view=data["view"],
        indicators=data["indicators"], timeline_chart=_timeline_chart(page, data["timeline"]),
        timeline_bucket=data["timeline"].bucket, reaction=data["reaction"],
        status_chart=charts.pie(page, "Delivery logs by status", counts, height=240) if counts else None,
        url_report=data["urls"], breakdowns=breakdowns,
        breakdown_charts={by: _breakdown_chart(page, report) for by, report in breakdowns.items()},
        breakdown_titles=BREAKDOWNS, domain_report=data["domains"], sending=_with_chart(page, data["sending"]),
        counting=counting, tab="overview")


def _sending_throughput(summary: dict[str, Any]) -> Any:
    """Messages per hour across every delivery while this one sent (the send worker's hourly counters)."""
    started = sending_started_at(summary)
    if started is None:
        return None
    end = int(summary.get("finished_at") or summary.get("stopped_at") or now_ms())
    return throughput.throughput(max(started, end - throughput.MAX_RANGE_MS), end, "1h")


def _with_chart(page: Page, report: Any) -> dict[str, Any] | None:
    if report is None:
        return None
    chart = charts.bars(page, "Messages per hour, every delivery", [when(row.start)[5:16] for row in report.rows],
                        [("Messages (every delivery)", [row.messages for row in report.rows])], height=220) \
        if len(report.rows) > 1 else None
    return {"report": report, "chart": chart}


BREAKDOWNS: dict[BreakdownBy, str] = {"os": "Operating system", "device": "Device", "browser": "Browser",
                                      "client": "Mail client"}
BREAKDOWN_SLICES = 6


def _breakdown_chart(page: Page, report: Any) -> Any:
    """Opens per value as a ring: the largest values, the rest as one slice."""
    rows = [row for row in report.rows if row.opens]
    if not rows:
        return None
    slices = [(row.value, row.opens) for row in rows[:BREAKDOWN_SLICES]]
    rest = sum(row.opens for row in rows[BREAKDOWN_SLICES:])
    if rest:
        slices.append(("Others", rest))
    return charts.pie(page, f"Opens by {BREAKDOWNS[report.by].lower()}", slices, height=260)


@page_handler()
def delivery_hot_clicks(page: Page, delivery_id: str) -> Response:
    """/dashboard/deliveries/{id}/hot-clicks: the message, sandboxed, with each link's share of the clicks."""
    context = stores()
    summary = context.summary(delivery_id)
    view = monitoring.summary_view(delivery_id, summary)
    report = hot_clicks.hot_clicks(delivery_id)
    badges = {link.url_id: f"{link.percent:.2f} %" for link in report.links}
    return page.render("hot_clicks.html", inline_styles=True, title=f"Hot clicks · {summary.get('name') or ''}",
                       delivery_id=delivery_id, view=view, report=report,
                       message=preview(report.html, report.marker_attribute, badges),
                       badges=badges, tab="hot-clicks")


# --- tracking tabs ---------------------------------------------------------------------------------

RECIPIENT_PAGE_SIZE = 50


@page_handler()
def find_recipient(page: Page) -> Response:
    """/dashboard/recipients?id=: the header's search box, to the recipient's page."""
    recipient_id = (query_params(page.request).get("id") or "").strip()
    if not recipient_id or "/" in recipient_id:
        raise InvalidField("id", "type a recipient id (as in the delivery's recipients)")
    return page.redirect(f"/dashboard/recipients/{quote(recipient_id, safe='')}")


@page_handler()
def recipient(page: Page, recipient_id: str) -> Response:
    """/dashboard/recipients/{id}: the recipient's Tracking tab, their hits across deliveries, newest first."""
    from chalicelib.api.http import cursor_value
    from chalicelib.tracking.service import TrackingReports

    cursor = cursor_value(query_params(page.request).get("next"))
    try:
        before = (int(cursor["at"]), str(cursor["hit_id"])) if cursor is not None else None
    except (KeyError, TypeError, ValueError):
        raise InvalidField("next", "not a page of this list") from None
    items, following = TrackingReports(page.settings).recipient_tracking(recipient_id, RECIPIENT_PAGE_SIZE, before)
    next_page = page.url(f"/dashboard/recipients/{quote(recipient_id, safe='')}",
                         next=encode_cursor({"at": following[0], "hit_id": following[1]})) if following else None
    return page.render("recipient.html", title=f"Recipient {recipient_id}", recipient_id=recipient_id, items=items,
                       next_page=next_page, first_page=before is None)


@page_handler()
def delivery_tracking(page: Page, delivery_id: str) -> Response:
    """/dashboard/deliveries/{id}/tracking: the delivery's Tracking tab, newest first, by kind."""
    from chalicelib.api.http import cursor_value
    from chalicelib.reports.models import HitKind, TrackingCursor

    query = query_params(page.request)
    kind = query.get("kind") or None
    if kind is not None and kind not in tracking_log.KINDS:
        raise InvalidField("kind", f"kind must be one of {', '.join(tracking_log.KINDS)}")
    cursor = cursor_value(query.get("next"))
    try:
        before = TrackingCursor.model_validate(cursor) if cursor is not None else None
    except ValueError:
        raise InvalidField("next", "not a page of this list") from None
    context = stores()
    view = monitoring.summary_view(delivery_id, context.summary(delivery_id))
    report = tracking_log.delivery_tracking(delivery_id, cast(HitKind | None, kind), TRACKING_PAGE_SIZE, before)
    next_page = page.url(f"/dashboard/deliveries/{delivery_id}/tracking", kind=kind,
                         next=encode_cursor(report.next.model_dump())) if report.next else None
    return page.render("delivery_tracking.html", title=f"Tracking · {view.get('name') or delivery_id}",
                       delivery_id=delivery_id, view=view, report=report, kind=kind, kinds=tracking_log.KINDS,
                       next_page=next_page, first_page=before is None, tab="tracking")


TRACKING_PAGE_SIZE = 50


# --- operations -----------------------------------------------------------------------------------

@page_handler()
def status(page: Page) -> Response:
    """/dashboard/status: the status check's components (chalicelib/status.py), worst first."""
    from chalicelib import status as checks
    from chalicelib.base_url import public_base_url
    from chalicelib.hits import endpoints as hits

    settings = page.settings
    context = checks.StatusContext(settings, now_ms(), redirection_status=lambda: hits.status(page.request),
                                   tracking_base_url=public_base_url(page.request, settings.public_base_url))
    report = checks.report(context)
    components = sorted(report["components"], key=lambda item: -checks.SEVERITY[item["status"]])
    return page.render("status.html", title="Status", report=report, components=components)
