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
                        MAILBOX_PROVIDERS domains and of the unknown one (d<domain>.<counter>): most
                        deliveries' most counters
    tally#u<n>          URL ids n x URLS_PER_ITEM and up (a delivery with many links)
    tally#a<nn>         the other families, by a hash of dimension and family (UA_SHARDS)
    tally#d<n>          the other recipient domains' tracking counters (d<domain>.<counter>), by a
                        hash of the domain over domain_shards(audience) items: a delivery's
                        domains grow with its audience, and so does the number of shards
    bucket#h<hour>      the hour's 5-minute windows (<minute>.<counter>), hour start in ms

Counter names are shortened (COUNTER_CODES); a family's or domain's four
counters share one packed attribute (PACK). Sizes, by design: tally holds
at most 22 indicators, URLS_PER_ITEM URLs, the listed families and domains,
4 counters each: under 20 KB whatever the delivery; tally#u<n> under 4 KB;
bucket#h under 1 KB; a tally#a<nn> shard (and each of its spills) takes
new unlisted families until they fill FAMILY_SHARD_CAP units of
FAMILY_UNIT_BYTES, under 64 KB (512 families of up to ~90 characters, fewer
longer ones; 8,192 in the delivery), then counts only those (below). A run writes an item's attributes in one request of
at most MAX_ATTRIBUTES_PER_WRITE; the rest of a very large run goes to
<item>~<n> items (the same kind, summed alike), the indicators first, so
they always stay in tally.

A family shard's size is bounded whatever the input (`overflow`): the
families are open-ended (ua-parser names bots after their User-Agent), and
anyone holding one tracked link can replay it with thousands of names, and
DynamoDB bills each rewrite of a shard its size (1 KB a unit). So each
shard write also ADDs its families' marks (`family_marks`: stable 64-bit
hashes, one per FAMILY_UNIT_BYTES of a family's stored bytes) to the
shard's FAMILIES number set, on condition that the set has room for them
all (size() at most FAMILY_SHARD_CAP less the write's marks): the set never
passes the cap, and the shard never passes FAMILY_SHARD_CAP x
FAMILY_UNIT_BYTES = 64 KB of families (~65 write units a rewrite, against
400 before), without a read. A write refused for room returns the shard
(ALL_OLD, no read units) and is split (`split_known`): the families the
shard holds are counted there, the others go to <item>~x folded into the
dimension's "Other" family. Every hit is still counted, and readers sum
the overflow item like a spill, unchanged (the set is no counter). The
400 KB limit stays the backstop: a shard write DynamoDB refuses for item
size goes to <item>~x whole, and a full shard's own families too when even
they no longer fit (to <item>~y, their run's new ones having taken ~x). A
shard filled before the cap has no set: it takes the next write and starts
counting from there, so it is bounded by the backstop, and by the cap
once its set fills.

Readers sum the grouped items and the per-counter items an older version
wrote (`expand` gives the grouped counters under the old names), so an
upgrade keeps every count and needs no migration.

Recipient domains: the MTA's counters (sent, delivered, bounces, in its own
transactions) stay in domain#<domain> items. The workflow's went there too,
a write unit per domain a run touched, most of them a few bytes. They now go
to tally#d<n> shards, DOMAIN_SHARD_RECIPIENTS recipients of the delivery's
audience to a shard: a shard holds the domains of at most that many
recipients (under 2 KB even if each had their own domain of 20 characters
and all four counters), so a run's
rewrite stays about one unit and its cost grows with the shards it touches,
never with every domain the delivery has stored; a small delivery's domains
share one item. The audience (the summary's `recipients`, fixed when the
delivery is created) is in the run record (`audiences`), so the placement is
a pure function of the record; a record without it (an older version's)
keeps each domain in its domain# item, where readers find it as before.
"""

from __future__ import annotations

import hashlib
import zlib
from functools import lru_cache
from typing import Any, Iterable, Iterator, Mapping

from chalicelib.data.domain_stats import DOMAIN_PREFIX, UNKNOWN_DOMAIN, domain_stat

INDICATORS = "indicators"  # the per-counter items' names (each counter's item before grouping)
URL_PREFIX = "url#"
BUCKET_PREFIX = "bucket#"
UA_PREFIX = "ua#"
LAYOUT = "grouped-2"  # a run record's counter layout (records without it were applied per counter)
UNPACKED_LAYOUT = "grouped-1"  # a record of the version before packed counters: grouped, each counter apart
TALLY = "tally"
HOUR_PREFIX = "bucket#h"  # next to the per-counter windows (bucket#<digits>): one Query reads both
SPILL = "~"
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
URLS_PER_ITEM = 64
UA_SHARDS = 16
DOMAIN_SHARD_RECIPIENTS = 16  # recipients of a delivery's audience per tally#d<n> shard
# DynamoDB's 4 KB UpdateExpression holds ~250 "#a249 :v249, "; moto's recursive parser (tests, the local
# stack) fails past ~150.
MAX_ATTRIBUTES_PER_WRITE = 120
FAMILIES = "fams"  # a family shard's number set: the marks of the families it took (family_marks)
META = frozenset({"delivery_id", "stat", "last_run", "last_updated", "expires_at_epoch", FAMILIES})
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


# A user-agent family's or a domain's four counters packed in one number attribute, "<key>.o+c+oh+ch": the
# counter at index i counts PACK_BASE**i (ADD keeps each field exact while it stays within half a billion
# either side of 0, read as balanced digits, and DynamoDB keeps 38 digits). The attribute names are most of
# these items' bytes (a family's name four times), so packing them makes the tally and its shards smaller,
# and each rewrite fewer units.
PACK = ("o", "c", "oh", "ch")
PACKED_CODES = "+".join(PACK)
PACK_BASE = 10**9


def _packed(attribute: str, value: int) -> tuple[str, int]:
    """A family's or domain's counter as its share of the packed attribute; other counters as they are."""
    key, _, code = attribute.rpartition(".")
    if code in PACK and key[:1] in ("a", "d"):
        return f"{key}.{PACKED_CODES}", value * PACK_BASE ** PACK.index(code)
    return attribute, value


def _fields(code: str, value: int) -> Iterator[tuple[str, int]]:
    """(counter code, count) of one stored attribute: each field of a packed one (the nonzero ones)."""
    if code != PACKED_CODES:
        yield code, value
        return
    for field in PACK:  # balanced digits: a field may be negative (a run's delta), from -PACK_BASE / 2
        count = value % PACK_BASE
        count -= PACK_BASE if count >= PACK_BASE // 2 else 0
        value = (value - count) // PACK_BASE
        if count:
            yield field, count


def url_stat(url_id: int) -> str:
    return f"{URL_PREFIX}{url_id:06d}"


def bucket_stat(start_ms: int) -> str:
    return f"{BUCKET_PREFIX}{start_ms:015d}"


def ua_stat(dimension: str, family: str) -> str:
    return f"{UA_PREFIX}{dimension}#{family}"


def is_sharded_domain(stat: str) -> bool:
    """Whether a domain# item's tracking counters go to the tally#d<n> shards (by the delivery's audience):
    every domain but the mailbox providers and the unknown one, whose counters the tally holds."""
    domain = stat[len(DOMAIN_PREFIX):]
    return stat.startswith(DOMAIN_PREFIX) and domain not in MAILBOX_PROVIDERS and domain != UNKNOWN_DOMAIN


def domain_shards(audience: int | None) -> int:
    """How many tally#d<n> items a delivery of `audience` recipients spreads its domains' counters over
    (0: unknown audience, each domain in its domain# item)."""
    return -(-audience // DOMAIN_SHARD_RECIPIENTS) if audience and audience > 0 else 0


@lru_cache(maxsize=8192)
def place(stat: str, counter: str, shards: int | None = None) -> tuple[str, str] | None:
    """(grouped item, attribute) of one counter of a per-counter item; None for a counter kept in its own item.
    `shards`: the delivery's domain_shards (0: its audience is unknown), None for a record without audiences
    (an older version's: only the mailbox providers' counters in the tally, as it placed them).
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
    if stat.startswith(DOMAIN_PREFIX):
        domain = stat[len(DOMAIN_PREFIX):]
        if domain in MAILBOX_PROVIDERS or (shards is not None and not is_sharded_domain(stat)):
            return TALLY, f"d{domain}.{code}"
        if shards:
            return f"{TALLY}#d{zlib.crc32(domain.encode()) % shards}", f"d{domain}.{code}"
        return None
    if stat.startswith(BUCKET_PREFIX):
        start = int(stat[len(BUCKET_PREFIX):])
        if start % MINUTE_MS:
            return None
        hour = start - start % HOUR_MS
        return f"{HOUR_PREFIX}{hour:015d}", f"{(start - hour) // MINUTE_MS:02d}.{code}"
    return None


@lru_cache(maxsize=8192)
def _target(stat: str, counter: str, shards: int | None, packed: bool) -> tuple[str, str, int]:
    """(item, attribute, scale) a counter's delta is written to, times `scale` (its packed field's weight):
    place and _packed in one cached step, as a run names the same counters for every delivery."""
    placed = place(stat, counter, shards)
    if placed is None:
        return stat, counter, 1
    if not packed:
        return placed[0], placed[1], 1
    attribute, scale = _packed(placed[1], 1)
    return placed[0], attribute, scale


def group(stats: Iterable[Mapping[str, Any]], audiences: Mapping[str, int] | None = None, packed: bool = True
          ) -> list[tuple[str, str, dict[str, int]]]:
    """(delivery id, stats item, deltas) to write for a run record's `stats` ({delivery_id, stat, add}) and
    `audiences` (delivery id -> recipients, see domain_shards; a delivery missing keeps its domains in
    domain# items; None, a record without them: as an older version placed them) and `packed` (False: a
    record of UNPACKED_LAYOUT, each counter in its own attribute as that version wrote it).

    A pure function of the record, so a record applied again writes the same
    items with the same deltas (each guarded by the run). Counters that have
    no grouped place keep their own item.
    """
    grouped: dict[tuple[str, str], dict[str, int]] = {}
    for entry in stats:
        delivery_id, stat = str(entry["delivery_id"]), str(entry["stat"])
        shards = None if audiences is None else domain_shards(audiences.get(delivery_id))
        for counter, value in entry["add"].items():
            item, attribute, scale = _target(stat, counter, shards, packed)
            deltas = grouped.setdefault((delivery_id, item), {})
            deltas[attribute] = deltas.get(attribute, 0) + int(value) * scale
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


OVERFLOW = f"{SPILL}x"  # <item>~x: a family shard's write it could not take (overflow)
# <item>~y: the families a full shard holds, when even their counters would pass 400 KB (a shard filled before
# FAMILY_SHARD_CAP) after its new families went to <item>~x in the same run
LATE_OVERFLOW = f"{SPILL}y"
OTHER_FAMILY = "Other"


def overflow(item: str, deltas: Mapping[str, int], suffix: str = OVERFLOW
             ) -> tuple[str, dict[str, int], set[str]] | None:
    """(overflow item, deltas, families folded) to write instead of a family shard's write (`item`: tally#a<nn>
    or one of its spills) that the shard cannot take: its families are new and it is full (FAMILY_SHARD_CAP),
    or DynamoDB refused it because the item would pass its 400 KB size limit; None for any other item (each
    is bounded by design: see the module's docstring). The overflow item is <item><suffix>.

    Each unlisted family's counters are added to its dimension's "Other"
    family, in <item>~x (guarded by the run like every stats item; a name
    of the SPILL kind, so readers sum it with the shard and need no
    change). "Other", not a bucket of its own: it is what a Campaign user
    already reads as "not one of the families we recognise" (ua-parser's
    own name for an agent it cannot name, listed in COMMON_FAMILIES), so the
    breakdown keeps one row for the long tail, its totals still add up,
    and no invented value ("(overflow)") reads like an operating system or
    a browser. The operator is told apart (workflow: FamiliesOverflowed).

    A pure function of the refused write: a record applied again after a
    crash finds the shard as the refused write left it (a refused update
    writes nothing), is refused again and writes the same overflow item,
    which takes the run once.
    """
    if not item.startswith(f"{TALLY}#a"):
        return None
    folded: dict[str, int] = {}
    families: set[str] = set()
    for attribute, value in deltas.items():
        key = _family_key(attribute)
        if key is not None:
            dimension, _, family = key[1:].partition(":")
            if family != OTHER_FAMILY:
                families.add(f"{_DIMENSIONS.get(dimension, dimension)}#{family}")
                attribute = f"a{dimension}:{OTHER_FAMILY}.{attribute.rpartition('.')[2]}"
        folded[attribute] = folded.get(attribute, 0) + value
    return f"{item}{suffix}", {attribute: value for attribute, value in folded.items() if value}, families


# A family shard takes new families while its marks fit FAMILY_SHARD_CAP: one mark per FAMILY_UNIT_BYTES (or
# part) of a family's stored bytes, so the cap bounds the shard's bytes (64 KB), whatever the families' names.
FAMILY_SHARD_CAP = 512
FAMILY_UNIT_BYTES = 128
_VALUE_BYTES = 20  # a number of 38 digits, DynamoDB's most (a packed attribute's value)
_MARK_BYTES = 11  # a mark (20 digits) in the number set


def is_family_shard(stat: str) -> bool:
    """Whether a stats item is a family shard tally#a<nn> or one of its spills <shard>~<n> (not an overflow item)."""
    base, spill, part = stat.partition(SPILL)
    return base.startswith(f"{TALLY}#a") and (not spill or part.isdigit())


def _family_key(attribute: str) -> str | None:
    """"a<dimension>:<family>" of a family's attribute (packed or not), None for any other attribute."""
    key, dot, _ = attribute.rpartition(".")
    return key if dot and key.startswith("a") and ":" in key else None


def _mark(text: str) -> int:
    """A stable 64-bit hash (sha256's first 8 bytes): the same in every process and version."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def family_marks(stat: str, deltas: Mapping[str, int]) -> list[int]:
    """The marks a family shard's write ADDs to its FAMILIES set (none for other items): per family of the
    write, one per FAMILY_UNIT_BYTES of its stored bytes (its attributes' names and values and its marks),
    hashes of "<dimension>#<family>" (then "#1", "#2"...). A family written again adds the same marks, so the
    set's size() is the units of the families the shard took since it has the set."""
    if not is_family_shard(stat):
        return []
    sizes: dict[str, int] = {}
    for attribute in deltas:
        key = _family_key(attribute)
        if key is not None:
            sizes[key] = sizes.get(key, 0) + len(attribute.encode()) + _VALUE_BYTES
    marks: set[int] = set()
    for key, size in sizes.items():
        dimension, _, family = key[1:].partition(":")
        name = f"{_DIMENSIONS.get(dimension, dimension)}#{family}"
        for part in range(max(1, -(-size // (FAMILY_UNIT_BYTES - _MARK_BYTES)))):
            marks.add(_mark(name if part == 0 else f"{name}#{part}"))
    return sorted(marks)


def split_known(deltas: Mapping[str, int], stored: Iterable[str]) -> tuple[dict[str, int], dict[str, int]]:
    """(deltas of the families a full shard holds, of those it does not) from a write's deltas and the shard's
    attribute names (`stored`); an attribute not of a family stays with the first."""
    held = {_family_key(attribute) for attribute in stored}
    known: dict[str, int] = {}
    new: dict[str, int] = {}
    for attribute, value in deltas.items():
        key = _family_key(attribute)
        (known if key is None or key in held else new)[attribute] = value
    return known, new


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
        if not dot:
            if hour is None:
                yield INDICATORS, attribute, int(value)
            continue
        if hour is not None:
            stat = bucket_stat(hour + int(key) * MINUTE_MS) if key.isdigit() else None
        elif key.startswith("u") and key[1:].isdigit():
            stat = url_stat(int(key[1:]))
        elif key.startswith("a") and ":" in key:
            dimension, _, family = key[1:].partition(":")
            stat = ua_stat(_DIMENSIONS.get(dimension, dimension), family)
        else:
            stat = domain_stat(key[1:]) if key.startswith("d") else None
        if stat is not None:
            for field, count in _fields(code, int(value)):
                yield stat, _COUNTERS.get(field, field), count


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
