"""The delivery's Tracking tab: its tracking logs newest first, a page at a time, optionally of one kind.

Reads the log pages the workflow writes per kind and 5-minute window
(chalicelib/tracking/log_pages.py): one Query per kind asked, from the
cursor's window down, items read only as the page needs them, merged by
window. What a page costs depends on the page size, not on the delivery's.
Each hit's class and reasons are read from its recipient's tracking item
(one BatchGetItem for the page's recipients), so they are the ones it
counts with now: a later hit may have turned an earlier one machine.

In the append layout (settings.tracking_layout), the run items are read
too: every shard of the delivery (a Query per 45 recipients, in parallel),
their hits with the verdicts they count with now, and the page's
recipients' ids from their delivery logs (one BatchGetItem). What a page
costs then grows with the delivery's stored hits (a few kilobytes per 45
recipients), not with the page size alone.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

from chalicelib.data.tracking import delivery_log_facts
from chalicelib.errors import InvalidField
from chalicelib.reports.common import stores
from chalicelib.reports.models import DeliveryTracking, HitKind, TrackingCursor, TrackingLogEntry
from chalicelib.settings import Settings
from chalicelib.tracking.classify import UNCLASSIFIED, hit_class, reason_names
from chalicelib.tracking.core import KINDS
from chalicelib.tracking.items import decode_verdicts
from chalicelib.tracking.log_pages import LoggedHit, decode_page, kind_prefix, window_in, window_of

MAX_LIMIT = 200


class _Pages:
    """A kind's pages, newest window first, with a look at the next one."""

    def __init__(self, items: Iterator[dict[str, Any]]) -> None:
        self._items = items
        self.head: Optional[dict[str, Any]] = next(items, None)

    def window(self) -> Optional[int]:
        return None if self.head is None else window_in(self.head["stat"])

    def take(self) -> dict[str, Any]:
        """The head item (the caller checked window() is not None) and advance."""
        item, self.head = self.head, next(self._items, None)
        if item is None:
            raise LookupError("take() past the last page")
        return item


def delivery_tracking(delivery_id: str, kind: Optional[HitKind] = None, limit: int = 50,
                      before: Optional[TrackingCursor] = None, settings: Optional[Settings] = None
                      ) -> DeliveryTracking:
    """The delivery's hits older than `before` (all of them without it), newest first, `limit` at most."""
    if kind is not None and kind not in KINDS:
        raise InvalidField("kind", f"kind must be one of {', '.join(KINDS)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidField("limit", f"limit must be between 1 and {MAX_LIMIT}")
    context = stores(settings)
    context.summary(delivery_id)
    cursor = (before.at, before.hit_id) if before else None
    top = f"{window_of(cursor[0]):015d}#~" if cursor else "~"
    streams = [_Pages(context.tracking.log_pages_down(delivery_id, kind_prefix(name), kind_prefix(name) + top,
                                                      page_size=min(limit + 1, 50)))
               for name in ((kind,) if kind else KINDS)]
    found: list[LoggedHit] = []
    while len(found) <= limit:
        windows = [window for stream in streams if (window := stream.window()) is not None]
        if not windows:
            break
        newest = max(windows)
        batch: list[LoggedHit] = []
        for stream in streams:
            while stream.window() == newest:
                batch.extend(hit for hit in decode_page(stream.take()) if cursor is None or hit.order < cursor)
        found.extend(sorted(batch, key=lambda hit: hit.order, reverse=True))
    page = found[:limit]
    links = (context.deliveries.get_links(delivery_id) or {}).get("urls") or {} if page else {}
    verdicts: dict[str, int] = {}
    for item in context.tracking.recipient_hits((delivery_id, hit.log_id) for hit in page) if page else ():
        verdicts.update(decode_verdicts(item))
    items = [TrackingLogEntry(at=hit.at, kind=hit.kind, recipient_id=hit.recipient_id, log_id=hit.log_id,
                              url_id=hit.url_id, url=str((links.get(str(hit.url_id)) or {}).get("url", "")),
                              label=str((links.get(str(hit.url_id)) or {}).get("label", "")),
                              user_agent=hit.user_agent, hit_id=hit.hit_id,
                              hit_class=hit_class(verdict := verdicts.get(hit.hit_id, UNCLASSIFIED)),
                              reasons=reason_names(verdict))
             for hit in page]
    more = len(found) > limit
    if context.tracking.reads_runs and context.tracking.runs is not None:
        items, more_appended = _with_run_items(context, delivery_id, kind, limit, cursor, items, links)
        more = more or more_appended
    return DeliveryTracking(delivery_id=delivery_id, kind=kind, items=items,
                            next=TrackingCursor(at=items[-1].at, hit_id=items[-1].hit_id) if more and items else None)


def _with_run_items(context: Any, delivery_id: str, kind: Optional[str], limit: int,
                    cursor: Optional[tuple[int, str]], logged: list[TrackingLogEntry],
                    links: dict[str, Any]) -> tuple[list[TrackingLogEntry], bool]:
    """The page of the log pages' entries (`logged`, at most `limit`) and the run items' hits merged, newest
    first, and whether more follow."""
    summary = context.summary(delivery_id)
    hits = sorted(((hit, verdict) for hit, verdict in context.tracking.runs.delivery_hits(
                       delivery_id, int(summary.get("recipients") or 0))
                   if (kind is None or hit.kind == kind) and (cursor is None or (hit.ts, hit.hit_id) < cursor)),
                  key=lambda entry: (entry[0].ts, entry[0].hit_id), reverse=True)[:limit + 1]
    if hits and not links:
        links = (context.deliveries.get_links(delivery_id) or {}).get("urls") or {}
    facts = delivery_log_facts(context.settings.delivery_logs_table, {hit.recipient for hit, _ in hits})
    appended = [TrackingLogEntry(at=hit.ts, kind=hit.kind,
                                 recipient_id=str((facts.get(hit.recipient) or {}).get("recipient_id") or ""),
                                 log_id=hit.log_id, url_id=hit.url_id,
                                 url=str((links.get(str(hit.url_id)) or {}).get("url", "")),
                                 label=str((links.get(str(hit.url_id)) or {}).get("label", "")),
                                 user_agent=hit.ua, hit_id=hit.hit_id, hit_class=hit_class(verdict),
                                 reasons=reason_names(verdict))
                for hit, verdict in hits]
    merged = sorted(logged + appended, key=lambda entry: (entry.at, entry.hit_id), reverse=True)
    return merged[:limit], len(merged) > limit
