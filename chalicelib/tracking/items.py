"""A recipient's tracking item: their hits for one delivery, compactly, and back.

One item per (delivery, log id) rather than per hit keeps a run's writes to
one per touched recipient. Hits are stored as tab-separated strings, with
user agents and IPs each stored once per item and referred to by index:

    hits = ["<hit_id>\\t<ts>\\t<kind>\\t<url_id>\\t<ua index>\\t<ip index>\\t<verdict>", ...]  sorted by (ts, hit_id)
    uas  = ["Mozilla/5.0 ...", ...]
    ips  = ["203.0.113.0", ...]
    sent_at = when the message was sent (ms), from the delivery log, once known

A hit id as the hit path makes them (32 hex digits, the first 12 the hit's
time in ms) with that time is stored as 22 base64url characters and an
empty <ts> (pack_hit): a third less per line, which keeps a recipient's
item of about 10 hits within one 1 KB write unit. Other ids (and items
written before) have both fields as they are.

The verdict is the hit's human/machine classification as counted
(chalicelib/tracking/classify.py): the next run subtracts the hit with it.
Items written before classification have six fields: their hits are
UNCLASSIFIED (counted in no human or machine counter until reclassified).
A hit whose request declared a prefetch or preview has an eighth field, its
`purpose` (core.PURPOSES), after the verdict (-1 when none is known).

A recipient's stored hits are bounded (core.aggregate): the first ones and
the latest ones by (ts, hit_id), 100 + 100 by default
(SENDTRAIL_WORKFLOW_FIRST_HITS_PER_RECIPIENT / _LAST_HITS_PER_RECIPIENT).
The hits between are evicted, still counted, into `evicted` (core.Summary):

    evicted = {"count": n, "first": [ts, hit_id], "last": [ts, hit_id],
               "last_open": ts, "last_open_human": ts (each only when there is one),
               "flags": "opened,clicked,...", "urls": [url_id, ...], "urls_human": [...],
               "requesters": "<16 hex digits per requester hash>", "requesters_over": n,
               "filter": "<base64 of the 4 KiB Bloom filter of their hit ids>",
               "kinds": [clicks, opens, optouts, mirrors], "machine": n}

Items written before the bound have no `evicted` (and up to 500 hits): they
read as hits with no summary, and the next run that touches them evicts
what is past the bound. 200 hit lines (about 60 bytes each), user agents of
at most 512 bytes and a summary of at most 12 KB keep an item far under
DynamoDB's 400 KB; a rewrite costs about 13 write units at the bound, about
1 for a recipient with a few hits.
"""

from __future__ import annotations

import base64
import re
from typing import Any, Mapping, Sequence

from chalicelib.tracking.classify import UNCLASSIFIED
from chalicelib.tracking.core import Hit, Summary, hit_order

DAY_SECONDS = 86_400
_TIMED_HIT_ID = re.compile(r"[0-9a-f]{32}")  # chalicelib/hits/records.py new_hit_id: 12 hex digits of ms, 20 random


def packed_id(hit_id: str, ts: int) -> str | None:
    """A hit path id at its own time as 22 base64url characters (the time is the id's first 12 hex digits),
    or None for any other id and time (stored as they are)."""
    if _TIMED_HIT_ID.fullmatch(hit_id) and int(hit_id[:12], 16) == ts:
        return base64.urlsafe_b64encode(bytes.fromhex(hit_id)).decode("ascii")[:22]
    return None


def pack_hit(hit_id: str, ts: int) -> str:
    """"<hit id>\\t<ts>" as a stored line starts: the packed id and no time when there is one (packed_id)."""
    packed = packed_id(hit_id, ts)
    return f"{packed}\t" if packed else f"{hit_id}\t{ts}"


def unpack_hit(hit_field: str, ts_field: str) -> tuple[str, int]:
    """(hit id, ts) of a stored line's first two fields (pack_hit)."""
    if ts_field:
        return hit_field, int(ts_field)
    hit_id = base64.urlsafe_b64decode(hit_field + "==").hex()
    return hit_id, int(hit_id[:12], 16)


def encode_recipient(delivery_id: str, log_id: int, hits: Sequence[Hit], recipient_id: str | None, now_ms: int,
                     retention_days: int, verdicts: Sequence[int] = (), sent_at: int | None = None,
                     domain: str | None = None, summary: Summary | None = None) -> dict[str, Any]:
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
        line = f"{pack_hit(hit.hit_id, hit.ts)}\t{hit.kind}\t{hit.url_id}\t{ua_index}\t{ip_index}"
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
    if summary is not None:
        item["evicted"] = encode_summary(summary)
    return item


_FLAGS = ("opened", "clicked", "optout", "human", "clicked_human")


def encode_summary(summary: Summary) -> dict[str, Any]:
    """The `evicted` map of a tracking item."""
    encoded: dict[str, Any] = {
        "count": summary.count, "first": list(summary.first), "last": list(summary.last),
        "flags": ",".join(name for name in _FLAGS if getattr(summary, name)),
        "urls": sorted(summary.urls), "urls_human": sorted(summary.urls_human),
        "requesters": "".join(f"{value:016x}" for value in sorted(summary.requesters)),
        "requesters_over": summary.requesters_over,
        "filter": base64.b64encode(summary.filter).decode("ascii"),
        "kinds": list(summary.kinds), "machine": summary.machine,
    }
    for name in ("last_open", "last_open_human"):
        if getattr(summary, name) is not None:
            encoded[name] = getattr(summary, name)
    return encoded


def decode_summary(item: Mapping[str, Any]) -> Summary | None:
    """The summary of a tracking item's evicted hits; None for an item with none (all items before the bound)."""
    encoded = item.get("evicted")
    if not encoded:
        return None
    flags = set(str(encoded.get("flags") or "").split(","))
    requesters = str(encoded.get("requesters") or "")

    def key(name: str) -> tuple[int, str]:
        ts, hit_id = encoded[name]
        return (int(ts), str(hit_id))

    def optional(name: str) -> int | None:
        return int(encoded[name]) if encoded.get(name) is not None else None

    return Summary(
        count=int(encoded["count"]), first=key("first"), last=key("last"),
        last_open=optional("last_open"), last_open_human=optional("last_open_human"),
        **{name: name in flags for name in _FLAGS},
        urls=frozenset(int(url) for url in encoded.get("urls") or ()),
        urls_human=frozenset(int(url) for url in encoded.get("urls_human") or ()),
        requesters=frozenset(int(requesters[at:at + 16], 16) for at in range(0, len(requesters), 16)),
        requesters_over=int(encoded.get("requesters_over") or 0),
        filter=base64.b64decode(str(encoded.get("filter") or "")),
        kinds=tuple(int(count) for count in encoded.get("kinds") or (0, 0, 0, 0)),
        machine=int(encoded.get("machine") or 0),
    )


def decode_hits(item: Mapping[str, Any]) -> tuple[Hit, ...]:
    """The hits of a stored tracking item."""
    uas = list(item.get("uas") or [])
    ips = list(item.get("ips") or [])
    delivery_id = str(item["delivery_id"])
    log_id = int(item["log_id"])
    hits = []
    for line in item.get("hits") or []:
        fields = str(line).split("\t")
        hit_id, ts = unpack_hit(fields[0], fields[1])
        kind, url_id, ua_index, ip_index = fields[2:6]
        hits.append(Hit(hit_id, ts, kind, delivery_id, log_id, int(url_id), uas[int(ua_index)],
                        ips[int(ip_index)], fields[7] if len(fields) > 7 else ""))
    return tuple(hits)


def decode_verdicts(item: Mapping[str, Any]) -> dict[str, int]:
    """The verdict each stored hit was counted with, by hit id (UNCLASSIFIED when the item has none)."""
    verdicts = {}
    for line in item.get("hits") or []:
        fields = str(line).split("\t")
        verdicts[unpack_hit(fields[0], fields[1])[0]] = int(fields[6]) if len(fields) > 6 else UNCLASSIFIED
    return verdicts
