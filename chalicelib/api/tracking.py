"""Tracking in the dashboard API: indicators, user agents, a recipient's tracking, workflow runs.

Handlers parse and shape; the queries are chalicelib/tracking/service.py's.
"""

from __future__ import annotations

import re

from chalice import Response
from chalice.app import Request

from chalicelib.api.csv_pages import csv_page
from chalicelib.api.http import BadRequest, cursor_value, encode_cursor
from chalicelib.api.models import WorkflowRun
from chalicelib.api.operations import operation, wants_csv
from chalicelib.errors import Conflict
from chalicelib.settings import get_settings
from chalicelib.tracking.models import (
    Indicators,
    RecipientTracking,
    RecipientTrackingQuery,
    TrackingHit,
    UserAgentBreakdown,
)
from chalicelib.tracking.service import TrackingReports


def _reports() -> TrackingReports:
    return TrackingReports(get_settings())


@operation("GET", "/api/deliveries/{delivery_id}/indicators", response=Indicators, tag="reports",
           summary="Campaign's delivery indicators")
def indicators(request: Request, delivery_id: str) -> Indicators:
    """Processed, success, opens and clicks (unique and total), reactivity, opt-outs, mirror views, and each
    count's rate of success. One GetItem for the summary, one for the counters."""
    return _reports().indicators(delivery_id)


@operation("GET", "/api/deliveries/{delivery_id}/user-agents", response=UserAgentBreakdown, tag="reports",
           deprecated=True, summary="Opens and clicks per operating system, device, browser and email client")
def user_agents(request: Request, delivery_id: str) -> UserAgentBreakdown:
    """All four dimensions at once, as before the breakdown report: use /breakdown?by=os|device|browser|client,
    which adds each value's percentages. Hits, not people: a recipient opening on two devices counts in both."""
    return _reports().user_agents(delivery_id)


def _before(raw: str | None, scope: str) -> tuple[int, str] | None:
    """The page's starting point: (time, hit id) of the previous page's oldest hit."""
    cursor = cursor_value(raw, scope)
    if cursor is None:
        return None
    try:
        return int(cursor["at"]), str(cursor["hit_id"])
    except (ValueError, KeyError, TypeError):
        raise BadRequest("next is not a cursor this API returned", [{"field": "next", "message": "invalid"}]) from None


@operation("GET", "/api/recipients/{recipient_id}/tracking", query=RecipientTrackingQuery,
           response=RecipientTracking, errors=(), csv=True, tag="reports",
           summary="A recipient's Tracking tab: their hits across deliveries, newest first")
def recipient_tracking(request: Request, recipient_id: str, query: RecipientTrackingQuery
                       ) -> RecipientTracking | Response:
    """Read through the by-recipient index, a page at a time. As CSV (?format=csv or Accept: text/csv) the same
    page, 1000 rows by default, the next page's address in a `Link: <...>; rel="next"` header and the column
    names only on the first page, so that pages appended in order make one CSV file."""
    as_csv = wants_csv(request, query)
    limit = query.page_size(as_csv)
    scope = f"recipients/{recipient_id}/tracking"
    items, following = _reports().recipient_tracking(recipient_id, limit, _before(query.next, scope))
    next_cursor = encode_cursor({"at": following[0], "hit_id": following[1]} if following else None, scope)
    if as_csv:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", recipient_id)[:64]
        return csv_page(request, TrackingHit, items, next_cursor, first=query.next is None,
                        filename=f"recipient-{name}-tracking.csv")
    return RecipientTracking(recipient_id=recipient_id, items=items, next=next_cursor)


@operation("POST", "/api/workflow/run", response=WorkflowRun, errors=(409,), tag="operations",
           summary="Run the tracking workflow now")
def run_workflow(request: Request) -> WorkflowRun | Response:
    """One run, bounded to fit API Gateway's 29 s; its statistics. 409 while another run holds the lease,
    503 `workflow_blocked` when the workflow cannot run (its reason said)."""
    from chalicelib.api.http import error_response
    from chalicelib.tracking.workflow import WorkflowError, run_once

    settings = get_settings()
    try:
        statistics = run_once(max_seconds=settings.workflow_api_max_seconds, settings=settings)
    except WorkflowError as error:
        return error_response(503, "workflow_blocked", str(error))
    if statistics["status"] == "busy":
        raise Conflict("another tracking workflow run is in progress; try again in a moment")
    return WorkflowRun.model_validate(statistics)
