"""What every report needs: the stores, and the delivery (404 when there is none)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from chalicelib.data.deliveries import DeliveryStore
from chalicelib.data.tracking import TrackingStore
from chalicelib.errors import NotFound
from chalicelib.settings import Settings, get_settings

DELIVERY_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class Stores:
    settings: Settings
    deliveries: DeliveryStore
    tracking: TrackingStore

    def summary(self, delivery_id: str) -> dict[str, Any]:
        """The delivery's summary item (one GetItem), or NotFound for an unknown or malformed id."""
        summary = self.deliveries.get_summary(delivery_id) if DELIVERY_ID.match(delivery_id) else None
        if summary is None:
            raise NotFound(f"no delivery {delivery_id}")
        return summary


def stores(settings: Settings | None = None) -> Stores:
    settings = settings or get_settings()
    return Stores(settings, DeliveryStore(settings.deliveries_table, settings.delivery_logs_table),
                  TrackingStore.of(settings))


def sending_started_at(summary: dict[str, Any]) -> int | None:
    """When sending started (ms): the delivery left start_pending, else its first accepted message."""
    for name in ("started_at", "first_sent_at"):
        if summary.get(name) is not None:
            return int(summary[name])
    return None
