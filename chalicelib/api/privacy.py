"""A person's export and erasure, and purging a delivery (chalicelib/privacy.py); admin scope (app.py)."""

from __future__ import annotations

import re
from typing import Any

from chalice.app import Request
from pydantic import BaseModel, Field

from chalicelib import privacy
from chalicelib.api.operations import operation
from chalicelib.errors import NotFound
from chalicelib.settings import get_settings

_DELIVERY_ID = re.compile(r"^[0-9a-f]{16}$")


class RecipientExport(BaseModel):
    """Everything sendtrail keeps about one recipient (the id the delivery request gave them)."""

    recipient_id: str
    exported_at: int = Field(description="epoch milliseconds")
    delivery_logs: list[dict[str, Any]] = Field(description="each delivery log: address, attributes, status, "
                                                            "SES's answers, times")
    tracking: list[dict[str, Any]] = Field(description="each delivery's tracking item: hits with URL, time, "
                                                       "user agent and IP as configured")
    addresses: list[dict[str, Any]] = Field(description="their addresses' state: opt-out, quarantine, soft errors")


class RecipientErasure(BaseModel):
    """What erasing a recipient did; the delivery counts and consolidated tracking stay as they were."""

    recipient_id: str
    delivery_logs_erased: int = Field(description="logs kept as anonymous rows (status, reason, times)")
    unsent_logs_canceled: int = Field(description="logs not yet sent, canceled so the person is not mailed")
    tracking_items_deleted: int
    tracking_log_pages_rewritten: int = Field(description="pages of the deliveries' tracking logs that named "
                                                          "them, rewritten without their id (their hits stay "
                                                          "listed, as nobody's)")
    tracking_run_item_hits_erased: int = Field(description="their hits removed from the append layout's run "
                                                           "items (the counts stay)")
    addresses_deleted: int
    addresses_kept_as_hash: int = Field(description="opted-out, quarantined or denylisted addresses kept "
                                                    "suppressed as a keyed one-way hash")


class DeliveryPurge(BaseModel):
    """What purging a delivery deleted (address states stay)."""

    delivery_id: str
    delivery_logs_deleted: int
    tracking_items_deleted: int = Field(description="tracking and consolidated tracking items")


@operation("GET", "/api/recipients/{recipient_id}/export", response=RecipientExport, tag="privacy",
           summary="Everything kept about a recipient")
def export_recipient(request: Request, recipient_id: str) -> RecipientExport:
    """Their delivery logs, tracking items and addresses' state, found by key and index (never a scan)."""
    return RecipientExport.model_validate(privacy.export_recipient(get_settings(), recipient_id))


@operation("DELETE", "/api/recipients/{recipient_id}", response=RecipientErasure, tag="privacy",
           errors=(404, 409), summary="Erase a recipient; the counts stay, a suppression stays as a hash")
def erase_recipient(request: Request, recipient_id: str) -> RecipientErasure:
    """409 when the key ring has no suppression key to keep an opt-out under."""
    return RecipientErasure.model_validate(privacy.erase_recipient(get_settings(), recipient_id))


@operation("DELETE", "/api/deliveries/{delivery_id}", response=DeliveryPurge, tag="privacy", errors=(404, 409),
           summary="Purge a delivery: its items, logs, tracking and stats")
def purge_delivery(request: Request, delivery_id: str) -> DeliveryPurge:
    """409 while it sends: stop it first."""
    if not _DELIVERY_ID.match(delivery_id):
        raise NotFound(f"no delivery {delivery_id}")
    return DeliveryPurge.model_validate(privacy.purge_delivery(get_settings(), delivery_id))
