"""A recipient's tracking item: their hits for one delivery, compactly, and back.

One item per (delivery, log id) rather than per hit keeps a run's writes to
one per touched recipient. Hits are stored as tab-separated strings, with
user agents and IPs each stored once per item and referred to by index:

    hits = ["<hit_id>\\t<ts>\\t<kind>\\t<url_id>\\t<ua index>\\t<ip index>\\t<verdict>", ...]  sorted by (ts, hit_id)
    uas  = ["Mozilla/5.0 ...", ...]
    ips  = ["203.0.113.0", ...]
    sent_at = when the message was sent (ms), from the delivery log, once known

The verdict is the hit's human/machine classification as counted
(chalicelib/tracking/classify.py): the next run subtracts the hit with it.
Items written before classification have six fields: their hits are
UNCLASSIFIED (counted in no human or machine counter until reclassified).
A hit whose request declared a prefetch or preview has an eighth field, its
`purpose` (core.PURPOSES), after the verdict (-1 when none is known).

With at most 500 hits and 512-byte user agents an item stays well under
DynamoDB's 400 KB.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from chalicelib.tracking.classify import UNCLASSIFIED
from chalicelib.tracking.core import Hit, hit_order

DAY_SECONDS = 86_400


def encode_recipient(delivery_id: str, log_id: int, hits: Sequence[Hit], recipient_id: str | None, now_ms: int,
                     retention_days: int, verdicts: Sequence[int] = (), sent_at: int | None = None,
                     domain: str | None = None) -> dict[str, Any]:
    """The tracking item of one recipient (without `last_run`, which the data layer adds).

    `verdicts`, when given, are those of `hits` in the order given."""
    marks = dict(zip((hit.hit_id for hit in hits), verdicts, strict=False))  # no verdicts given: none marked
    ordered = sorted(hits, key=hit_order)
    uas: dict[str, int] = {}
    ips: dict[str, int] = {}
    lines = []
    for hit in ordered:
        ua_index = uas.setdefault(hit.ua, len(uas))
        ip_index = ips.setdefault(hit.ip, len(ips))
        line = f"{hit.hit_id}\t{hit.ts}\t{hit.kind}\t{hit.url_id}\t{ua_index}\t{ip_index}"
        if hit.hit_id in marks or hit.purpose:
            line = f"{line}\t{marks.get(hit.hit_id, UNCLASSIFIED)}"
        lines.append(f"{line}\t{hit.purpose}" if hit.purpose else line)
    last_hit_at = ordered[-1].ts if ordered else 0
    item: dict[str, Any] = {
        "delivery_id": delivery_id,
        "log_id": log_id,
        "hits": lines,
        "uas": list(uas),
        "ips": list(ips),
        "hit_count": len(ordered),
        "first_hit_at": ordered[0].ts if ordered else 0,
        "last_hit_at": last_hit_at,
        "updated_at": now_ms,
        "expires_at_epoch": max(last_hit_at, now_ms) // 1000 + retention_days * DAY_SECONDS,
    }
    if recipient_id:
        item["recipient_id"] = recipient_id
    if sent_at is not None:
        item["sent_at"] = sent_at
    if domain:
        item["domain"] = domain  # the address's, for the statistics by domain
    return item


def decode_hits(item: Mapping[str, Any]) -> tuple[Hit, ...]:
    """The hits of a stored tracking item."""
    uas = list(item.get("uas") or [])
    ips = list(item.get("ips") or [])
    delivery_id = str(item["delivery_id"])
    log_id = int(item["log_id"])
    hits = []
    for line in item.get("hits") or []:
        fields = str(line).split("\t")
        hit_id, ts, kind, url_id, ua_index, ip_index = fields[:6]
        hits.append(Hit(hit_id, int(ts), kind, delivery_id, log_id, int(url_id), uas[int(ua_index)],
                        ips[int(ip_index)], fields[7] if len(fields) > 7 else ""))
    return tuple(hits)


def decode_verdicts(item: Mapping[str, Any]) -> dict[str, int]:
    """The verdict each stored hit was counted with, by hit id (UNCLASSIFIED when the item has none)."""
    verdicts = {}
    for line in item.get("hits") or []:
        fields = str(line).split("\t")
        verdicts[fields[0]] = int(fields[6]) if len(fields) > 6 else UNCLASSIFIED
    return verdicts
