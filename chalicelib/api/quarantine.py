"""/api/quarantine: the addresses later deliveries skip (quarantined and denylisted), newest first.

A Query on the addresses table's sparse by-quarantine index: only
quarantined and denylisted addresses are in it, so listing reads nothing
else. `error_count` is the soft-error count as it stands now (zero after 10
days without error, chalicelib/mta/quarantine.py).
"""

from __future__ import annotations

import time
from typing import Any

from chalice import Response
from chalice.app import Request

from chalicelib.api.http import api_handler, decode_cursor, encode_cursor, json_response, query_int
from chalicelib.data.addresses import AddressStore
from chalicelib.mta.quarantine import AddressState
from chalicelib.mta.reasons import REASON_CODES
from chalicelib.settings import get_settings


def _entry(item: dict[str, Any], now_ms: int) -> dict[str, Any]:
    state = AddressState.from_item(item)
    return {"address": item["address"], "status": state.status, "reason": state.reason,
            "code": REASON_CODES.get(state.reason or ""), "since": state.since,
            "error_count": state.error_count_at(now_ms), "last_error_at": state.last_error_at,
            "delivery_id": state.delivery_id}


@api_handler
def list_quarantine(request: Request) -> Response:
    limit = query_int(request, "limit", 50, 1, 200)
    items, last = AddressStore(get_settings().addresses_table).list_quarantine(limit, decode_cursor(request))
    now_ms = time.time_ns() // 1_000_000
    return json_response({"items": [_entry(item, now_ms) for item in items], "next": encode_cursor(last)})
