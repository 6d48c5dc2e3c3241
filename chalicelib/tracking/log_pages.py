"""The delivery's tracking logs, newest first: pages of hits per kind and 5-minute window.

The Tracking tab lists a delivery's hits newest first, a page at a time,
optionally of one kind. Per-recipient items cannot be read in time order,
so each workflow run also writes the hits it adds as log pages, in the
tracking stats table:

    stat = log#<kind>#<window start, 15 digits>#<run, 12 digits>#<part, 4 digits>
    hits = ["<ts>\\t<hit_id>\\t<log_id>\\t<url_id>\\t<ua index>\\t<recipient index>", ...]
    uas, recipients = the strings the lines index (each stored once per page)

    A hit path id at its own time is stored packed (items.packed_id: 22
    base64url characters), then an empty field, in place of <ts>\\t<hit_id>.

A page holds one run's hits of one kind in one window (split in parts to
stay far below DynamoDB's 400 KB). Reading newest first is a Query per kind
from the window of the cursor down: what it reads is bounded by the page
asked for, not by the delivery's size. Pages are written once, by the run
whose number they carry, with the same guard as every tracking write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

from chalicelib.tracking.core import BUCKET_MS, Hit
from chalicelib.tracking.items import packed_id, unpack_hit

LOG_PREFIX = "log#"
MAX_PAGE_BYTES = 256 * 1024


@dataclass(frozen=True)
class LoggedHit:
    at: int
    hit_id: str
    kind: str
    log_id: int
    url_id: int
    user_agent: str
    recipient_id: str

    @property
    def order(self) -> tuple[int, str]:
        return (self.at, self.hit_id)


def window_of(ts: int) -> int:
    return ts - ts % BUCKET_MS


def kind_prefix(kind: str) -> str:
    return f"{LOG_PREFIX}{kind}#"


def page_stat(kind: str, window: int, run: int, part: int) -> str:
    return f"{kind_prefix(kind)}{window:015d}#{run:012d}#{part:04d}"


def stat_range(kind: str, first_window: int, last_window: int) -> tuple[str, str]:
    """The lowest and highest stat of a kind's pages whose window is in [first_window, last_window]."""
    return f"{kind_prefix(kind)}{first_window:015d}#", f"{kind_prefix(kind)}{last_window:015d}#~"


def without_recipient(page: Mapping[str, Any], recipient_id: str) -> dict[str, Any] | None:
    """`page` with `recipient_id` blanked wherever its hits name it (their lines, counts and times stay:
    they become nobody's), or None when it does not name them."""
    names = [str(name) for name in page.get("recipients") or []]
    if not recipient_id or recipient_id not in names:
        return None
    return {**page, "recipients": ["" if name == recipient_id else name for name in names]}


def window_in(stat: str) -> int:
    """The window start a page's stat names."""
    return int(stat.split("#")[2])


def encode_pages(delivery_id: str, hits: Iterable[tuple[Hit, str]], run: int) -> list[dict[str, Any]]:
    """One run's new hits of one delivery (with their recipient ids) as log page items, without last_run."""
    groups: dict[tuple[str, int], list[tuple[Hit, str]]] = {}
    for hit, recipient_id in hits:
        groups.setdefault((hit.kind, window_of(hit.ts)), []).append((hit, recipient_id))
    pages = []
    for (kind, window), members in sorted(groups.items()):
        part, size = 0, 0
        lines: list[str] = []
        uas: dict[str, int] = {}
        recipients: dict[str, int] = {}
        for hit, recipient_id in sorted(members, key=lambda member: (member[0].ts, member[0].hit_id)):
            cost = 64 + len(hit.hit_id) + (0 if hit.ua in uas else len(hit.ua.encode())) + \
                (0 if recipient_id in recipients else len(recipient_id.encode()))
            if lines and size + cost > MAX_PAGE_BYTES:
                pages.append(_page(delivery_id, page_stat(kind, window, run, part), lines, uas, recipients))
                part, size, lines, uas, recipients = part + 1, 0, [], {}, {}
                cost = 64 + len(hit.hit_id) + len(hit.ua.encode()) + len(recipient_id.encode())
            ua_index = uas.setdefault(hit.ua, len(uas))
            recipient_index = recipients.setdefault(recipient_id, len(recipients))
            packed = packed_id(hit.hit_id, hit.ts)
            stamp = f"{packed}\t" if packed else f"{hit.ts}\t{hit.hit_id}"
            lines.append(f"{stamp}\t{hit.log_id}\t{hit.url_id}\t{ua_index}\t{recipient_index}")
            size += cost
        pages.append(_page(delivery_id, page_stat(kind, window, run, part), lines, uas, recipients))
    return pages


def _page(delivery_id: str, stat: str, lines: list[str], uas: Mapping[str, int],
          recipients: Mapping[str, int]) -> dict[str, Any]:
    return {"delivery_id": delivery_id, "stat": stat, "hits": lines, "uas": list(uas),
            "recipients": list(recipients)}


def decode_page(item: Mapping[str, Any]) -> Iterator[LoggedHit]:
    kind = str(item["stat"]).split("#")[1]
    uas = list(item.get("uas") or [])
    recipients = list(item.get("recipients") or [])
    for line in item.get("hits") or []:
        first, second, log_id, url_id, ua_index, recipient_index = str(line).split("\t")
        hit_id, ts = unpack_hit(first, second) if not second else (second, int(first))
        yield LoggedHit(ts, hit_id, kind, int(log_id), int(url_id), uas[int(ua_index)],
                        recipients[int(recipient_index)])
