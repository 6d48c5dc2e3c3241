"""GET /api/status: every component's OK, WARN or FAIL and the reason (chalicelib/status.py).

Always 200 with the report when the check itself ran: the overall `status`
says whether anything is wrong (`sendtrail status` exits 0, 1 or 2 on OK,
WARN or FAIL).
"""

from __future__ import annotations

from typing import Optional

from chalice.app import Request
from pydantic import BaseModel, Field

from chalicelib import status
from chalicelib.api.models import StatusReport
from chalicelib.api.operations import operation
from chalicelib.base_url import public_base_url
from chalicelib.clock import now_ms
from chalicelib.hits import endpoints as hits
from chalicelib.settings import get_settings


@operation("GET", "/api/status", response=StatusReport, errors=(), tag="operations",
           summary="The status check: every component's state and why")
def status_report(request: Request) -> StatusReport:
    """Campaign's pdump and /r/test in one; 200 whenever the check ran, the overall `status` says the rest."""
    settings = get_settings()
    context = status.StatusContext(settings, now_ms(), redirection_status=lambda: hits.status(request),
                                   tracking_base_url=public_base_url(request, settings.public_base_url))
    return StatusReport.model_validate(status.report(context))


class SigningKey(BaseModel):
    key_id: int
    in_ring: bool = Field(description="the functions' key ring holds it (false: links it signed answer 'not valid')")
    active: bool = Field(description="it signs new links")
    links_valid_until: Optional[int] = Field(description="epoch ms: the latest expiry of the links it signed, "
                                                         "List-Unsubscribe included (null: it signed nothing kept)")
    may_remove_after: Optional[int] = Field(description="epoch ms: when it may leave the ring (their hits "
                                                        "processed too)")
    announced_removal: Optional[int] = Field(description="epoch ms: the date `sendtrail keys rotate` announced")


class SigningKeySchedule(BaseModel):
    """Each link-signing key: whether it is in the ring, until when its links are valid, when it may go."""

    keys: list[SigningKey]
    ring_max_age_seconds: int = Field(description="how long functions keep the ring they read")
    unsubscribe_days: int = Field(description="how long after sending an unsubscribe link works")
    hits_in_flight_hours: int = Field(description="how late the tracking workflow still verifies a hit")


@operation("GET", "/api/signing-keys", response=SigningKeySchedule, errors=(), tag="operations",
           summary="The link-signing keys and when each may be removed")
def signing_keys(request: Request) -> SigningKeySchedule:
    """What `sendtrail keys list` shows and `sendtrail keys rotate` announces the retired key's date from."""
    settings = get_settings()
    return SigningKeySchedule.model_validate({
        "keys": status.signing_key_schedule(settings), "ring_max_age_seconds": settings.signing_keys_max_age_seconds,
        "unsubscribe_days": settings.delivery_log_retention_days,
        "hits_in_flight_hours": settings.workflow_lookback_hours})
