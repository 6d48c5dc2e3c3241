"""/api/deliveries: create, send, pause, resume, stop, read and list deliveries, and their delivery logs."""

from __future__ import annotations

import re
from typing import Any

from chalice import Response
from chalice.app import Request

from chalicelib.api.http import api_handler, decode_cursor, encode_cursor, json_response, parse_body, query_choice, \
    query_int
from chalicelib.base_url import public_base_url
from chalicelib.clock import now_ms as _now_ms  # tests replace _now_ms
from chalicelib.deliveries import service
from chalicelib.deliveries.models import DeliveryIn
from chalicelib.errors import NotFound
from chalicelib.mta import monitoring, states, statuses
from chalicelib.mta.jobs import SendJobs
from chalicelib.mta.reasons import REASON_CODES
from chalicelib.settings import get_settings

_DELIVERY_ID = re.compile(r"^[0-9a-f]{16}$")


def _view(delivery_id: str, summary: dict[str, Any]) -> dict[str, Any]:
    """One delivery as GET /api/deliveries/{id} answers it (with the SES checks while it sends)."""
    return monitoring.delivery_view(delivery_id, summary, get_settings(), _now_ms())


def _known(delivery_id: str) -> None:
    if not _DELIVERY_ID.match(delivery_id):
        raise NotFound(f"no delivery {delivery_id}")


@api_handler
def create(request: Request) -> Response:
    delivery = parse_body(request, DeliveryIn)
    delivery_id = service.create_delivery(delivery, get_settings())
    return json_response({"id": delivery_id}, 201)


@api_handler
def send(request: Request, delivery_id: str) -> Response:
    """Start the send job: 202, the delivery in start_pending; the workers send."""
    _known(delivery_id)
    settings = get_settings()
    summary = SendJobs(settings).start(delivery_id, public_base_url(request, settings.public_base_url))
    return json_response(_view(delivery_id, summary), 202)


STEERING = ("pause", "resume", "stop")


@api_handler
def steer(request: Request, delivery_id: str, action: str) -> Response:
    """POST .../pause, .../resume, .../stop: the job's new state, or a 409 saying why not."""
    _known(delivery_id)
    if action not in STEERING:
        raise ValueError(f"not a send job action: {action}")
    return json_response(_view(delivery_id, getattr(SendJobs(get_settings()), action)(delivery_id)))


@api_handler
def get(request: Request, delivery_id: str) -> Response:
    _known(delivery_id)
    summary = service.delivery_store(get_settings()).get_summary(delivery_id)
    if summary is None:
        raise NotFound(f"no delivery {delivery_id}")
    return json_response(_view(delivery_id, summary))


@api_handler
def list_all(request: Request) -> Response:
    """Newest first; with ?state=, the deliveries in that state, latest to enter it first (an index Query)."""
    limit = query_int(request, "limit", 50, 1, 200)
    state = query_choice(request, "state", states.STATES)
    start = decode_cursor(request)
    store = service.delivery_store(get_settings())
    if state:
        items, last = store.list_by_state(state, limit, start)
    else:
        items, last = store.list_summaries(limit, start)
    return json_response({"items": [monitoring.summary_view(item["delivery_id"], item) for item in items],
                          "next": encode_cursor(last)})


MAX_QUERIES_PER_PAGE = 10
LOG_FIELDS = ("log_id", "recipient_id", "email", "status", "failure_type", "failure_reason", "failure_detail",
              "message_id", "size", "updated_at", "sent_at", "delivered_at", "failed_at", "delayed_at", "delay_type",
              "bounce_type", "bounce_sub_type", "bounce_status", "smtp_response", "complaint_feedback_type")


def _log_view(log: dict[str, Any]) -> dict[str, Any]:
    view = {name: log[name] for name in LOG_FIELDS if log.get(name) is not None}
    if log.get("failure_reason") in REASON_CODES:
        view["failure_code"] = REASON_CODES[log["failure_reason"]]
    return view


@api_handler
def logs(request: Request, delivery_id: str) -> Response:
    """A delivery's logs by log id, a page at a time; ?status= reads one status (an index), ?reason= filters.

    A reason without a status reads the failed logs, then the ignored ones
    (the statuses that carry a reason). Pages are filled up to `limit`, with
    at most MAX_QUERIES_PER_PAGE reads (a rare reason may give a short page
    and a `next`).
    """
    _known(delivery_id)
    limit = query_int(request, "limit", 50, 1, 200)
    status = query_choice(request, "status", statuses.STATUSES)
    reason = query_choice(request, "reason", frozenset(REASON_CODES))
    cursor = decode_cursor(request) or {}
    store = service.delivery_store(get_settings())
    if store.get_summary(delivery_id) is None:
        raise NotFound(f"no delivery {delivery_id}")
    order = [status] if status else ([statuses.FAILED, statuses.IGNORED_STATUS] if reason else [None])
    position = order.index(cursor.get("s")) if cursor.get("s") in order else 0
    start = cursor.get("k")
    items: list[dict[str, Any]] = []
    for _ in range(MAX_QUERIES_PER_PAGE):
        if position >= len(order) or len(items) >= limit:
            break
        page, start = store.logs_page(delivery_id, order[position], limit - len(items), start, reason)
        items.extend(page)
        if start is None:
            position, start = position + 1, None
    more = position < len(order)
    next_cursor = encode_cursor({"s": order[position], "k": start} if more and start else
                                {"s": order[position]} if more else None)
    return json_response({"delivery_id": delivery_id, "items": [_log_view(log) for log in items],
                          "next": next_cursor})
