"""The quarantine list: the addresses later deliveries skip (quarantined and denylisted), newest first.

A Query on the addresses table's sparse by-quarantine index: only
quarantined and denylisted addresses are in it, so listing reads nothing
else. `error_count` is the soft-error count as it stands now (zero after 10
days without error, chalicelib/mta/quarantine.py).
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Optional

from pydantic import BaseModel, Field

from chalicelib.api.models import QueryParameters
from chalicelib.data.addresses import AddressStore
from chalicelib.mta.quarantine import AddressState
from chalicelib.mta.reasons import REASON_CODES


class QuarantinedAddress(BaseModel):
    address: str
    status: Literal["quarantined", "denylisted"]
    reason: Optional[str] = Field(description="the failure reason that excluded it, e.g. user_unknown")
    code: Optional[int] = Field(description="Campaign's code of that reason")
    since: Optional[int] = Field(description="when it was excluded, epoch ms")
    error_count: int = Field(description="soft errors counted now (reset after 10 days without error)")
    last_error_at: Optional[int]
    delivery_id: Optional[str] = Field(description="the delivery whose message caused it")


class QuarantineList(BaseModel):
    items: list[QuarantinedAddress]
    next: Optional[str] = Field(description="pass as ?next= for the following page; null on the last")


class QuarantineQuery(QueryParameters):
    limit: int = Field(default=50, ge=1, le=200, description="addresses per page")
    next: Optional[str] = Field(default=None, description="the `next` of the previous page")


def entry(item: Mapping[str, Any], now_ms: int) -> QuarantinedAddress:
    state = AddressState.from_item(item)
    return QuarantinedAddress(address=item["address"], status=state.status, reason=state.reason,
                              code=REASON_CODES.get(state.reason or ""), since=state.since,
                              error_count=state.error_count_at(now_ms), last_error_at=state.last_error_at,
                              delivery_id=state.delivery_id)


def list_page(table: str, limit: int, start: Mapping[str, Any] | None, now_ms: int
              ) -> tuple[list[QuarantinedAddress], dict[str, Any] | None]:
    """A page of the quarantine list and the key the following page starts after (None on the last)."""
    items, last = AddressStore(table).list_quarantine(limit, start)
    return [entry(item, now_ms) for item in items], last
