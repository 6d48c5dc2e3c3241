"""The pure core of the tracking workflow: log bytes in, verified hits and aggregates out.

The contract (input rules, rejection reasons and their precedence, the
aggregation's bound and summaries, the outputs, what stays exact) is
docs/spec/tracking-core.md, with shared test vectors in tests/vectors/
that this reference and the native layer (native/src/) both pass. No AWS,
no clock, no randomness, no settings: the same inputs always give the same
outputs. The tracking workflow (workflow.py) feeds it and stores what it
returns; the native layer reimplements it in Rust, and this module stays
the reference.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from chalicelib import tokens
from chalicelib.tracking import classify

GZIP_MAGIC = b"\x1f\x8b"
MAX_OBJECT_BYTES = 256 * 1024 * 1024
MAX_LINE_BYTES = 16 * 1024
MAX_JSON_DEPTH = 32
MAX_UA_BYTES = 512
MAX_IP_BYTES = 64
MAX_SAFE_INTEGER = 2**53 - 1
OPEN_DEDUP_MS = 60_000
BUCKET_MS = 300_000
FIRST_HITS_PER_RECIPIENT = 100  # stored per recipient: the first ones by (ts, hit_id) ...
LAST_HITS_PER_RECIPIENT = 100  # ... and the latest ones; the hits between live on in the Summary
MAX_HITS_PER_RECIPIENT = FIRST_HITS_PER_RECIPIENT + LAST_HITS_PER_RECIPIENT
SUMMARY_MAX_REQUESTERS = 256  # (ua, ip) pairs of evicted clicks remembered, for persons_clicking
SUMMARY_FILTER_BITS = 32_768  # the evicted hit ids' Bloom filter (4 KiB), 3 bits per id
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
FORMAT_VERSION = 1

KINDS = ("click", "open", "optout", "mirror")
# What a request may declare it is (chalicelib/hits/records.py, declared_purpose): never a person's own hit.
PURPOSES = ("prefetch", "prerender", "preview")
RECORD_KINDS_BY_TOKEN_KIND: dict[int, frozenset[str]] = {
    tokens.KIND_CLICK: frozenset({"click", "optout", "mirror"}),
    tokens.KIND_OPEN: frozenset({"open"}),
    tokens.KIND_OPTOUT: frozenset({"optout"}),
    tokens.KIND_MIRROR: frozenset({"mirror"}),
}
REASONS = (
    "object_too_large", "bad_gzip", "line_too_long", "not_utf8", "not_json", "not_object", "bad_version",
    "bad_field", "token_malformed", "token_unknown_key", "token_bad_signature", "token_kind_mismatch",
    "token_claims_mismatch",
)
INDICATORS = ("hits", "opens_unique", "opens_total", "clicks_unique", "clicks_total", "persons_clicking",
              "optouts", "mirror_views", "opens_unique_human", "opens_total_human", "clicks_unique_human",
              "clicks_total_human", "hits_machine", *(f"machine_{reason}" for reason in classify.REASONS))
_HEX = frozenset("0123456789abcdef")
_BLANK = b" \t\r"


@dataclass(frozen=True, slots=True)
class Hit:
    hit_id: str
    ts: int
    kind: str
    delivery_id: str
    log_id: int
    url_id: int
    ua: str
    ip: str
    purpose: str = ""  # "" or one of PURPOSES: the client declared it fetched ahead, not for a person

    @property
    def recipient(self) -> tuple[str, int]:
        return (self.delivery_id, self.log_id)


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    reason: str
    field: str | None
    data: bytes


@dataclass(frozen=True)
class ParsedLog:
    lines: int
    hits: tuple[Hit, ...]
    rejected: dict[str, int]
    duplicates: int
    rejections: tuple[Rejection, ...]


def fnv1a64(data: bytes) -> int:
    """FNV-1a, 64 bits: the hash the summary's filter and requesters use (the native layer's too)."""
    value = FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * FNV_PRIME) & 0xFFFF_FFFF_FFFF_FFFF
    return value


def requester_hash(ua: str, ip: str) -> int:
    return fnv1a64(ua.encode("utf-8", "surrogatepass") + b"\0" + ip.encode("utf-8", "surrogatepass"))


def _filter_bits(hit_id: str) -> tuple[int, int, int]:
    value = fnv1a64(hit_id.encode("utf-8", "surrogatepass"))
    mask = SUMMARY_FILTER_BITS - 1
    return (value & mask, (value >> 21) & mask, (value >> 42) & mask)


@dataclass(frozen=True)
class Summary:
    """What a recipient's evicted hits (no longer stored: between the first and the last ones) still
    contribute to the counters that are not plain sums; see the contract, aggregate step 2.

    The sums themselves (hits, clicks_total, per URL, per bucket, per user agent) need no memory: they
    were added when the hits were counted and no later delta subtracts them. `kinds` and `machine` are
    kept for display only.
    """

    count: int = 0
    first: tuple[int, str] = (0, "")  # (ts, hit_id) of the earliest evicted hit
    last: tuple[int, str] = (0, "")  # ... and the latest: every evicted hit lies in [first, last]
    last_open: int | None = None  # ts of the last counted open among them (the 1-minute rule goes on from it)
    last_open_human: int | None = None  # the same among human opens
    opened: bool = False  # any open (later clicks are not no_open)
    clicked: bool = False
    optout: bool = False
    human: bool = False  # any human hit
    clicked_human: bool = False
    urls: frozenset[int] = frozenset()  # URLs with a counted hit (unique)
    urls_human: frozenset[int] = frozenset()
    requesters: frozenset[int] = frozenset()  # requester_hash of each click's (ua, ip), at most SUMMARY_MAX_REQUESTERS
    requesters_over: int = 0  # further distinct requesters, counted without being remembered
    filter: bytes = bytes(SUMMARY_FILTER_BITS // 8)  # Bloom filter of the evicted hit ids
    kinds: tuple[int, ...] = (0, 0, 0, 0)  # evicted hits of each kind of KINDS
    machine: int = 0  # evicted hits whose verdict was machine

    def may_hold(self, hit: Hit) -> bool:
        """Whether `hit` may be one of the evicted hits (never False for one of them)."""
        if not self.first <= hit_order(hit) <= self.last:
            return False
        size = len(self.filter)
        return all(bit >> 3 < size and self.filter[bit >> 3] >> (bit & 7) & 1 for bit in _filter_bits(hit.hit_id))


@dataclass(frozen=True)
class RecipientUpdate:
    delivery_id: str
    log_id: int
    hits: tuple[Hit, ...]
    added: int
    over_limit: int
    verdicts: tuple[int, ...] = ()  # classify's verdict of each hit of `hits`
    summary: Summary | None = None  # the evicted hits', when there are any


@dataclass(frozen=True)
class DeliveryDelta:
    delivery_id: str
    indicators: dict[str, int] = field(default_factory=dict)
    urls: dict[int, dict[str, int]] = field(default_factory=dict)
    buckets: dict[int, dict[str, int]] = field(default_factory=dict)
    user_agents: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Aggregates:
    recipients: tuple[RecipientUpdate, ...]
    deliveries: tuple[DeliveryDelta, ...]
    duplicates: int
    over_limit: int


class _Rejected(Exception):
    def __init__(self, reason: str, field_name: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field_name


# --------------------------------------------------------------------------- parsing

def parse_log(data: bytes, keys: Mapping[int, bytes]) -> ParsedLog:
    """Every line of one redirection-log object: verified hits, or rejections by reason."""
    try:
        text = _decode_object(bytes(data))
    except _Rejected as rejected:
        return ParsedLog(0, (), {rejected.reason: 1}, 0, (Rejection(0, rejected.reason, None, bytes(data)),))
    pieces = text.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()
    hits: list[Hit] = []
    seen: set[str] = set()
    counts: dict[str, int] = {}
    rejections: list[Rejection] = []
    lines = duplicates = 0
    for number, line in enumerate(pieces, start=1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line.strip(_BLANK):
            continue
        lines += 1
        try:
            hit = _verified_hit(line, keys)
        except _Rejected as rejected:
            counts[rejected.reason] = counts.get(rejected.reason, 0) + 1
            rejections.append(Rejection(number, rejected.reason, rejected.field, line))
            continue
        if hit.hit_id in seen:
            duplicates += 1
            continue
        seen.add(hit.hit_id)
        hits.append(hit)
    by_reason = {reason: counts[reason] for reason in REASONS if reason in counts}
    return ParsedLog(lines, tuple(hits), by_reason, duplicates, tuple(rejections))


def _decode_object(data: bytes) -> bytes:
    if data[:2] == GZIP_MAGIC:
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as stream:
                text = stream.read(MAX_OBJECT_BYTES + 1)
        except (OSError, EOFError, zlib.error):
            raise _Rejected("bad_gzip") from None
    else:
        text = data
    if len(text) > MAX_OBJECT_BYTES:
        raise _Rejected("object_too_large")
    return text


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("duplicate key")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return value


def _well_formed(value: Any) -> bool:
    """Depth at most MAX_JSON_DEPTH and every string (keys too) valid Unicode."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not _is_unicode(item):
                return False
        elif isinstance(item, dict):
            if depth > MAX_JSON_DEPTH:
                return False
            for key, member in item.items():
                if not _is_unicode(key):
                    return False
                stack.append((member, depth + 1))
        elif isinstance(item, list):
            if depth > MAX_JSON_DEPTH:
                return False
            stack.extend((member, depth + 1) for member in item)
    return True


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # an unpaired surrogate escape such as "\ud800"
        return False
    return True


def _is_integer(value: Any, high: int = MAX_SAFE_INTEGER) -> bool:
    return type(value) is int and 0 <= value <= high


def _is_hex(value: Any, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and set(value) <= _HEX


def _check_fields(record: dict[str, Any]) -> None:
    checks = (
        ("hit_id", lambda value: _is_hex(value, 32)),
        ("ts", _is_integer),
        ("kind", lambda value: isinstance(value, str) and value in KINDS),
        ("delivery_id", lambda value: _is_hex(value, 16)),
        ("log_id", _is_integer),
        ("url_id", _is_integer),
        ("token", lambda value: isinstance(value, str)),
        ("p", lambda value: isinstance(value, str)),
        ("ua", lambda value: isinstance(value, str)),
        ("ip", lambda value: isinstance(value, str) and len(value.encode("utf-8")) <= MAX_IP_BYTES),
    )
    for name, check in checks:
        if name not in record or not check(record[name]):
            raise _Rejected("bad_field", name)
    if "purpose" in record and not (isinstance(record["purpose"], str) and record["purpose"] in PURPOSES):
        raise _Rejected("bad_field", "purpose")  # optional: absent is valid, anything else is not


def cut_user_agent(ua: str) -> str:
    """At most MAX_UA_BYTES UTF-8 bytes, cut at a character boundary."""
    raw = ua.encode("utf-8")
    if len(raw) <= MAX_UA_BYTES:
        return ua
    return raw[:MAX_UA_BYTES].decode("utf-8", "ignore")


def _verified_hit(line: bytes, keys: Mapping[int, bytes]) -> Hit:
    if len(line) > MAX_LINE_BYTES:
        raise _Rejected("line_too_long")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise _Rejected("not_utf8") from None
    try:
        record = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant,
                            parse_float=_finite_float)
    except (ValueError, RecursionError):
        raise _Rejected("not_json") from None
    if not _well_formed(record):
        raise _Rejected("not_json")
    if not isinstance(record, dict):
        raise _Rejected("not_object")
    if not (_is_integer(record.get("v")) and record["v"] == FORMAT_VERSION):
        raise _Rejected("bad_version")
    _check_fields(record)
    try:
        claims = tokens.verify(record["token"], keys, record["p"])
    except tokens.InvalidToken as error:
        raise _Rejected(f"token_{error.reason}") from None
    if record["kind"] not in RECORD_KINDS_BY_TOKEN_KIND.get(claims.kind, frozenset()):
        raise _Rejected("token_kind_mismatch")
    if (claims.delivery_id, claims.log_id, claims.url_id) != (record["delivery_id"], record["log_id"],
                                                              record["url_id"]):
        raise _Rejected("token_claims_mismatch")
    return Hit(record["hit_id"], record["ts"], record["kind"], record["delivery_id"], record["log_id"],
               record["url_id"], cut_user_agent(record["ua"]), record["ip"], record.get("purpose", ""))


# --------------------------------------------------------------------------- aggregating

def hit_order(hit: Hit) -> tuple[int, str]:
    return (hit.ts, hit.hit_id)


def counted_open_ids(hits: Sequence[Hit], summary: Summary | None = None, human: bool = False) -> frozenset[str]:
    """The hit ids of the opens the 1-minute rule counts, for one recipient's hits.

    With a summary, the rule goes on past the evicted hits from their last
    counted open (`human`: the human one), as if they were still there.
    """
    counted: set[str] = set()
    last: int | None = None
    resume = summary is not None
    for hit in sorted(hits, key=hit_order):
        if resume and hit_order(hit) > summary.last:  # type: ignore[union-attr]
            resume = False
            evicted_last = summary.last_open_human if human else summary.last_open  # type: ignore[union-attr]
            if evicted_last is not None:
                last = evicted_last
        if hit.kind != "open":
            continue
        if last is None or hit.ts - last >= OPEN_DEDUP_MS:
            counted.add(hit.hit_id)
            last = hit.ts
    return frozenset(counted)


Counters = dict[tuple[Any, ...], int]


def _opened_before(summary: Summary | None) -> tuple[int, str] | None:
    """Where an evicted open makes later clicks not no_open (classify.verdicts' opened_after)."""
    return summary.last if summary is not None and summary.opened else None


def contribution(hits: Sequence[Hit], verdicts: Sequence[int] | None = None,
                 summary: Summary | None = None) -> Counters:
    """One recipient's share of every counter, keyed ("ind", name) / ("url", id, total|unique[_human]) /
    ("bucket", start, opens|clicks[_human]) / ("ua", ua, opens|clicks[_human]).

    `verdicts` are classify's, one per hit of `hits` (default: classified with
    the default context). Human counters count hits whose verdict is human,
    the 1-minute rule applied among human opens alone; each machine hit counts
    in hits_machine and under each of its reasons; an UNCLASSIFIED hit in neither.
    With a summary, the evicted hits sit after every hit up to summary.last:
    they add their flags, URLs and requesters (not their sums, see Summary).
    """
    counters: Counters = defaultdict(int)
    if not hits and summary is None:
        return counters
    if verdicts is None:
        ordered = sorted(hits, key=hit_order)
        marks = classify.verdicts(ordered, opened_after=_opened_before(summary))
    else:
        pairs = sorted(zip(hits, verdicts, strict=True), key=lambda pair: hit_order(pair[0]))
        ordered, marks = [hit for hit, _ in pairs], [verdict for _, verdict in pairs]
    counted = counted_open_ids(ordered, summary)
    human = [classify.is_human(verdict) for verdict in marks]
    counted_human = counted_open_ids([hit for hit, person in zip(ordered, human, strict=True) if person], summary,
                                     human=True)
    counters[("ind", "hits")] = len(ordered)
    counters[("ind", "opens_unique")] = 1
    requesters: set[tuple[str, str]] = set()
    urls: set[int] = set()
    human_urls: set[int] = set()
    for hit, person, verdict in zip(ordered, human, marks, strict=True):
        if verdict >= 0 and not person:
            counters[("ind", "hits_machine")] += 1
            for reason in classify.reason_names(verdict):
                counters[("ind", f"machine_{reason}")] += 1
        if person:
            counters[("ind", "opens_unique_human")] = 1
        bucket = hit.ts - hit.ts % BUCKET_MS
        if hit.kind == "open":
            if person and hit.hit_id in counted_human:
                counters[("ind", "opens_total_human")] += 1
                counters[("bucket", bucket, "opens_human")] += 1
                counters[("ua", hit.ua, "opens_human")] += 1
                counters[("url", hit.url_id, "total_human")] += 1
                human_urls.add(hit.url_id)
            if hit.hit_id not in counted:
                continue
            counters[("ind", "opens_total")] += 1
            counters[("bucket", bucket, "opens")] += 1
            counters[("ua", hit.ua, "opens")] += 1
        else:
            if hit.kind == "click":
                counters[("ind", "clicks_total")] += 1
                counters[("ind", "clicks_unique")] = 1
                counters[("bucket", bucket, "clicks")] += 1
                counters[("ua", hit.ua, "clicks")] += 1
                requesters.add((hit.ua, hit.ip))
                if person:
                    counters[("ind", "clicks_total_human")] += 1
                    counters[("ind", "clicks_unique_human")] = 1
                    counters[("bucket", bucket, "clicks_human")] += 1
                    counters[("ua", hit.ua, "clicks_human")] += 1
            elif hit.kind == "optout":
                counters[("ind", "optouts")] = 1
            elif hit.kind == "mirror":
                counters[("ind", "mirror_views")] += 1
            if person:
                counters[("url", hit.url_id, "total_human")] += 1
                human_urls.add(hit.url_id)
        counters[("url", hit.url_id, "total")] += 1
        urls.add(hit.url_id)
    persons = len(requesters)
    if summary is not None:
        for flag, name in ((summary.clicked, "clicks_unique"), (summary.optout, "optouts"),
                           (summary.human, "opens_unique_human"), (summary.clicked_human, "clicks_unique_human")):
            if flag:
                counters[("ind", name)] = 1
        urls |= summary.urls
        human_urls |= summary.urls_human
        if summary.requesters:
            stored = {requester_hash(ua, ip) for ua, ip in requesters}
            persons += len(summary.requesters - stored)
        persons += summary.requesters_over
    for url_id in urls:
        counters[("url", url_id, "unique")] = 1
    for url_id in human_urls:
        counters[("url", url_id, "unique_human")] = 1
    if persons:
        counters[("ind", "persons_clicking")] = persons
    return counters


def fresh_by_recipient(new_hits: Sequence[Hit], prior: Mapping[tuple[str, int], Sequence[Hit]],
                       summaries: Mapping[tuple[str, int], Summary]) -> dict[tuple[str, int], list[Hit]]:
    """Each touched recipient's hits of a run that are new to them, in the run's order: the first of each hit
    id, neither among their stored hits (`prior`) nor maybe among their evicted ones (Summary.may_hold).

    What aggregate counts, and what the run logs in the delivery's log pages: every one of them, including
    those the recipient's item evicts at once."""
    seen: set[str] = set()
    groups: dict[tuple[str, int], list[Hit]] = {}
    stored: dict[tuple[str, int], set[str]] = {}
    for hit in new_hits:
        if hit.hit_id in seen:
            continue
        seen.add(hit.hit_id)
        key = hit.recipient
        fresh = groups.setdefault(key, [])
        known = stored.get(key)
        if known is None:
            known = stored[key] = {stored_hit.hit_id for stored_hit in prior.get(key, ())}
        summary = summaries.get(key)
        if hit.hit_id not in known and not (summary is not None and summary.may_hold(hit)):
            fresh.append(hit)
    return groups


def aggregate(new_hits: Sequence[Hit], prior: Mapping[tuple[str, int], Sequence[Hit]] | None = None,
              max_hits_per_recipient: int = MAX_HITS_PER_RECIPIENT,
              context: classify.Context | None = None,
              summaries: Mapping[tuple[str, int], Summary] | None = None,
              first_hits_per_recipient: int | None = None) -> Aggregates:
    """Merge a run's hits into the recipients' stored hits and summaries; the counters' deltas per delivery.

    At most `max_hits_per_recipient` hits are stored per recipient: the first
    `first_hits_per_recipient` (default: half) and the latest ones; the hits
    between are evicted into the recipient's Summary, still counted.
    Each recipient's hits are classified (classify.verdicts, with `context`)
    and its stored hits subtracted with the verdicts they were stored with
    (context.stored; classified again when any is missing), so a later hit
    that turns an earlier one machine moves it between counters.
    """
    prior = prior or {}
    summaries = summaries or {}
    context = context or classify.DEFAULT_CONTEXT
    bound = max(0, max_hits_per_recipient)
    first_n = bound // 2 if first_hits_per_recipient is None else min(max(0, first_hits_per_recipient), bound)
    last_m = bound - first_n
    groups = fresh_by_recipient(new_hits, prior, summaries)
    duplicates = len(new_hits) - sum(map(len, groups.values()))

    recipients: list[RecipientUpdate] = []
    totals: dict[str, Counters] = {}
    over_limit = 0
    for key in sorted(groups):
        before = sorted(prior.get(key, ()), key=hit_order)
        summary = summaries.get(key)
        fresh = groups[key]
        if not fresh:
            continue
        merged = sorted(before + fresh, key=hit_order)
        sent_at = context.sent_at.get(key)
        merged_verdicts = classify.verdicts(merged, context, sent_at, _opened_before(summary))
        if summary is None and len(merged) <= bound:
            kept, kept_verdicts, evicted, new_summary = merged, merged_verdicts, [], None
        else:
            # Before the evicted block (every hit up to summary.last) the first ones are kept, after it the last.
            split = first_n if summary is None else sum(1 for hit in merged if hit_order(hit) <= summary.last)
            head_end = min(split, first_n)
            tail_start = max(split, len(merged) - last_m)
            positions = list(range(head_end)) + list(range(tail_start, len(merged)))
            kept = [merged[at] for at in positions]
            kept_verdicts = [merged_verdicts[at] for at in positions]
            evicted = list(range(head_end, split)) + list(range(split, tail_start))
            new_summary = _evict(merged, merged_verdicts, evicted, split, summary, kept)
        recipients.append(RecipientUpdate(key[0], key[1], tuple(kept), len(fresh), len(evicted),
                                          tuple(kept_verdicts), new_summary))
        over_limit += len(evicted)
        delivery = totals.setdefault(key[0], defaultdict(int))
        for name, value in contribution(merged, merged_verdicts, summary).items():
            delivery[name] += value
        for name, value in contribution(before, _stored_verdicts(before, context, sent_at, summary), summary).items():
            delivery[name] -= value

    deliveries = []
    for delivery_id in sorted(totals):
        delta = _delivery_delta(delivery_id, totals[delivery_id])
        if delta is not None:
            deliveries.append(delta)
    return Aggregates(tuple(recipients), tuple(deliveries), duplicates, over_limit)


def _evict(merged: Sequence[Hit], verdicts: Sequence[int], evicted: Sequence[int], split: int,
           summary: Summary | None, kept: Sequence[Hit]) -> Summary:
    """`summary` with the hits at positions `evicted` of `merged` folded in, as they are counted now.

    The evicted hits before `split` come before the old summary's, the others after it.
    """
    old = summary or Summary()
    if not evicted:
        return old
    human = [classify.is_human(verdict) for verdict in verdicts]
    counted = counted_open_ids(merged, summary)
    counted_human = counted_open_ids([hit for hit, person in zip(merged, human, strict=True) if person], summary,
                                     human=True)
    last_open, last_open_human = None, None
    opened, clicked, optout = old.opened, old.clicked, old.optout
    any_human, clicked_human = old.human, old.clicked_human
    urls, urls_human = set(old.urls), set(old.urls_human)
    requesters, requesters_over = set(old.requesters), old.requesters_over
    in_kept = {requester_hash(hit.ua, hit.ip) for hit in kept if hit.kind == "click"}
    bits = bytearray(old.filter[:SUMMARY_FILTER_BITS // 8].ljust(SUMMARY_FILTER_BITS // 8, b"\0"))
    kinds = list(old.kinds)
    machine = old.machine
    passed_block = False
    for at in evicted:
        hit, person = merged[at], human[at]
        if at >= split and not passed_block:
            passed_block = True
            last_open = old.last_open if old.last_open is not None else last_open
            last_open_human = old.last_open_human if old.last_open_human is not None else last_open_human
        counts = hit.kind != "open" or hit.hit_id in counted
        if hit.kind == "open":
            opened = True
            if hit.hit_id in counted:
                last_open = hit.ts
            if person and hit.hit_id in counted_human:
                last_open_human = hit.ts
        elif hit.kind == "click":
            clicked = True
            clicked_human |= person
            pair = requester_hash(hit.ua, hit.ip)
            if pair not in requesters:
                if len(requesters) < SUMMARY_MAX_REQUESTERS:
                    requesters.add(pair)
                elif pair not in in_kept:
                    requesters_over += 1
                    in_kept.add(pair)  # once per fold
        elif hit.kind == "optout":
            optout = True
        any_human |= person
        if counts:
            urls.add(hit.url_id)
        if person and (hit.kind != "open" or hit.hit_id in counted_human):
            urls_human.add(hit.url_id)
        for bit in _filter_bits(hit.hit_id):
            bits[bit >> 3] |= 1 << (bit & 7)
        if hit.kind in KINDS:
            kinds[KINDS.index(hit.kind)] += 1
        machine += int(verdicts[at] >= 0 and not person)
    if not passed_block:
        last_open = old.last_open if old.last_open is not None else last_open
        last_open_human = old.last_open_human if old.last_open_human is not None else last_open_human
    first = hit_order(merged[evicted[0]])
    last = hit_order(merged[evicted[-1]])
    if summary is not None:
        first, last = min(first, summary.first), max(last, summary.last)
    return Summary(old.count + len(evicted), first, last, last_open, last_open_human, opened, clicked, optout,
                   any_human, clicked_human, frozenset(urls), frozenset(urls_human), frozenset(requesters),
                   requesters_over, bytes(bits), tuple(kinds), machine)


def _stored_verdicts(before: Sequence[Hit], context: classify.Context, sent_at: int | None,
                     summary: Summary | None = None) -> list[int]:
    """The verdicts stored hits were counted with; all classified again when any is not known."""
    stored = context.stored
    if all(hit.hit_id in stored for hit in before):
        return [stored[hit.hit_id] for hit in before]
    return classify.verdicts(before, context, sent_at, _opened_before(summary))


def _delivery_delta(delivery_id: str, counters: Counters) -> DeliveryDelta | None:
    indicators: dict[str, int] = {}
    urls: dict[int, dict[str, int]] = {}
    buckets: dict[int, dict[str, int]] = {}
    user_agents: dict[str, dict[str, int]] = {}
    for key in sorted(counters, key=_counter_sort_key):
        value = counters[key]
        if value == 0:
            continue
        if key[0] == "ind":
            indicators[key[1]] = value
        elif key[0] == "url":
            urls.setdefault(key[1], {})[key[2]] = value
        elif key[0] == "bucket":
            buckets.setdefault(key[1], {})[key[2]] = value
        else:
            user_agents.setdefault(key[1], {})[key[2]] = value
    if not (indicators or urls or buckets or user_agents):
        return None
    indicators = {name: indicators[name] for name in INDICATORS if name in indicators}
    return DeliveryDelta(delivery_id, indicators, urls, buckets, user_agents)


def _counter_sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return (key[0], key[1], key[2] if len(key) > 2 else "")


def process_log(data: bytes, keys: Mapping[int, bytes]) -> tuple[ParsedLog, Aggregates]:
    """One log on its own: its verified hits and their aggregates (no prior state)."""
    parsed = parse_log(data, keys)
    return parsed, aggregate(parsed.hits, {})
