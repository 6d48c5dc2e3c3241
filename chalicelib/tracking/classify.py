"""Human or machine: every hit's class, and the named reasons for it.

Apple's privacy proxy fetches every pixel when a message arrives; link
scanners follow every link within seconds of delivery. sendtrail keeps
every hit and counts it in the all-hits indicators, and classifies each one
so that the `_human` indicators count people only.

A hit's verdict is a bit mask of REASONS (0: nothing against it):

  who fetched it (per user agent and address, from the data files in
  data/ and crawlerdetect; computed by the workflow once per distinct
  string: `agent_flags`, `address_flags`)
    apple_proxy      an open by Apple's Mail Privacy Protection proxy: the bare
                     agent `Mozilla/5.0`, or an address in Apple's ranges
    scanner_agent    a link-scanning service's agent (any hit), or a click
                     with the bare agent no browser sends
    scanner_address  an address in a link-scanning service's published ranges
    crawler          a generic crawler or script (crawlerdetect); mail clients
                     and providers' image proxies are never crawlers
    prefetch         a hit the request itself declared a prefetch, prerender or
                     preview (Sec-Purpose: prefetch, Purpose: prefetch, X-Purpose:
                     preview, X-Moz: prefetch; the hit record's `purpose`), of any
                     kind; or a click by a link preflight or preview agent (Office's
                     existence discovery, chat unfurlers): the person's own click follows
  how it behaved (over one recipient's hits of one message: `verdicts`)
    honeypot         a click on the hidden link no person can see (url id 0)
    burst            a click in a window of `burst_window_ms` holding clicks on
                     at least `burst_links` different links
    too_fast         a click less than `min_click_after_send_ms` after the
                     message was sent: faster than anyone reads
    no_open          a click with no open before it (images off is common):
                     weak, it makes a hit machine only beside another weak one

A hit is machine when its mask has a strong reason (all but no_open) or two
weak ones; otherwise human (no_open alone is shown, not held against it).
Rules are switched off by clearing their bit in `Rules.enabled`
(settings: classify_rules_off); the thresholds are settings too.

Gmail's and Yahoo's image proxies fetch when the person opens: those opens
are people (their client is reported as the provider, useragents.py).

`verdicts` is a pure function of the recipient's hits (sorted by (ts,
hit_id)), the context and the send time: it does not depend on how hits
were split into runs, and a later hit may turn an earlier one machine (the
scanner's second click 200 ms after its first). The native layer
(native/src/classify.rs) implements exactly this function; this one is the
reference.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
import socket
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, Sequence

REASONS = ("apple_proxy", "scanner_agent", "scanner_address", "crawler", "prefetch", "honeypot", "burst", "too_fast",
           "no_open")
BIT = {reason: 1 << index for index, reason in enumerate(REASONS)}
ALL_RULES = (1 << len(REASONS)) - 1
WEAK = BIT["no_open"]
STRONG = ALL_RULES & ~WEAK
UNCLASSIFIED = -1  # a stored hit from before classification: counted in no human or machine counter
HONEYPOT_URL_ID = 0

# What the data files and crawlerdetect say about a user agent or an address.
AGENT_APPLE_PROXY = 1  # the bare agent Mozilla/5.0
AGENT_SCANNER = 2
AGENT_CRAWLER = 4
AGENT_PREFETCH = 8
ADDRESS_APPLE = 1
ADDRESS_SCANNER = 2

DATA = Path(__file__).with_name("data")
AGENTS_FILE = DATA / "machine_agents.json"
ADDRESSES_FILE = DATA / "machine_addresses.json"
AGENT_SIGNALS = {"apple_proxy": AGENT_APPLE_PROXY, "scanner": AGENT_SCANNER, "prefetch": AGENT_PREFETCH}
ADDRESS_SIGNALS = {"apple_proxy": ADDRESS_APPLE, "scanner": ADDRESS_SCANNER}
# Mail clients and providers' image proxies (useragents.py) that crawlerdetect would call crawlers.
_NOT_CRAWLERS = ("Web browser", "Other")


class HitLike(Protocol):
    """What classification reads of a hit (read-only, so a NamedTuple such as core.Hit qualifies)."""

    @property
    def hit_id(self) -> str: ...
    @property
    def ts(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def url_id(self) -> int: ...
    @property
    def ua(self) -> str: ...
    @property
    def ip(self) -> str: ...
    @property
    def purpose(self) -> str: ...


@dataclass(frozen=True)
class Rules:
    """Which reasons apply, and the behaviour thresholds (settings: classify_*)."""

    enabled: int = ALL_RULES
    burst_links: int = 2  # fewer than 2: no burst rule
    burst_window_ms: int = 2_000
    min_click_after_send_ms: int = 5_000  # 0 or less: no too_fast rule

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.enabled, self.burst_links, self.burst_window_ms, self.min_click_after_send_ms)


@dataclass(frozen=True)
class Context:
    """What classifying a run's recipients needs beyond their hits.

    agents / addresses: flags of each distinct user agent / address (missing: 0).
    sent_at: each recipient's send time, ms (missing: unknown, no too_fast).
    stored: the verdicts stored with recipients' hits, by hit id (UNCLASSIFIED
    for hits stored before classification); a recipient whose stored hits all
    have one is subtracted with them (what was counted), others are classified again.
    """

    rules: Rules = field(default_factory=Rules)
    agents: Mapping[str, int] = field(default_factory=dict)
    addresses: Mapping[str, int] = field(default_factory=dict)
    sent_at: Mapping[tuple[str, int], int] = field(default_factory=dict)
    stored: Mapping[str, int] = field(default_factory=dict)


DEFAULT_CONTEXT = Context()


def is_machine(verdict: int) -> bool:
    """A strong reason, or two weak ones. UNCLASSIFIED is neither human nor machine (check it first)."""
    return bool(verdict & STRONG) or (verdict & WEAK).bit_count() >= 2


def is_human(verdict: int) -> bool:
    """Classified, and not a machine's (UNCLASSIFIED is neither)."""
    return verdict >= 0 and not is_machine(verdict)


def reason_names(verdict: int) -> list[str]:
    return [reason for reason in REASONS if verdict >= 0 and verdict & BIT[reason]]


def hit_class(verdict: int) -> str:
    if verdict < 0:
        return "unclassified"
    return "machine" if is_machine(verdict) else "human"


def verdicts(ordered: Sequence[HitLike], context: Context = DEFAULT_CONTEXT, sent_at: int | None = None,
             opened_after: tuple[int, str] | None = None) -> list[int]:
    """Each hit's verdict, for one recipient's hits sorted by (ts, hit_id).

    `opened_after`: the recipient opened at this (ts, hit_id) in a hit no
    longer stored (core.Summary), so later clicks are not no_open.
    """
    rules = context.rules
    masks: list[int] = []
    opened = False
    clicks: list[int] = []
    too_fast = rules.min_click_after_send_ms > 0 and sent_at is not None
    for position, hit in enumerate(ordered):
        if opened_after is not None and not opened and (hit.ts, hit.hit_id) > opened_after:
            opened = True
        agent = context.agents.get(hit.ua, 0)
        address = context.addresses.get(hit.ip, 0)
        mask = 0
        if agent & AGENT_SCANNER:
            mask |= BIT["scanner_agent"]
        if address & ADDRESS_SCANNER:
            mask |= BIT["scanner_address"]
        if agent & AGENT_CRAWLER:
            mask |= BIT["crawler"]
        if hit.purpose:
            mask |= BIT["prefetch"]  # the client said it fetched ahead, not for a person
        if hit.kind == "open":
            if agent & AGENT_APPLE_PROXY or address & ADDRESS_APPLE:
                mask |= BIT["apple_proxy"]
        elif hit.kind == "click":
            clicks.append(position)
            if agent & AGENT_APPLE_PROXY:
                mask |= BIT["scanner_agent"]  # no browser sends the bare agent
            if agent & AGENT_PREFETCH:
                mask |= BIT["prefetch"]
            if hit.url_id == HONEYPOT_URL_ID:
                mask |= BIT["honeypot"]
            if too_fast and hit.ts - sent_at < rules.min_click_after_send_ms:  # type: ignore[operator]
                mask |= BIT["too_fast"]
            if not opened:
                mask |= BIT["no_open"]
        if hit.kind == "open":
            opened = True
        masks.append(mask)
    if rules.burst_links >= 2:
        for start in range(len(clicks)):
            first = ordered[clicks[start]].ts
            urls: set[int] = set()
            end = start
            while end < len(clicks) and ordered[clicks[end]].ts - first <= rules.burst_window_ms:
                urls.add(ordered[clicks[end]].url_id)
                end += 1
            if len(urls) >= rules.burst_links:
                for index in range(start, end):
                    masks[clicks[index]] |= BIT["burst"]
    return [mask & rules.enabled for mask in masks]


# --------------------------------------------------------------------------- who fetched it

@dataclass(frozen=True)
class _Ranges:
    """Address ranges of one family as sorted, merged (first, last) integer pairs, with their flags."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    flags: tuple[int, ...]

    def lookup(self, value: int) -> int:
        index = bisect.bisect_right(self.starts, value) - 1
        return self.flags[index] if index >= 0 and value <= self.ends[index] else 0


@dataclass(frozen=True)
class Lists:
    exact: Mapping[str, int]
    markers: tuple[tuple[str, int], ...]  # (lower-case marker, flags)
    v4: _Ranges
    v6: _Ranges


def _ranges(networks: Iterable[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int]]) -> _Ranges:
    # Elementary intervals so that overlapping ranges of different signals keep both flags.
    points: set[int] = set()
    spans = [(int(network.network_address), int(network.broadcast_address), flags) for network, flags in networks]
    for first, last, _ in spans:
        points.update((first, last + 1))
    edges = sorted(points)
    starts: list[int] = []
    ends: list[int] = []
    values: list[int] = []
    for first, following in pairwise(edges):
        flags = 0
        for low, high, value in spans:
            if low <= first and following - 1 <= high:
                flags |= value
        if not flags:
            continue
        if values and values[-1] == flags and ends[-1] + 1 == first:
            ends[-1] = following - 1
        else:
            starts.append(first)
            ends.append(following - 1)
            values.append(flags)
    return _Ranges(tuple(starts), tuple(ends), tuple(values))


def load_lists(agents_file: Path = AGENTS_FILE, addresses_file: Path = ADDRESSES_FILE) -> Lists:
    """The data files, checked: every entry names a known signal and its source."""
    agents = json.loads(agents_file.read_text(encoding="utf-8"))
    addresses = json.loads(addresses_file.read_text(encoding="utf-8"))
    exact: dict[str, int] = {}
    markers: list[tuple[str, int]] = []
    for entry in agents["agents"]:
        flag = AGENT_SIGNALS[entry["signal"]]
        if not entry.get("source"):
            raise ValueError(f"{agents_file.name}: {entry} has no source")
        if "exact" in entry:
            exact[entry["exact"].strip()] = exact.get(entry["exact"].strip(), 0) | flag
        else:
            markers.append((entry["marker"].lower(), flag))
    v4: list[tuple[Any, int]] = []
    v6: list[tuple[Any, int]] = []
    for entry in addresses["ranges"]:
        if not entry.get("source"):
            raise ValueError(f"{addresses_file.name}: {entry} has no source")
        network = ipaddress.ip_network(entry["network"], strict=False)
        (v4 if network.version == 4 else v6).append((network, ADDRESS_SIGNALS[entry["signal"]]))
    return Lists(exact, tuple(markers), _ranges(v4), _ranges(v6))


@lru_cache(maxsize=1)
def lists() -> Lists:
    return load_lists()


@lru_cache(maxsize=16384)
def agent_flags(user_agent: str) -> int:
    """What the lists and crawlerdetect say about a user agent (cached: few distinct strings)."""
    known = lists()
    text = user_agent.strip()
    flags = known.exact.get(text, 0)
    lowered = text.lower()
    for marker, flag in known.markers:
        if marker in lowered:
            flags |= flag
    if text and not flags & AGENT_APPLE_PROXY and _may_be_crawler(user_agent):
        flags |= AGENT_CRAWLER
    return flags


def _may_be_crawler(user_agent: str) -> bool:
    from chalicelib.tracking.useragents import classify

    if classify(user_agent).mail_client not in _NOT_CRAWLERS:
        return False  # a mail client or a provider's image proxy: the person's own fetch
    return _crawler_detect().is_crawler(user_agent)


@lru_cache(maxsize=1)
def _crawler_detect() -> Any:
    from crawlerdetect import CrawlerDetect  # compiled once, on first use (the workflow only)

    return CrawlerDetect()


def address_flags(ip: str) -> int:
    """What the published ranges say about an address (as stored: possibly truncated, possibly empty)."""
    return addresses_flags([ip]).get(ip, 0)


def addresses_flags(ips: Iterable[str]) -> dict[str, int]:
    """The flags of every address that has some (a run's addresses are mostly distinct: one tight loop,
    inet_pton reading them ten times faster than ipaddress). An address is read in the one family that can
    spell it (IPv6 text always has a colon, IPv4 text never), not tried in both: a failed read raises."""
    known = lists()
    found: dict[str, int] = {}
    pton, from_bytes = socket.inet_pton, int.from_bytes
    for ip in ips:
        family, ranges = (socket.AF_INET6, known.v6) if ":" in ip else (socket.AF_INET, known.v4)
        try:
            value = from_bytes(pton(family, ip), "big")
        except (OSError, ValueError):  # ValueError: an embedded NUL
            continue
        index = bisect.bisect_right(ranges.starts, value) - 1
        if index >= 0 and value <= ranges.ends[index]:
            found[ip] = ranges.flags[index]
    return found


def context_for(hits: Iterable[HitLike], rules: Rules, sent_at: Mapping[tuple[str, int], int],
                stored: Mapping[str, int]) -> Context:
    """The context of a run: the flags of every distinct agent and address among `hits`."""
    every = list(hits)
    return context_of({hit.ua for hit in every}, {hit.ip for hit in every}, rules, sent_at, stored)


def context_of(agents: Iterable[str], addresses: Iterable[str], rules: Rules, sent_at: Mapping[tuple[str, int], int],
               stored: Mapping[str, int], flagged_addresses: Mapping[str, int] | None = None) -> Context:
    """The context of a run whose distinct agents and addresses are known (the native run's are);
    `flagged_addresses`: the flags of other addresses, looked up already (the native run's IPv4 ones)."""
    flagged = {ua: flags for ua in agents if (flags := agent_flags(ua))}
    return Context(rules, flagged, {**(flagged_addresses or {}), **addresses_flags(addresses)}, sent_at, stored)
