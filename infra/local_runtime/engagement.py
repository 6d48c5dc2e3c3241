"""Recipients reacting to a delivery, played through the real hit endpoints (the local demo).

A plan is drawn from the messages SES accepted (the local outbox): who
opens and when (first opens decaying over time, some opened again later),
who clicks which link (the first links most, as in every click map), a few
opt-outs through the one-click POST, a few mirror page views. Mail clients
open, browsers click: each hit carries a user agent of the kind that makes
it. The plan is deterministic for a seed, so a test knows what it played.

`play` sends the plan's requests, in time order, to the local stack only
(a loopback address), never following a redirect, with the number of hits
and the time it takes both bounded. Nothing is written to a table: the
endpoints record the hits, the stack's Firehose pump and tracking workflow
do the rest, exactly as for any click.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import math
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TRACKED_LINK = re.compile(r"""(?:href|src)\s*=\s*["']([^"']*/(r|o|u|m)/[A-Za-z0-9_-]+[^"']*)["']""")

MAIL_CLIENTS = (  # opens: the pixel is fetched by the mail client (or its image proxy)
    (30, ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Mobile/15E148")),
    (26, "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"),
    (14, "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)"),
    (12, "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko)"),
    (10, ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/126.0.0.0 Mobile Safari/537.36")),
    (8, "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.12.0"),
)
BROWSERS = (  # clicks, opt-outs and mirror views: a browser opens the link
    (34, ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.5 Mobile/15E148 Safari/604.1")),
    (30, ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/126.0.0.0 Safari/537.36")),
    (16, ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/126.0.0.0 Mobile Safari/537.36")),
    (12, ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.5 Safari/605.1.15")),
    (8, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0"),
)


@dataclass(frozen=True)
class Rates:
    """How recipients react (shares of the delivered recipients, or of those who opened)."""

    opens: float = 0.42  # of delivered recipients
    reopens: float = 0.3  # of openers: one more open, later (after the 1-minute rule)
    clicks: float = 0.3  # of openers
    second_click: float = 0.2  # of clickers: another link
    optouts: float = 0.015  # of openers
    mirror_views: float = 0.02  # of delivered recipients
    link_skew: float = 1.2  # the k-th link is clicked in proportion to 1 / k ** link_skew


@dataclass(frozen=True, order=True)
class Hit:
    at: float  # seconds after the start of the play
    method: str
    path: str  # path and query on the stack, e.g. /r/<token>?p=...
    user_agent: str = field(compare=False)
    kind: str = field(compare=False)  # open, click, optout, mirror


def _links(html: str) -> dict[str, list[str]]:
    """A message's tracked links by kind (r, o, u, m), as paths with their query, in order."""
    found: dict[str, list[str]] = {"r": [], "o": [], "u": [], "m": []}
    for url, kind in TRACKED_LINK.findall(html or ""):
        parts = urlsplit(url.replace("&amp;", "&"))
        path = parts.path[parts.path.rfind(f"/{kind}/"):] + (f"?{parts.query}" if parts.query else "")
        if path not in found[kind]:
            found[kind].append(path)
    return found


def _pick(rng: random.Random, weighted: Iterable[tuple[int, str]]) -> str:
    choices = list(weighted)
    return rng.choices([value for _, value in choices], weights=[weight for weight, _ in choices])[0]


def engages(address: str) -> bool:
    """Whether a mailbox simulator recipient can react: success@ and ooto@ get the message, others bounce."""
    local = address.rsplit("<", 1)[-1].split("@", 1)[0].lower()
    return local.split("+", 1)[0] in ("success", "ooto")


def plan(messages: Iterable[dict[str, Any]], duration: float = 600.0, seed: int = 2026,
         rates: Rates = Rates()) -> list[Hit]:
    """The hits of recipients reacting to `messages` (outbox entries) over `duration` seconds, in time order."""
    # bandit B311 (pseudo-random): a seeded simulation of people, not a secret.
    rng = random.Random(seed)  # nosec B311
    decay = max(duration, 1.0) / 5  # first opens: exponential, a fifth of the time on average
    hits: list[Hit] = []
    for message in messages:
        if not any(engages(address) for address in message.get("to") or []):
            continue
        links = _links(message.get("html") or "")
        if rng.random() < rates.mirror_views and links["m"]:
            hits.append(Hit(rng.uniform(0, duration), "GET", links["m"][0], _pick(rng, BROWSERS), "mirror"))
        if rng.random() >= rates.opens or not links["o"]:
            continue
        opened = min(duration, -decay * math.log(1 - rng.random()))
        client = _pick(rng, MAIL_CLIENTS)
        hits.append(Hit(opened, "GET", links["o"][0], client, "open"))
        if rng.random() < rates.reopens:
            hits.append(Hit(min(duration, opened + 90 + rng.random() * max(0.0, duration - opened)), "GET",
                            links["o"][0], client, "open"))
        browser = _pick(rng, BROWSERS)
        if links["r"] and rng.random() < rates.clicks:
            weights = [1 / (rank + 1) ** rates.link_skew for rank in range(len(links["r"]))]
            first = rng.choices(range(len(links["r"])), weights=weights)[0]
            clicked_at = min(duration, opened + rng.uniform(5, 120))
            hits.append(Hit(clicked_at, "GET", links["r"][first], browser, "click"))
            if len(links["r"]) > 1 and rng.random() < rates.second_click:
                second = rng.choice([index for index in range(len(links["r"])) if index != first])
                hits.append(Hit(min(duration, clicked_at + rng.uniform(10, 60)), "GET", links["r"][second], browser,
                                "click"))
        if links["u"] and rng.random() < rates.optouts:
            hits.append(Hit(min(duration, opened + rng.uniform(20, 90)), "POST", links["u"][0], browser, "optout"))
    return sorted(hits)


class HitSender:
    """One keep-alive HTTP connection to the local stack (loopback only) that sends hits, never following
    a redirect (a click's answer is one)."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK:
            raise ValueError(f"the demo only plays hits to the local stack on a loopback address, not {base_url}")
        self.host, self.port, self.prefix = parts.hostname, parts.port or 80, parts.path.rstrip("/")
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def send(self, hit: Hit) -> str:
        """The hit's kind when the endpoint answered it (200, or 302 for a click), else 'failed'."""
        body = b"List-Unsubscribe=One-Click" if hit.method == "POST" else None
        headers = {"User-Agent": hit.user_agent, "Accept": "image/*" if hit.kind == "open" else "text/html"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.connection.request(hit.method, self.prefix + hit.path, body=body, headers=headers)
            response = self.connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            return "failed"
        return hit.kind if response.status in (200, 302) else "failed"

    def close(self) -> None:
        self.connection.close()


def play(hits: list[Hit], base_url: str, speed: float = 1.0, max_hits: int = 20_000, max_seconds: float = 1800.0,
         stop: threading.Event | None = None) -> Counter:
    """Send `hits` to the stack at `base_url`, each at its time (divided by `speed`; 0: at once).

    Stops after `max_hits` requests or `max_seconds`, or when `stop` is set.
    Returns how many of each kind were answered, and `failed` for any other answer.
    """
    sender = HitSender(base_url)
    stop = stop or threading.Event()
    answered: Counter = Counter()
    started = time.monotonic()
    try:
        for hit in hits[:max_hits]:
            due = started + (hit.at / speed if speed else 0.0)
            if due - started > max_seconds or stop.wait(max(0.0, due - time.monotonic())):
                break
            answered[sender.send(hit)] += 1
    finally:
        sender.close()
    return answered


def play_as_sent(new_messages: Callable[[], list[dict[str, Any]]], sending_done: Callable[[], bool], base_url: str,
                 duration: float, seed: int = 2026, rates: Rates = Rates(), max_hits: int = 20_000,
                 max_seconds: float = 3600.0, poll_seconds: float = 5.0, idle_seconds: float = 300.0,
                 stop: threading.Event | None = None) -> Counter:
    """Recipients react as their message arrives: each batch of newly sent messages gets its own plan,
    from the moment it was seen. Ends when sending is done (or no message came for `idle_seconds`) and
    every planned hit was sent, or at a bound."""
    sender = HitSender(base_url)
    stop = stop or threading.Event()
    answered: Counter = Counter()
    due: list[tuple[float, int, Hit]] = []
    order = itertools.count()  # ties in time keep their plan order
    started = time.monotonic()
    next_poll, batch, finished, last_message = started, 0, False, started
    try:
        while not stop.is_set() and sum(answered.values()) < max_hits:
            now = time.monotonic()
            if now - started > max_seconds:
                break
            if not finished and now >= next_poll:
                messages = new_messages()
                for hit in plan(messages, duration, seed + batch, rates):
                    heapq.heappush(due, (now + hit.at, next(order), hit))
                batch += 1
                last_message = now if messages else last_message
                finished = not messages and (now - last_message > idle_seconds or sending_done())
                next_poll = now + poll_seconds
            while due and due[0][0] <= now and sum(answered.values()) < max_hits:
                answered[sender.send(heapq.heappop(due)[2])] += 1
            if finished and not due:
                break
            wakes = ([due[0][0]] if due else []) + ([] if finished else [next_poll])
            stop.wait(max(0.0, min(wakes) - time.monotonic()))
    finally:
        sender.close()
    return answered
