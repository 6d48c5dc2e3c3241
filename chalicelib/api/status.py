"""GET /api/status: every component's OK, WARN or FAIL and the reason (chalicelib/status.py).

Always 200 with the report when the check itself ran: the overall `status`
says whether anything is wrong (`sendtrail status` exits 0, 1 or 2 on OK,
WARN or FAIL).
"""

from __future__ import annotations

from chalice import Response
from chalice.app import Request

from chalicelib import status
from chalicelib.api.http import api_handler, json_response
from chalicelib.base_url import public_base_url
from chalicelib.clock import now_ms
from chalicelib.hits import endpoints as hits
from chalicelib.settings import get_settings


@api_handler
def status_report(request: Request) -> Response:
    settings = get_settings()
    context = status.StatusContext(settings, now_ms(), redirection_status=lambda: hits.status(request),
                                   tracking_base_url=public_base_url(request, settings.public_base_url))
    return json_response(status.report(context))


@api_handler
def signing_keys(request: Request) -> Response:
    """GET /api/signing-keys: each key, whether it is in the ring, until when its links are valid, when it may go.

    `sendtrail keys rotate` announces the retired key's removal date from
    this answer; times are epoch milliseconds, like the rest of the API.
    """
    settings = get_settings()
    return json_response({"keys": status.signing_key_schedule(settings),
                          "ring_max_age_seconds": settings.signing_keys_max_age_seconds,
                          "unsubscribe_days": settings.delivery_log_retention_days,
                          "hits_in_flight_hours": settings.workflow_lookback_hours})
