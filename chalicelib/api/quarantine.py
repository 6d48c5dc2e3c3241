"""/api/quarantine: the addresses later deliveries skip (chalicelib/mta/quarantine_list.py)."""

from __future__ import annotations

from chalice.app import Request

from chalicelib.api.http import cursor_value, encode_cursor
from chalicelib.api.operations import operation
from chalicelib.clock import now_ms
from chalicelib.mta.quarantine_list import QuarantineList, QuarantineQuery, list_page
from chalicelib.settings import get_settings

SCOPE = "quarantine"  # the listing its cursors belong to


@operation("GET", "/api/quarantine", query=QuarantineQuery, response=QuarantineList, errors=(), tag="deliveries",
           summary="Quarantined and denylisted addresses, newest first")
def list_quarantine(request: Request, query: QuarantineQuery) -> QuarantineList:
    """A Query on a sparse index that holds only the excluded addresses."""
    items, last = list_page(get_settings().addresses_table, query.limit, cursor_value(query.next, SCOPE), now_ms())
    return QuarantineList(items=items, next=encode_cursor(last, SCOPE))
