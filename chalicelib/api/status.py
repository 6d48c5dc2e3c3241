"""GET /api/status: every component's OK, WARN or FAIL and the reason (chalicelib/status.py).

Always 200 with the report when the check itself ran: the overall `status`
says whether anything is wrong (`sendtrail status` exits 0, 1 or 2 on OK,
WARN or FAIL).
"""

from __future__ import annotations

from chalice.app import Request

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
