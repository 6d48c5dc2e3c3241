"""The hit record: one newline-terminated JSON line per valid hit.

This is the redirection log's line format, written to Kinesis by the hit
endpoints (or, when that put fails, straight to the log bucket as its own
object), delivered by Firehose to S3, and read back by the tracking
workflow (which verifies `token`, with `p`, again: a line that was not made
by us, or was altered, is rejected there). Fields:

    v           format version (1)
    hit_id      unique, time-ordered: 12 hex digits of ms time + 20 random
    ts          time of the hit, ms since the epoch
    kind        click | open | optout | mirror
    delivery_id, log_id, url_id   what the token names (log_id: the
                recipient's delivery log in that delivery)
    token, p    the signed token and signed personalisation parameters
    ua, ip      user agent, and source IP as the privacy setting allows
    request_id  API Gateway's request id
    purpose     only when the request declared it was fetched ahead rather than
                for a person: prefetch | prerender | preview (`declared_purpose`)
"""

from __future__ import annotations

import json
import os
from json.encoder import encode_basestring as _string  # json.dumps's own (C) encoder of a str, ensure_ascii=False
from typing import Mapping

from chalicelib.clock import now_ms
from chalicelib.tokens import TokenClaims

FORMAT_VERSION = 1
# A header or parameter can hold a lone surrogate (a \\udxxx escape in the event's JSON), which
# UTF-8 cannot encode: it is written as "?" rather than failing the hit (and the request).
_LONE_SURROGATES = "replace"


# The headers with which browsers and mail clients say a request is a prefetch or a preview, not a
# person's: Sec-Purpose (Fetch standard: "prefetch", "prefetch;prerender"), Purpose (Chrome's older
# spelling), X-Purpose (Safari's previews) and X-Moz (Firefox's link prefetching).
PURPOSE_HEADERS = ("sec-purpose", "purpose", "x-purpose", "x-moz")
_PURPOSE_HEADER_NAMES = frozenset(PURPOSE_HEADERS)
_PURPOSES = {"prefetch": "prefetch", "prerender": "prerender", "preview": "preview"}


def declared_purpose(headers: Mapping[str, str]) -> str:
    """What the request's headers declare it was fetched for: prefetch, prerender, preview, or "" (a hit).

    Values are read as structured-header lists: the first item's token, or
    `prerender` when one of its parameters says so ("prefetch;prerender").
    Unknown values declare nothing. `headers` has lower-case names (Chalice's
    mapping): one pass over them finds none of these for most hits (a
    lookup of each would cost the hit path 15 µs: Chalice's mapping raises
    KeyError inside for every miss).
    """
    if _PURPOSE_HEADER_NAMES.isdisjoint(headers):
        return ""
    for name in PURPOSE_HEADERS:
        value = headers.get(name)
        if not value:
            continue
        first, *parameters = value.split(",", 1)[0].lower().split(";")
        purpose = _PURPOSES.get(first.strip(), "")
        if purpose and any(parameter.strip() == "prerender" for parameter in parameters):
            return "prerender"
        if purpose:
            return purpose
    return ""


def new_hit_id(at_ms: int) -> str:
    return f"{at_ms:012x}{os.urandom(10).hex()}"


def minimise_ip(ip: str, mode: str) -> str:
    """Keep the whole address, its network part, or nothing (privacy setting).

    truncated keeps the /24 of an IPv4 address and the /48 of an IPv6 one:
    enough to recognise a provider's or a scanner's network, not a person.
    """
    if mode == "full" or not ip:
        return ip
    if mode == "none":
        return ""
    if ":" not in ip:
        return ip[:ip.rindex(".")] + ".0" if ip.count(".") == 3 else ""
    import ipaddress

    try:
        network = ipaddress.IPv6Network(f"{ip}/48", strict=False)
    except ValueError:
        return ""
    return str(network.network_address)


def build_record(kind: str, claims: TokenClaims, token: str, params: str, user_agent: str, ip: str,
                 request_id: str, at_ms: int | None = None, hit_id: str | None = None, purpose: str = "") -> bytes:
    """The record's line: exactly json.dumps of its fields (compact, UTF-8), written out directly.

    Every hit builds one, so the line is put together from the C string
    encoder json.dumps itself uses for each value (ensure_ascii=False), not
    by json.dumps's generic walk of a dict (a third of the cost); the bytes
    are the same (tests/unit/test_records.py checks them against
    `reference_record`). A value of another type than the str or int its
    field holds (never one from the hit path) goes through the reference.
    `purpose` is written only when declared: a person's hit's line is unchanged.
    """
    at_ms = now_ms() if at_ms is None else at_ms
    hit_id = hit_id or new_hit_id(at_ms)
    try:
        end = f',"purpose":{_string(purpose)}}}\n' if purpose else "}\n"
        line = (f'{{"v":{FORMAT_VERSION},"hit_id":{_string(hit_id)},"ts":{at_ms:d},"kind":{_string(kind)},'
                f'"delivery_id":{_string(claims.delivery_id)},"log_id":{claims.log_id:d},'
                f'"url_id":{claims.url_id:d},"token":{_string(token)},"p":{_string(params)},'
                f'"ua":{_string(user_agent)},"ip":{_string(ip)},"request_id":{_string(request_id)}{end}')
    except (TypeError, ValueError):
        return reference_record(kind, claims, token, params, user_agent, ip, request_id, at_ms, hit_id, purpose)
    return line.encode("utf-8", _LONE_SURROGATES)


def reference_record(kind: str, claims: TokenClaims, token: str, params: str, user_agent: str, ip: str,
                     request_id: str, at_ms: int, hit_id: str, purpose: str = "") -> bytes:
    """The record's definition: its fields, in this order, as one compact JSON line (purpose only when declared)."""
    record = {
        "v": FORMAT_VERSION,
        "hit_id": hit_id,
        "ts": at_ms,
        "kind": kind,
        "delivery_id": claims.delivery_id,
        "log_id": claims.log_id,
        "url_id": claims.url_id,
        "token": token,
        "p": params,
        "ua": user_agent,
        "ip": ip,
        "request_id": request_id,
    }
    if purpose:
        record["purpose"] = purpose
    return (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8", _LONE_SURROGATES)
