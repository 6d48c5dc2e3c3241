"""The tracking routes' queries: indicators, user agents, a recipient's hits (the other reports: chalicelib/reports/).

Every read is a GetItem, BatchGetItem or Query on a key (the stats items of
one delivery, one recipient's item keys through the by-recipient-first-hit
index, then the items); nothing scans. Answers are the models of chalicelib/tracking/models.py.
"""

from __future__ import annotations

import heapq
import re
from typing import Any

from chalicelib.data.deliveries import DeliveryStore
from chalicelib.data.tracking import UA_PREFIX, TrackingStore
from chalicelib.errors import NotFound
from chalicelib.settings import Settings
from chalicelib.tracking import indicators as formulas
from chalicelib.tracking.classify import UNCLASSIFIED, hit_class, reason_names
from chalicelib.tracking.core import counted_open_ids
from chalicelib.tracking.items import decode_hits, decode_summary, decode_verdicts
from chalicelib.tracking.models import (
    FamilyCount,
    Indicators,
    TrackingHit,
    UserAgentBreakdown,
)
from chalicelib.tracking.useragents import DIMENSIONS

_DELIVERY_ID = re.compile(r"^[0-9a-f]{16}$")


class TrackingReports:
    def __init__(self, settings: Settings) -> None:
        self.deliveries = DeliveryStore(settings.deliveries_table, settings.delivery_logs_table)
        self.tracking = TrackingStore.of(settings)

    def summary(self, delivery_id: str) -> dict[str, Any]:
        """The delivery's summary, or NotFound (also for an id that cannot be one)."""
        summary = self.deliveries.get_summary(delivery_id) if _DELIVERY_ID.match(delivery_id) else None
        if summary is None:
            raise NotFound(f"no delivery {delivery_id}")
        return summary

    def indicators(self, delivery_id: str) -> Indicators:
        summary = self.summary(delivery_id)
        stats = self.tracking.indicators(delivery_id)
        return Indicators.model_validate({"delivery_id": delivery_id, **formulas.compute(summary, stats)})

    def user_agents(self, delivery_id: str) -> UserAgentBreakdown:
        self.summary(delivery_id)
        breakdown: dict[str, list[FamilyCount]] = {dimension: [] for dimension in DIMENSIONS}
        for item in self.tracking.counter_items(delivery_id, UA_PREFIX):
            dimension, _, family = item["stat"][len(UA_PREFIX):].partition("#")
            opens, clicks = int(item.get("opens") or 0), int(item.get("clicks") or 0)
            if dimension in breakdown and (opens or clicks):
                breakdown[dimension].append(FamilyCount(family=family, opens=opens, clicks=clicks))
        for rows in breakdown.values():
            rows.sort(key=lambda row: (-row.opens, -row.clicks, row.family))
        return UserAgentBreakdown.model_validate({"delivery_id": delivery_id, **breakdown, "definitions": {
            "opens": "open hits counted after the 1-minute rule", "clicks": "click hits (URL type click)"}})

    def recipient_tracking(self, recipient_id: str, limit: int, before: tuple[int, str] | None
                           ) -> tuple[list[TrackingHit], tuple[int, str] | None]:
        """A recipient's hits across deliveries, newest first, and where the next page starts (or None).

        The recipient's tracking items come from the by-recipient index (those
        whose first hit is not after `before`), most recent last hit first;
        decoding stops as soon as no further item can hold a hit newer than
        the page's oldest (its last hit is older). `before` is the (time, hit
        id) of the previous page's oldest hit.
        """
        newest: list[tuple[tuple[int, str], Any]] = []  # min-heap of the limit+1 newest candidates
        first_hit_before = before[0] + 1 if before is not None else None
        for item in self.tracking.recipient_items(recipient_id, first_hit_before):
            if len(newest) > limit and int(item["last_hit_at"]) < newest[0][0][0]:
                break
            hits = decode_hits(item)
            counted = counted_open_ids(hits, decode_summary(item))  # the rule goes on past evicted hits
            verdicts = decode_verdicts(item)
            for hit in hits:
                order = (hit.ts, hit.hit_id)
                if before is not None and order >= before:
                    continue
                entry = (order, {"hit": hit, "counted": hit.kind != "open" or hit.hit_id in counted,
                                 "verdict": verdicts.get(hit.hit_id, UNCLASSIFIED)})
                if len(newest) <= limit:
                    heapq.heappush(newest, entry)
                elif order > newest[0][0]:
                    heapq.heapreplace(newest, entry)
        ordered = sorted(newest, key=lambda entry: entry[0], reverse=True)
        page, more = ordered[:limit], len(ordered) > limit
        links: dict[str, dict[str, Any]] = {}
        items = []
        for _, candidate in page:
            hit = candidate["hit"]
            if hit.delivery_id not in links:
                links[hit.delivery_id] = (self.deliveries.get_links(hit.delivery_id) or {}).get("urls") or {}
            url = links[hit.delivery_id].get(str(hit.url_id)) or {}
            items.append(TrackingHit(delivery_id=hit.delivery_id, log_id=hit.log_id, hit_id=hit.hit_id, at=hit.ts,
                                     kind=hit.kind, url_id=hit.url_id, url=url.get("url", ""),
                                     label=url.get("label", ""), user_agent=hit.ua, ip=hit.ip,
                                     counted=candidate["counted"], hit_class=hit_class(candidate["verdict"]),
                                     reasons=reason_names(candidate["verdict"])))
        return items, (page[-1][0] if more and page else None)

