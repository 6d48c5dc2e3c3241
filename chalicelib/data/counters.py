"""A delivery's tracking counters grouped into few stats items: what a run writes, and how readers read them.

The workflow's deltas name per-counter items (indicators, url#<id>,
ua#<dimension>#<family>, bucket#<5-minute start>: data/tracking.py), and
they used to be written that way, one UpdateItem each. DynamoDB bills a
write at least one 1 KB unit per item, so a delivery's run cost one unit
per URL, family and window it touched, a few bytes each. Here those
counters are attributes of a few grouped items instead, ADDed in one
UpdateItem per item under the same run guard:

    tally               the indicators (their own names), the URLs with id < URLS_PER_ITEM
                        (u<id>.<counter>), the user-agent families of COMMON_FAMILIES
                        (a<dimension>:<family>.<counter>) and the tracking counters of the
                        MAILBOX_PROVIDERS domains (d<domain>.<counter>): most deliveries' most counters
    tally#u<n>          URL ids n x URLS_PER_ITEM and up (a delivery with many links)
    tally#a<nn>         the other families, by a hash of dimension and family (UA_SHARDS)
    bucket#h<hour>      the hour's 5-minute windows (<minute>.<counter>), hour start in ms

Counter names are shortened (COUNTER_CODES). Sizes, by design: tally holds
at most 22 indicators, URLS_PER_ITEM URLs, the listed families and domains,
4 counters each: under 20 KB whatever the delivery; tally#u<n> under 4 KB;
bucket#h under 1 KB; a tally#a<nn> shard grows with the unlisted families
only (about 100 bytes each: ~1,000 of them in one shard, 16,000 in the
delivery, before a shard passes 100 KB). A run writes an item's attributes in one request of
at most MAX_ATTRIBUTES_PER_WRITE; the rest of a very large run goes to
<item>~<n> items (the same kind, summed alike), the indicators first, so
they always stay in tally.

Readers sum the grouped items and the per-counter items an older version
wrote (`expand` gives the grouped counters under the old names), so an
upgrade keeps every count and needs no migration. The other domains'
counters stay in their domain#<domain> items: the MTA writes those too
(sent, delivered, bounces, in its own transactions), and a delivery's
domains grow with its audience, so a grouped item would make each run's
rewrite cost grow with every domain already stored.
"""

from __future__ import annotations

import zlib
from functools import lru_cache
from typing import Any, Iterable, Iterator, Mapping

from chalicelib.data.domain_stats import DOMAIN_PREFIX, domain_stat

INDICATORS = "indicators"  # the per-counter items' names (each counter's item before grouping)
URL_PREFIX = "url#"
BUCKET_PREFIX = "bucket#"
UA_PREFIX = "ua#"
LAYOUT = "grouped-1"  # a run record's counter layout (records without it were applied per counter)
TALLY = "tally"
HOUR_PREFIX = "bucket#h"  # next to the per-counter windows (bucket#<digits>): one Query reads both
SPILL = "~"
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
URLS_PER_ITEM = 64
UA_SHARDS = 16
# DynamoDB's 4 KB UpdateExpression holds ~250 "#a249 :v249, "; moto's recursive parser (tests, the local
# stack) fails past ~150.
MAX_ATTRIBUTES_PER_WRITE = 120
META = frozenset({"delivery_id", "stat", "last_run", "last_updated", "expires_at_epoch"})
COUNTER_CODES = {"total": "t", "unique": "u", "total_human": "th", "unique_human": "uh",
                 "opens": "o", "clicks": "c", "opens_human": "oh", "clicks_human": "ch"}
_COUNTERS = {code: name for name, code in COUNTER_CODES.items()}
DIMENSION_CODES = {"os": "o", "device": "d", "browser": "b", "mail_client": "m"}
_DIMENSIONS = {code: name for name, code in DIMENSION_CODES.items()}
# Families kept in the tally item: device types and mail clients are closed sets (tracking/useragents.py);
# of ua-parser's open-ended OS and browser families, the common ones.
COMMON_FAMILIES: dict[str, frozenset[str]] = {
    "os": frozenset({"Other", "Windows", "Mac OS X", "iOS", "Android", "Linux", "Ubuntu", "Chrome OS", "Fedora",
                     "Windows Phone", "BlackBerry OS", "Debian", "FreeBSD", "KaiOS", "macOS", "iPadOS"}),
    "browser": frozenset({
        "Other", "Chrome", "Chrome Mobile", "Chrome Mobile iOS", "Chrome Mobile WebView", "Safari", "Mobile Safari",
        "Mobile Safari UI/WKWebView", "Firefox", "Firefox Mobile", "Firefox iOS", "Edge", "Edge Mobile", "Opera",
        "Opera Mobile", "Samsung Internet", "IE", "IE Mobile", "Yandex Browser", "UC Browser", "Facebook",
        "Instagram", "Outlook", "Apple Mail", "Thunderbird", "GmailImageProxy", "YahooMailProxy", "Google",
        "HeadlessChrome", "Brave", "Vivaldi", "DuckDuckGo Mobile", "Silk", "Android", "Chromium", "Electron"}),
}
_CLOSED_DIMENSIONS = frozenset({"device", "mail_client"})
# Recipient domains whose tracking counters (opens, clicks, *_human) go to the tally: the large mailbox
# providers, which hold most recipients of most deliveries. Other domains keep theirs in domain#<domain>,
# next to the MTA's counters: a delivery's domains grow with its audience.
MAILBOX_PROVIDERS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.fr", "yahoo.co.uk", "ymail.com", "hotmail.com",
    "hotmail.fr", "hotmail.co.uk", "outlook.com", "outlook.fr", "live.com", "live.fr", "msn.com", "aol.com",
    "icloud.com", "me.com", "mac.com", "gmx.de", "gmx.net", "gmx.com", "web.de", "t-online.de", "orange.fr",
    "wanadoo.fr", "free.fr", "sfr.fr", "laposte.net", "libero.it", "virgilio.it", "mail.ru", "yandex.ru",
    "comcast.net", "att.net", "verizon.net", "proton.me", "protonmail.com", "qq.com", "163.com", "naver.com"})


def url_stat(url_id: int) -> str:
    return f"{URL_PREFIX}{url_id:06d}"


def bucket_stat(start_ms: int) -> str:
    return f"{BUCKET_PREFIX}{start_ms:015d}"


def ua_stat(dimension: str, family: str) -> str:
    return f"{UA_PREFIX}{dimension}#{family}"


@lru_cache(maxsize=8192)
def place(stat: str, counter: str) -> tuple[str, str] | None:
    """(grouped item, attribute) of one counter of a per-counter item; None for a counter kept in its own item.
    Cached: a run's deliveries name the same few hundred counters over and over (its URLs, families, buckets)."""
    code = COUNTER_CODES.get(counter, counter)
    if stat == INDICATORS:
        return TALLY, counter
    if stat.startswith(URL_PREFIX):
        url_id = int(stat[len(URL_PREFIX):])
        shard = url_id // URLS_PER_ITEM
        return (TALLY if shard == 0 else f"{TALLY}#u{shard}"), f"u{url_id}.{code}"
    if stat.startswith(UA_PREFIX):
        dimension, _, family = stat[len(UA_PREFIX):].partition("#")
        attribute = f"a{DIMENSION_CODES.get(dimension, dimension)}:{family}.{code}"
        if dimension in _CLOSED_DIMENSIONS or family in COMMON_FAMILIES.get(dimension, ()):
            return TALLY, attribute
        return f"{TALLY}#a{zlib.crc32(f'{dimension}#{family}'.encode()) % UA_SHARDS:02d}", attribute
    if stat.startswith(DOMAIN_PREFIX) and stat[len(DOMAIN_PREFIX):] in MAILBOX_PROVIDERS:
        return TALLY, f"d{stat[len(DOMAIN_PREFIX):]}.{code}"
    if stat.startswith(BUCKET_PREFIX):
        start = int(stat[len(BUCKET_PREFIX):])
        if start % MINUTE_MS:
            return None
        hour = start - start % HOUR_MS
        return f"{HOUR_PREFIX}{hour:015d}", f"{(start - hour) // MINUTE_MS:02d}.{code}"
    return None


def group(stats: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, dict[str, int]]]:
    """(delivery id, stats item, deltas) to write for a run record's `stats` ({delivery_id, stat, add}).

    A pure function of the record, so a record applied again writes the same
    items with the same deltas (each guarded by the run). Counters that have
    no grouped place (domain#) keep their own item.
    """
    grouped: dict[tuple[str, str], dict[str, int]] = {}
    for entry in stats:
        delivery_id, stat = str(entry["delivery_id"]), str(entry["stat"])
        for counter, value in entry["add"].items():
            placed = place(stat, counter)
            item, attribute = placed if placed is not None else (stat, counter)
            deltas = grouped.setdefault((delivery_id, item), {})
            deltas[attribute] = deltas.get(attribute, 0) + int(value)
        if not entry["add"]:  # the indicators item is touched even with nothing to add: its last_updated
            placed = place(stat, "")
            grouped.setdefault((delivery_id, placed[0] if placed is not None else stat), {})
    for deltas in grouped.values():  # a counter ADDed 0 would only take bytes (readers take a missing one as 0)
        for attribute in [attribute for attribute, value in deltas.items() if not value]:
            del deltas[attribute]
    writes = []
    for (delivery_id, item), deltas in sorted(grouped.items()):
        # Indicators (no '.') first: they always fit the first write, so they stay in the tally item.
        attributes = sorted(name for name in deltas if "." not in name) + sorted(
            name for name in deltas if "." in name)
        for part, start in enumerate(range(0, max(1, len(attributes)), MAX_ATTRIBUTES_PER_WRITE)):
            name = item if part == 0 else f"{item}{SPILL}{part}"
            writes.append((delivery_id, name, {attribute: deltas[attribute]
                                               for attribute in attributes[start:start + MAX_ATTRIBUTES_PER_WRITE]}))
    return writes


def group_prefix(prefix: str) -> str:
    """The grouped items' prefix holding the counters of per-counter items named from `prefix`."""
    return HOUR_PREFIX if prefix.startswith(BUCKET_PREFIX) else TALLY


def is_grouped(stat: str) -> bool:
    return stat.startswith(TALLY) or stat.startswith(HOUR_PREFIX)


def expand(item: Mapping[str, Any]) -> Iterator[tuple[str, str, int]]:
    """(per-counter item, counter, value) of every counter a grouped item holds, named as before grouping."""
    name = str(item["stat"]).split(SPILL, 1)[0]
    hour = int(name[len(HOUR_PREFIX):]) if name.startswith(HOUR_PREFIX) else None
    for attribute, value in item.items():
        if attribute in META or not _is_count(value):
            continue
        key, dot, code = attribute.rpartition(".")
        counter = _COUNTERS.get(code, code)
        if hour is not None:
            if dot and key.isdigit():
                yield bucket_stat(hour + int(key) * MINUTE_MS), counter, int(value)
        elif not dot:
            yield INDICATORS, attribute, int(value)
        elif key.startswith("u") and key[1:].isdigit():
            yield url_stat(int(key[1:])), counter, int(value)
        elif key.startswith("a") and ":" in key:
            dimension, _, family = key[1:].partition(":")
            yield ua_stat(_DIMENSIONS.get(dimension, dimension), family), counter, int(value)
        elif key.startswith("d"):
            yield domain_stat(key[1:]), counter, int(value)


def _counters(item: Mapping[str, Any]) -> Iterator[tuple[str, int]]:
    """The counters of a per-counter item: its numeric attributes but the run guard and timestamps."""
    for name, value in item.items():
        if name not in META and _is_count(value):
            yield name, int(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def merge(items: Iterable[Mapping[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """Per-counter items named from `prefix` ({stat, counters...}, name order) from stats items of either
    layout: the grouped items' counters and the per-counter items' (an older version's) summed, so a reader
    sees one item per URL, family or window however it was written."""
    summed: dict[str, dict[str, int]] = {}
    for item in items:
        stat = str(item["stat"])
        found = expand(item) if is_grouped(stat) else ((stat, name, value) for name, value in _counters(item))
        for name, counter, value in found:
            if name.startswith(prefix):
                counters = summed.setdefault(name, {})
                counters[counter] = counters.get(counter, 0) + value
    return [{"stat": stat, **summed[stat]} for stat in sorted(summed)]


def merge_indicators(per_counter: Mapping[str, Any] | None, tally: Mapping[str, Any] | None
                     ) -> dict[str, Any] | None:
    """The indicators item and the tally item's indicators as one indicators item: counters summed, the
    latest last_updated (None when neither exists)."""
    if not per_counter and not tally:
        return None
    merged: dict[str, Any] = dict(_counters(per_counter or {}))
    for stat, counter, value in expand(tally or {"stat": TALLY}):
        if stat == INDICATORS:
            merged[counter] = merged.get(counter, 0) + value
    updated = [int(item["last_updated"]) for item in (per_counter, tally) if item and item.get("last_updated")]
    if updated:
        merged["last_updated"] = max(updated)
    return merged
