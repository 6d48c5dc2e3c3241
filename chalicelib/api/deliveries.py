"""/api/deliveries: create, send, read and list deliveries."""

from __future__ import annotations

import base64
import json
from typing import Any

from chalice import Response
from chalice.app import Request

from chalicelib.api.http import BadRequest, api_handler, json_response, parse_body, query_int
from chalicelib.base_url import public_base_url
from chalicelib.deliveries import service
from chalicelib.deliveries.models import DeliveryIn
from chalicelib.errors import NotFound
from chalicelib.settings import get_settings

_PUBLIC_SUMMARY_FIELDS = ("name", "subject", "from_address", "affinity", "validity_days", "tracking", "state",
                          "created_at", "started_at", "finished_at", "recipients", "counts")


def _summary_view(delivery_id: str, summary: dict[str, Any]) -> dict[str, Any]:
    return {"id": delivery_id, **{name: summary[name] for name in _PUBLIC_SUMMARY_FIELDS if name in summary}}


@api_handler
def create(request: Request) -> Response:
    delivery = parse_body(request, DeliveryIn)
    delivery_id = service.create_delivery(delivery, get_settings())
    return json_response({"id": delivery_id}, 201)


@api_handler
def send(request: Request, delivery_id: str) -> Response:
    settings = get_settings()
    summary = service.send_delivery(delivery_id, public_base_url(request, settings.public_base_url), settings)
    return json_response(_summary_view(delivery_id, summary))


@api_handler
def get(request: Request, delivery_id: str) -> Response:
    summary = service.delivery_store(get_settings()).get_summary(delivery_id)
    if summary is None:
        raise NotFound(f"no delivery {delivery_id}")
    return json_response(_summary_view(delivery_id, summary))


def _decode_cursor(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        cursor = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not isinstance(cursor, dict):
            raise ValueError
        return cursor
    except ValueError:
        raise BadRequest("next is not a cursor this API returned", [{"field": "next", "message": "invalid"}]) from None


def _encode_cursor(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).rstrip(b"=").decode()


@api_handler
def list_all(request: Request) -> Response:
    limit = query_int(request, "limit", 50, 1, 200)
    start = _decode_cursor((request.query_params or {}).get("next"))
    items, last = service.delivery_store(get_settings()).list_summaries(limit, start)
    return json_response({"items": [_summary_view(item["delivery_id"], item) for item in items],
                          "next": _encode_cursor(last)})
