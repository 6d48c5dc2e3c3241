"""/api/deliveries: create, send, pause, resume, stop, read and list deliveries, and their delivery logs."""

from __future__ import annotations

import re
from typing import Any

from chalice import Response
from chalice.app import Request

from chalicelib.api.csv_pages import csv_page
from chalicelib.api.http import cursor_value, encode_cursor
from chalicelib.api.operations import operation, wants_csv
from chalicelib.base_url import public_base_url
from chalicelib.clock import now_ms as _now_ms  # tests replace _now_ms
from chalicelib.deliveries import service
from chalicelib.deliveries.models import (
    DeliveryCreated,
    DeliveryIn,
    DeliveryList,
    DeliveryListQuery,
    DeliveryLog,
    DeliveryLogs,
    DeliveryLogsQuery,
    DeliverySummary,
    DeliveryView,
)
from chalicelib.errors import NotFound
from chalicelib.mta import monitoring
from chalicelib.mta.jobs import SendJobs
from chalicelib.mta.reasons import REASON_CODES
from chalicelib.settings import get_settings

_DELIVERY_ID = re.compile(r"^[0-9a-f]{16}$")


def _view(delivery_id: str, summary: dict[str, Any]) -> DeliveryView:
    """One delivery as GET /api/deliveries/{id} answers it (with the SES checks while it sends)."""
    return DeliveryView.model_validate(monitoring.delivery_view(delivery_id, summary, get_settings(), _now_ms()))


def _known(delivery_id: str) -> None:
    if not _DELIVERY_ID.match(delivery_id):
        raise NotFound(f"no delivery {delivery_id}")


@operation("POST", "/api/deliveries", body=DeliveryIn, response=DeliveryCreated, status=201, errors=(),
           tag="deliveries", summary="Create a delivery (a draft)")
def create(request: Request, body: DeliveryIn) -> DeliveryCreated:
    """Links are found and numbered, the content becomes a template, each recipient gets a delivery log
    (prepared, or ignored with its reason: quarantined, denylisted, duplicate)."""
    return DeliveryCreated(id=service.create_delivery(body, get_settings()))


@operation("POST", "/api/deliveries/{delivery_id}/send", response=DeliveryView, status=202, errors=(404, 409),
           tag="sending", summary="Start sending a draft delivery")
def send(request: Request, delivery_id: str) -> DeliveryView:
    """Start the send job: 202, the delivery in start_pending; the workers send."""
    _known(delivery_id)
    settings = get_settings()
    summary = SendJobs(settings).start(delivery_id, public_base_url(request, settings.public_base_url))
    return _view(delivery_id, summary)


def _steering(action: str) -> Any:
    """POST .../pause, .../resume, .../stop: the job's new state, or a 409 saying why not."""

    def steer(request: Request, delivery_id: str) -> DeliveryView:
        _known(delivery_id)
        return _view(delivery_id, getattr(SendJobs(get_settings()), action)(delivery_id))

    steer.__doc__ = f"The job's new state after {action}, or a 409 saying why it cannot {action} now."
    return operation("POST", f"/api/deliveries/{{delivery_id}}/{action}", response=DeliveryView, errors=(404, 409),
                     tag="sending", summary=f"{action.capitalize()} the send job")(steer)


pause, resume, stop = (_steering(action) for action in ("pause", "resume", "stop"))


@operation("GET", "/api/deliveries/{delivery_id}", response=DeliveryView, tag="deliveries",
           summary="One delivery: counts, failures, throughput, why it is stalled")
def get(request: Request, delivery_id: str) -> DeliveryView:
    """The SES checks (configuration set, account) are made only while the delivery sends."""
    _known(delivery_id)
    summary = service.delivery_store(get_settings()).get_summary(delivery_id)
    if summary is None:
        raise NotFound(f"no delivery {delivery_id}")
    return _view(delivery_id, summary)


@operation("GET", "/api/deliveries", query=DeliveryListQuery, response=DeliveryList, errors=(), tag="deliveries",
           summary="Deliveries, newest first")
def list_all(request: Request, query: DeliveryListQuery) -> DeliveryList:
    """Newest first; with ?state=, the deliveries in that state, latest to enter it first (an index Query)."""
    scope = f"deliveries?state={query.state or ''}"  # an index of its own per state
    start = cursor_value(query.next, scope)
    store = service.delivery_store(get_settings())
    if query.state:
        items, last = store.list_by_state(query.state, query.limit, start)
    else:
        items, last = store.list_summaries(query.limit, start)
    return DeliveryList(items=[DeliverySummary.model_validate(monitoring.summary_view(item["delivery_id"], item))
                               for item in items], next=encode_cursor(last, scope))


@operation("GET", "/api/deliveries/{delivery_id}/logs", query=DeliveryLogsQuery, response=DeliveryLogs, csv=True,
           tag="deliveries", summary="A delivery's logs (each recipient's message), a page at a time")
def logs(request: Request, delivery_id: str, query: DeliveryLogsQuery) -> DeliveryLogs | Response:
    """By log id; ?status= reads one status (an index), ?reason= filters (a reason without a status reads the
    failed logs, then the ignored ones). A page may be short, with a `next`, when a rare reason is filtered.
    As CSV (?format=csv or Accept: text/csv) the same page, 1000 rows by default, the next page's address in
    a `Link: <...>; rel="next"` header and the column names only on the first page, so that pages appended
    in order make one CSV file."""
    _known(delivery_id)
    as_csv = wants_csv(request, query)
    limit = query.page_size(as_csv)
    scope = f"logs/{delivery_id}?status={query.status or ''}&reason={query.reason or ''}"
    page = service.logs_page(service.delivery_store(get_settings()), delivery_id, limit=limit, status=query.status,
                             reason=query.reason, cursor=cursor_value(query.next, scope))
    answer = DeliveryLogs(delivery_id=delivery_id, items=[_log_view(log) for log in page.items],
                          next=encode_cursor(page.next, scope))
    if as_csv:
        return csv_page(request, DeliveryLog, answer.items, answer.next, first=query.next is None,
                        filename=f"delivery-{delivery_id}-logs.csv")
    return answer


def _log_view(log: dict[str, Any]) -> DeliveryLog:
    view = {name: log.get(name) for name in DeliveryLog.model_fields if name != "failure_code"}
    return DeliveryLog.model_validate({**view, "failure_code": REASON_CODES.get(log.get("failure_reason") or "")})
