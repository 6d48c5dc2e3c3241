"""A person's export and erasure, and purging a delivery (chalicelib/privacy.py); admin scope (app.py)."""

from __future__ import annotations

from chalice import Response
from chalice.app import Request

from chalicelib import privacy
from chalicelib.api.deliveries import _known
from chalicelib.api.http import api_handler, json_response
from chalicelib.settings import get_settings


@api_handler
def export_recipient(request: Request, recipient_id: str) -> Response:
    """GET /api/recipients/{id}/export: every delivery log, tracking item and address state kept about them."""
    return json_response(privacy.export_recipient(get_settings(), recipient_id),
                         headers={"Content-Disposition": 'attachment; filename="recipient-export.json"'})


@api_handler
def erase_recipient(request: Request, recipient_id: str) -> Response:
    """DELETE /api/recipients/{id}: erase them; the counts stay and a suppressed address stays suppressed."""
    return json_response(privacy.erase_recipient(get_settings(), recipient_id))


@api_handler
def purge_delivery(request: Request, delivery_id: str) -> Response:
    """DELETE /api/deliveries/{id}: the delivery, its logs, tracking and stats (409 while it sends)."""
    _known(delivery_id)
    return json_response(privacy.purge_delivery(get_settings(), delivery_id))
