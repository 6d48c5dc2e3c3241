"""A person's rights over what sendtrail keeps: export it, erase it; and purging a whole delivery.

What is kept about a recipient (their id is the one the sender gave in the
delivery request): their delivery logs (address, attributes, status, SES's
answers), their tracking items (hits: URL, time, user agent, IP as the
privacy setting allows) and their address's state (opt-out, quarantine,
denylist, soft errors). Every read is a Query on an index keyed by the
recipient id, or a GetItem by address: nothing scans.

Erasing keeps the numbers: the delivery's counts and the consolidated
tracking are counters that name nobody, so they stay as they are. A delivery
log stays as an anonymous row (status, failure reason, times), without the
address, the recipient id, the attributes or SES's text; a log not yet sent
is canceled, so the person is not mailed. The tracking items go, and the
delivery's tracking logs (the Tracking tab's pages, which name each hit's
recipient) are rewritten without their id: their hits stay listed, as
nobody's. An address
that was opted out, quarantined or denylisted stays suppressed under a keyed
one-way hash (chalicelib/data/addresses.py), which the send worker checks,
so erasing a person never mails them again.

Not erased here: the redirection logs in S3 (the hits as recorded, naming
the delivery and log id, not the address) expire with the tracking
retention; CloudWatch logs carry ids, never addresses.
"""

from __future__ import annotations

from typing import Any

from chalicelib.clock import now_ms
from chalicelib.data.addresses import AddressStore
from chalicelib.data.deliveries import DeliveryStore, LogTransition
from chalicelib.data.tracking import TrackingStore
from chalicelib.errors import Conflict, NotFound
from chalicelib.mta import states, statuses
from chalicelib.settings import Settings
from chalicelib.tracking.core import KINDS
from chalicelib.tracking.items import decode_hits, decode_summary
from chalicelib.tracking.log_pages import stat_range, window_of, without_recipient

# What a delivery log says about the person (the rest, its status and times, names nobody).
PERSONAL_LOG_FIELDS = ("email", "recipient_id", "attributes", "message_id", "failure_detail", "smtp_response",
                       "bounce_status", "complaint_feedback_type")
INTERNAL_FIELDS = ("status_key", "last_run", "list_pk")


class SuppressionKeyMissing(Conflict):
    """The key ring has no suppression key: an erased suppressed address could not be kept as a hash."""


def _stores(settings: Settings) -> tuple[DeliveryStore, TrackingStore, AddressStore]:
    return (DeliveryStore(settings.deliveries_table, settings.delivery_logs_table),
            TrackingStore.of(settings),
            AddressStore(settings.addresses_table))


def _shown(item: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in item.items() if name not in INTERNAL_FIELDS}


def _shown_tracking(item: dict[str, Any]) -> dict[str, Any]:
    """A tracking item as a person reads it: each hit with its time, user agent and address spelled out
    (stored, hit ids are packed and agents and addresses are indexes into the item: chalicelib/tracking/items.py)."""
    shown = {name: value for name, value in _shown(item).items() if name not in ("hits", "uas", "ips")}
    shown["hits"] = [{"hit_id": hit.hit_id, "at": hit.ts, "kind": hit.kind, "url_id": hit.url_id,
                      "user_agent": hit.ua, "ip": hit.ip, **({"purpose": hit.purpose} if hit.purpose else {})}
                     for hit in decode_hits(item)]
    return shown


def export_recipient(settings: Settings, recipient_id: str) -> dict[str, Any]:
    """Everything kept about a recipient: delivery logs, tracking items, their addresses' state."""
    logs_store, tracking, addresses = _stores(settings)
    logs = logs_store.recipient_logs(recipient_id)
    hits = list(tracking.recipient_items(recipient_id, with_runs=True))
    emails = sorted({log["email"].strip().lower() for log in logs if log.get("email")})
    address_items = [item for item in (addresses.get(email, consistent=True) for email in emails) if item]
    if not (logs or hits):
        raise NotFound(f"nothing is kept about recipient {recipient_id}")
    return {"recipient_id": recipient_id, "exported_at": now_ms(),
            "delivery_logs": sorted((_shown(log) for log in logs), key=lambda log: (log["delivery_id"], log["log_id"])),
            "tracking": [_shown_tracking(item) for item in hits],
            "addresses": [_shown(item) for item in address_items]}


def erase_recipient(settings: Settings, recipient_id: str) -> dict[str, Any]:
    """Erase what is kept about a recipient; the counts stay. What was done, by kind."""
    logs_store, tracking, addresses = _stores(settings)
    logs = logs_store.recipient_logs(recipient_id)
    # The pages first: the tracking items say where their hits were logged, and go next.
    pages_rewritten = _erase_from_log_pages(tracking, tracking.recipient_items(recipient_id), recipient_id)
    hits_deleted = tracking.delete_recipient(recipient_id)
    run_item_hits = tracking.erase_appended(recipient_id)  # while their delivery logs still name them
    if not (logs or hits_deleted or pages_rewritten or run_item_hits):
        raise NotFound(f"nothing is kept about recipient {recipient_id}")
    emails = sorted({log["email"].strip().lower() for log in logs if log.get("email")})
    at = now_ms()
    outcomes: dict[str, int] = {}
    if emails:
        suppression_key = settings.keyring().suppression_key
        if suppression_key is None:
            raise SuppressionKeyMissing("the signing key ring has no suppression_key: add one (sendtrail keys "
                                        "rotate adds it) so erased opt-outs stay honoured")
        for email in emails:
            outcome = addresses.erase(email, suppression_key, at)
            if outcome:
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
    canceled = 0
    for log in logs:
        canceled += _erase_log(logs_store, log, at)
    return {"recipient_id": recipient_id, "delivery_logs_erased": len(logs), "unsent_logs_canceled": canceled,
            "tracking_items_deleted": hits_deleted, "tracking_log_pages_rewritten": pages_rewritten,
            "tracking_run_item_hits_erased": run_item_hits,
            "addresses_deleted": outcomes.get("deleted", 0),
            "addresses_kept_as_hash": outcomes.get("suppressed_as_hash", 0)}


def _erase_from_log_pages(tracking: TrackingStore, items: list[dict[str, Any]], recipient_id: str,
                          attempts: int = 5) -> int:
    """Blank the recipient's id in the log pages that hold their hits; how many pages were rewritten.

    Where to look comes from their tracking items: each stored hit's kind and
    5-minute window, and the span of the hits evicted into the summary (of
    the kinds it counts). Reads are bounded by the person's own hits, never
    the whole delivery. A page changed meanwhile (another erasure) is read
    again and rewritten.
    """
    spans: dict[tuple[str, str], set[tuple[int, int]]] = {}
    for item in items:
        delivery_id = str(item["delivery_id"])
        for hit in decode_hits(item):
            spans.setdefault((delivery_id, hit.kind), set()).add((window_of(hit.ts), window_of(hit.ts)))
        summary = decode_summary(item)
        if summary is not None:
            for kind, count in zip(KINDS, summary.kinds, strict=False):
                if count:
                    spans.setdefault((delivery_id, kind), set()).add(
                        (window_of(summary.first[0]), window_of(summary.last[0])))
    rewritten = 0
    for (delivery_id, kind), windows in sorted(spans.items()):
        seen: set[str] = set()
        for first, last in sorted(windows):
            for page in tracking.log_pages_down(delivery_id, *stat_range(kind, first, last)):
                if page["stat"] in seen:
                    continue
                seen.add(page["stat"])
                for _ in range(attempts):
                    changed = without_recipient(page, recipient_id) if page else None
                    if changed is None or tracking.rewrite_log_page(changed):
                        rewritten += changed is not None
                        break
                    page = tracking.get_stat(delivery_id, page["stat"]) or {}
                else:
                    raise Conflict(f"a tracking log page of delivery {delivery_id} kept changing while being "
                                   "erased: try again")
    return rewritten


def _erase_log(store: DeliveryStore, log: dict[str, Any], at: int, attempts: int = 5) -> int:
    """Make one log anonymous (a prepared one canceled, so it is never sent); 1 when it was canceled."""
    delivery_id, log_id = log["delivery_id"], int(log["log_id"])
    for _ in range(attempts):
        status = log["status"]
        target = statuses.CANCELED if status == statuses.PREPARED else status
        remove = tuple(name for name in PERSONAL_LOG_FIELDS if name in log)
        if store.transition(delivery_id, [LogTransition(log_id, status, target, values={"erased_at": at},
                                                        remove=remove)], at):
            return int(target != status)
        log = store.get_log(delivery_id, log_id, consistent=True) or {}  # its status moved meanwhile: again
        if not log:
            return 0
    raise Conflict(f"delivery log {delivery_id}/{log_id} kept changing while being erased: try again")


def purge_delivery(settings: Settings, delivery_id: str) -> dict[str, Any]:
    """Delete a delivery and everything recorded for it (not while it sends); address states stay."""
    logs_store, tracking, _ = _stores(settings)
    summary = logs_store.get_summary(delivery_id, consistent=True)
    if summary is None:
        raise NotFound(f"no delivery {delivery_id}")
    if summary.get("state") in states.SENDING:
        raise Conflict(f"delivery {delivery_id} is {summary['state']}: stop it before purging it")
    tracking_deleted = tracking.delete_delivery(delivery_id, int(summary.get("recipients") or 0))
    logs_deleted = logs_store.delete_delivery(delivery_id)
    return {"delivery_id": delivery_id, "delivery_logs_deleted": logs_deleted,
            "tracking_items_deleted": tracking_deleted}
