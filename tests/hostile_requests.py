"""Hostile and unusual requests to the public routes, generated from a seed, and what no answer may do.

Used by tests/integration/test_hit_fuzz.py (a few thousand requests in
`make test`, 100,000 in `make fuzz`). Each request is a method, a raw path
(token and query string as a client might send them: invalid percent
escapes, invalid UTF-8, markup, repeated and empty parameters, very long),
headers and maybe a body. The strings that carry markup are remembered, so
an answer that reflects one of them unescaped is caught.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from chalicelib import tokens
from chalicelib.urltemplate import fill_url

MARKUP = ["<script>alert(1)</script>", "\"><svg onload=alert(1)>", "'><img src=x onerror=alert(1)>",
          "</title><b>", "<!--", "]]><x>", "javascript:alert(1)", "&lt;b&gt;"]
JUNK = ["%", "%zz", "%ff%fe", "%c3%28", "%ed%a0%80", "%00", "%0d%0aSet-Cookie:%20x=1", "..%2f..%2f", "%2e%2e/",
        "\u202e", "\U0001F600", "é", "\x7f", "+", "&", "=", ";", "#", "%25", "%2525", "\\", "//evil.example"]
METHODS = ["GET"] * 12 + ["HEAD"] * 3 + ["OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
ROUTES = ["r", "o", "u", "m"]
MARKUP_CHARACTERS = set("<>\"'")
FORBIDDEN_IN_BODY = [b"Traceback (most recent call last)", b'File "/', b"InternalServerError", b"KeyError",
                     b"Exception"]


@dataclass(frozen=True)
class Link:
    """A genuine token, what it is for and where it must redirect (None: nowhere)."""

    route: str
    token: str
    params: str
    target: str | None
    forwards: bool = False


@dataclass
class HostileRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None
    link: Link | None  # the genuine link the path's token is, unaltered (None: altered or made up)
    injected: list[str] = field(default_factory=list)  # strings with markup that went into the request


class RequestGenerator:
    def __init__(self, seed: int, links: list[Link]) -> None:
        self.random = random.Random(seed)
        self.links = links

    def _text(self, max_length: int = 40) -> str:
        pick = self.random.random()
        if pick < 0.3:
            return "".join(self.random.choice(string.printable) for _ in range(self.random.randint(0, max_length)))
        if pick < 0.5:
            return "".join(chr(self.random.randint(0x80, 0x10FFFF) if self.random.random() < 0.5
                               else self.random.randint(0x20, 0x7e))
                           for _ in range(self.random.randint(1, max_length))).encode("utf-8", "replace"
                                                                                    ).decode("utf-8", "replace")
        if pick < 0.75:
            return self.random.choice(MARKUP)
        if pick < 0.95:
            return "".join(self.random.choice(JUNK) for _ in range(self.random.randint(1, 4)))
        return "A" * self.random.choice([1000, 4000, 8000])

    def _token(self, request: HostileRequest, route: str) -> str:
        pick = self.random.random()
        matching = [link for link in self.links if link.route == route]
        link = self.random.choice(matching if pick < 0.45 and matching else self.links)
        if pick < 0.6:  # a genuine token, on its route or on another one
            request.link = link if link.route == route else None
            return link.token
        if pick < 0.8:
            characters = list(link.token)
            for _ in range(self.random.randint(1, 3)):
                operation = self.random.random()
                position = self.random.randrange(len(characters))
                if operation < 0.4:
                    characters[position] = self.random.choice(string.ascii_letters + string.digits + "-_=%.~")
                elif operation < 0.7:
                    del characters[position:]
                    characters = characters or ["x"]
                else:
                    characters.insert(position, self.random.choice(JUNK + MARKUP))
            altered = "".join(characters)
            request.link = link if altered == link.token and link.route == route else None  # unchanged after all
            return altered
        text = self._text()
        return text.replace("/", "%2F").replace("?", "%3F").replace("#", "%23") or "x"

    def _query(self, request: HostileRequest) -> str:
        pairs = []
        link = request.link
        if link and link.params and self.random.random() < 0.8:
            pairs.append(f"p={link.params}")
        for _ in range(self.random.choice([0, 0, 1, 2, 3, 6])):
            name = self.random.choice(["p", "utm_source", "utm_medium", "", "x", "gclid", self._text(8)])
            value = self._text()
            pairs.append(self._raw(name) + ("" if self.random.random() < 0.1 else "=" + self._raw(value)))
        self.random.shuffle(pairs)
        if link and link.params and self.random.random() < 0.1:
            pairs.append(f"p={link.params}")  # repeated, identical
        return "&".join(pairs)

    def _raw(self, text: str) -> str:
        """As a client might put it in a URL: escaped, or raw (the markup stays visible)."""
        return quote(text, safe="") if self.random.random() < 0.5 else text.replace("#", "%23").replace("&", "%26")

    def request(self) -> HostileRequest:
        method = self.random.choice(METHODS)
        route = self.random.choice(ROUTES)
        request = HostileRequest(method, "", {}, None, None)
        if self.random.random() < 0.05:
            path = "/r/test"
        else:
            path = f"/{route}/{self._token(request, route)}"
        if self.random.random() < 0.6:
            query = self._query(request)
            if query:
                path += "?" + query
        headers = {}
        for name in ("User-Agent", "Host", "Accept", "Accept-Language", "Referer", "X-Forwarded-For",
                     "Content-Type", "Cookie"):
            if self.random.random() < 0.4:
                headers[name] = self._text(200).replace("\r", " ").replace("\n", " ")
        body = None
        if method in ("POST", "PUT", "PATCH") and self.random.random() < 0.7:
            body = self.random.randbytes(self.random.randint(0, 300))
            if self.random.random() < 0.5:
                headers["Content-Type"] = self.random.choice(["application/x-www-form-urlencoded", "text/plain",
                                                              "application/json", "multipart/form-data"])
                body = b"List-Unsubscribe=One-Click" if self.random.random() < 0.5 else body
        request.method, request.path, request.headers, request.body = method, path, headers, body
        request.injected = [text for text in _strings_in(path, headers) if set(text) & MARKUP_CHARACTERS]
        return request


def _strings_in(path: str, headers: dict[str, str]) -> list[str]:
    """The parts of a request a page might echo: path segments, query names and values, header values."""
    from urllib.parse import parse_qsl, unquote

    path_part, _, query = path.partition("?")
    parts = [segment for segment in path_part.split("/") if segment]
    parts += [unquote(segment, errors="replace") for segment in parts]
    for name, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        parts += [name, value]
    parts += list(headers.values())
    return [part for part in parts if len(part) >= 3]


def violations(request: HostileRequest, status: int, headers: dict[str, Any], body: bytes,
               ordinary: str = "") -> list[str]:
    """What this answer does that no answer may: empty when it is acceptable.

    `ordinary` is text the pages hold anyway (the mirror page's own markup):
    an injected string found there says nothing about reflection.
    """
    found = []
    if status >= 500:
        found.append(f"status {status}")
    for marker in FORBIDDEN_IN_BODY:
        if marker in body:
            found.append(f"body holds {marker!r}")
    gateway_error = any(name.lower() == "x-amzn-errortype" for name in headers)  # API Gateway's, not ours
    if request.method == "HEAD" and body and not gateway_error:
        found.append("HEAD answered with a body")
    text = body.decode("utf-8", "replace")
    for injected in request.injected:
        if injected in text and injected not in ordinary:
            found.append(f"reflected unescaped: {injected[:60]!r}")
    location = {name.lower(): value for name, value in headers.items()}.get("location")
    if location is not None:
        link = request.link
        if request.method not in ("GET", "HEAD") or link is None or link.route != "r" or link.target is None:
            found.append(f"redirect to {location[:100]!r} for a request that is not a genuine click")
        elif not _same_target(location, link):
            found.append(f"redirect to {location[:100]!r}, registered {link.target!r}")
    return found


def _same_target(location: str, link: Link) -> bool:
    """The registered target exactly; with forwarding, the same URL with parameters added to its query."""
    assert link.target is not None
    if location == link.target:
        return True
    if not link.forwards:
        return False
    got, registered = urlsplit(location), urlsplit(link.target)
    return (got.scheme, got.netloc, got.path, got.fragment) == (
        registered.scheme, registered.netloc, registered.path, registered.fragment) and (
        got.query.startswith(registered.query))


def links_for(delivery_id: str, log_id: int, urls: dict[str, Any], attributes: dict[str, str],
              key_id: int, secret: bytes, forwards: bool = False) -> list[Link]:
    """A genuine token of each kind for one recipient, with where each click must go."""
    kinds = {"open": ("o", tokens.KIND_OPEN), "optout": ("u", tokens.KIND_OPTOUT),
             "mirror": ("m", tokens.KIND_MIRROR)}
    found = []
    for url_id, entry in urls.items():
        placeholders = entry.get("placeholders") or []
        params = tokens.encode_params({name: attributes.get(name, "") for name in placeholders})
        if entry["type"] in kinds:
            route, kind = kinds[entry["type"]]
            found.append(Link(route, tokens.mint(kind, key_id, secret, delivery_id, log_id, int(url_id)), "",
                              None))
        if entry.get("url"):
            target = fill_url(entry["url"], tokens.decode_params(params) or {})
            found.append(Link("r", tokens.mint(tokens.KIND_CLICK, key_id, secret, delivery_id, log_id, int(url_id),
                                               params), params, target, forwards))
    return found
