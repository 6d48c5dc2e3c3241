"""Tracking in the dashboard API: indicators, URLs, time buckets, user agents, recipients, workflow runs.

Every read is a GetItem or a Query on a key (the stats items of one
delivery, one recipient's items through the by-recipient index); nothing
scans.
"""

from __future__ import annotations

import heapq
import re
from typing import Any

from chalice import Response
from chalice.app import Request

from chalicelib.api.http import (
    BadRequest,
    api_handler,
    decode_cursor,
    encode_cursor,
    error_response,
    json_response,
    query_int,
)
from chalicelib.data.deliveries import DeliveryStore
from chalicelib.data.tracking import BUCKET_PREFIX, INDICATORS, UA_PREFIX, URL_PREFIX, TrackingStore
from chalicelib.errors import Conflict, NotFound
from chalicelib.settings import Settings, get_settings
from chalicelib.tracking import indicators as formulas
from chalicelib.tracking.core import BUCKET_MS, counted_open_ids
from chalicelib.tracking.classify import UNCLASSIFIED, hit_class, reason_names
from chalicelib.tracking.items import decode_hits, decode_verdicts
from chalicelib.tracking.useragents import DIMENSIONS

_DELIVERY_ID = re.compile(r"^[0-9a-f]{16}$")
URL_ID_OPEN = 1  # the open pixel: its counts are the indicators' opens, not a link's clicks


def _stores(settings: Settings) -> tuple[DeliveryStore, TrackingStore]:
    return (DeliveryStore(settings.deliveries_table, settings.delivery_logs_table),
            TrackingStore(settings.tracking_table, settings.tracking_stats_table))


def _summary(deliveries: DeliveryStore, delivery_id: str) -> dict[str, Any]:
    summary = deliveries.get_summary(delivery_id) if _DELIVERY_ID.match(delivery_id) else None
    if summary is None:
        raise NotFound(f"no delivery {delivery_id}")
    return summary


@api_handler
def indicators(request: Request, delivery_id: str) -> Response:
    deliveries, tracking = _stores(get_settings())
    summary = _summary(deliveries, delivery_id)
    stats = tracking.get_stat(delivery_id, INDICATORS)
    return json_response({"delivery_id": delivery_id, **formulas.compute(summary, stats)})


@api_handler
def urls(request: Request, delivery_id: str) -> Response:
    deliveries, tracking = _stores(get_settings())
    summary = _summary(deliveries, delivery_id)
    links = deliveries.get_links(delivery_id) or {}
    counters = {int(item["stat"][len(URL_PREFIX):]): item for item in tracking.query_stats(delivery_id, URL_PREFIX)}
    success = formulas.delivery_volumes(summary)["success"]
    rows = []
    for url_id in sorted(int(key) for key in (links.get("urls") or {})):
        if url_id == URL_ID_OPEN:
            continue
        entry = links["urls"][str(url_id)]
        counts = counters.get(url_id, {})
        total, unique = int(counts.get("total") or 0), int(counts.get("unique") or 0)
        rows.append({
            "url_id": url_id, "url": entry.get("url", ""), "label": entry.get("label", ""),
            "type": entry.get("type", "click"), "clicks_total": total, "clicks_unique": unique,
            "clicks_total_rate": formulas.percentage(total, success),
            "clicks_unique_rate": formulas.percentage(unique, success),
        })
    return json_response({"delivery_id": delivery_id, "success": success, "urls": rows})


@api_handler
def timeline(request: Request, delivery_id: str) -> Response:
    deliveries, tracking = _stores(get_settings())
    _summary(deliveries, delivery_id)
    buckets = [{"start": int(item["stat"][len(BUCKET_PREFIX):]), "opens": int(item.get("opens") or 0),
                "clicks": int(item.get("clicks") or 0)}
               for item in tracking.query_stats(delivery_id, BUCKET_PREFIX)]
    return json_response({"delivery_id": delivery_id, "bucket_ms": BUCKET_MS,
                          "buckets": [bucket for bucket in buckets if bucket["opens"] or bucket["clicks"]]})


@api_handler
def user_agents(request: Request, delivery_id: str) -> Response:
    deliveries, tracking = _stores(get_settings())
    _summary(deliveries, delivery_id)
    breakdown: dict[str, list[dict[str, Any]]] = {dimension: [] for dimension in DIMENSIONS}
    for item in tracking.query_stats(delivery_id, UA_PREFIX):
        dimension, _, family = item["stat"][len(UA_PREFIX):].partition("#")
        opens, clicks = int(item.get("opens") or 0), int(item.get("clicks") or 0)
        if dimension in breakdown and (opens or clicks):
            breakdown[dimension].append({"family": family, "opens": opens, "clicks": clicks})
    for rows in breakdown.values():
        rows.sort(key=lambda row: (-row["opens"], -row["clicks"], row["family"]))
    return json_response({"delivery_id": delivery_id, **breakdown, "definitions": {
        "opens": "open hits counted after the 1-minute rule", "clicks": "click hits (URL type click)"}})


def _decode_cursor(request: Request) -> tuple[int, str] | None:
    """The page's starting point: (time, hit id) of the previous page's oldest hit."""
    cursor = decode_cursor(request)
    if cursor is None:
        return None
    try:
        return int(cursor["at"]), str(cursor["hit_id"])
    except (ValueError, KeyError, TypeError):
        raise BadRequest("next is not a cursor this API returned", [{"field": "next", "message": "invalid"}]) from None


@api_handler
def recipient_tracking(request: Request, recipient_id: str) -> Response:
    """A recipient's hits across deliveries, newest first, a page at a time, each with its class
    (human, machine; unclassified when stored before classification) and the reasons for it.

    The recipient's tracking items come from the by-recipient index, most
    recent last hit first; reading stops as soon as no further item can hold
    a hit newer than the page's oldest (its last hit is older).
    """
    limit = query_int(request, "limit", 50, 1, 200)
    cursor = _decode_cursor(request)
    settings = get_settings()
    deliveries, tracking = _stores(settings)
    newest: list[tuple[tuple[int, str], dict[str, Any]]] = []  # min-heap of the limit+1 newest candidates
    for item in tracking.recipient_items(recipient_id):
        if len(newest) > limit and int(item["last_hit_at"]) < newest[0][0][0]:
            break
        hits = decode_hits(item)
        counted = counted_open_ids(hits)
        verdicts = decode_verdicts(item)
        for hit in hits:
            order = (hit.ts, hit.hit_id)
            if cursor is not None and order >= cursor:
                continue
            entry = (order, {"hit": hit, "counted": hit.kind != "open" or hit.hit_id in counted,
                             "verdict": verdicts.get(hit.hit_id, UNCLASSIFIED)})
            if len(newest) <= limit:
                heapq.heappush(newest, entry)  # type: ignore[misc]
            elif order > newest[0][0]:
                heapq.heapreplace(newest, entry)  # type: ignore[misc]
    ordered = sorted(newest, key=lambda entry: entry[0], reverse=True)
    page, more = ordered[:limit], len(ordered) > limit
    links: dict[str, dict[str, Any]] = {}
    items = []
    for _, entry in page:
        hit = entry["hit"]
        if hit.delivery_id not in links:
            links[hit.delivery_id] = (deliveries.get_links(hit.delivery_id) or {}).get("urls") or {}
        url = links[hit.delivery_id].get(str(hit.url_id)) or {}
        items.append({"delivery_id": hit.delivery_id, "log_id": hit.log_id, "hit_id": hit.hit_id, "at": hit.ts,
                      "kind": hit.kind, "url_id": hit.url_id, "url": url.get("url", ""), "label": url.get("label", ""),
                      "user_agent": hit.ua, "ip": hit.ip, "counted": entry["counted"],
                      "class": hit_class(entry["verdict"]), "reasons": reason_names(entry["verdict"])})
    next_cursor = encode_cursor({"at": page[-1][0][0], "hit_id": page[-1][0][1]}) if more and page else None
    return json_response({"recipient_id": recipient_id, "items": items, "next": next_cursor})


@api_handler
def run_workflow(request: Request) -> Response:
    """POST /api/workflow/run: one run now (bounded to fit API Gateway's 29 s); its statistics."""
    from chalicelib.tracking.workflow import WorkflowError, run_once

    settings = get_settings()
    try:
        statistics = run_once(max_seconds=settings.workflow_api_max_seconds, settings=settings)
    except WorkflowError as error:
        return error_response(503, "workflow_blocked", str(error))
    if statistics["status"] == "busy":
        raise Conflict("another tracking workflow run is in progress; try again in a moment")
    return json_response(statistics)
