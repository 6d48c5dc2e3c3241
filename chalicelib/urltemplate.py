"""`{{attr}}` placeholders in link targets: finding, filling, and the hostname rule.

This module sits on the hot redirect path (every click imports it), so it uses
the standard library only and imports nothing from the delivery code.

The same `fill_url` is used when a message is rendered (untracked personalised
links) and when the redirect endpoint rebuilds a tracked target from the
parameters carried by the click. Sharing one function is what guarantees that a
recipient lands on exactly the URL the HTML would have shown them.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence
from urllib.parse import parse_qsl, quote, urlencode

PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")

# Schemes whose authority browsers find even without "//" (WHATWG "special" schemes):
# "https:evil.example" and "https:\\evil.example" both go to evil.example.
_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp", "file"})
_SCHEME_RE = re.compile(r"[^:/?#\\]*:")
_AUTHORITY_RE = re.compile(r"[^/\\?#]*")


def placeholders_in(s: str) -> tuple[str, ...]:
    """The distinct placeholder names of `s`, sorted (a stable, comparable signature)."""
    return tuple(sorted({match.group(1) for match in PLACEHOLDER_RE.finditer(s)}))


def quote_param(value: object) -> str:
    """One placeholder value as it goes into a URL.

    Nothing is left unescaped (`safe=''`): a value can never add a path segment,
    a query parameter, a fragment or an `@`, so it cannot change where the link
    goes beyond the spot the author chose. None counts as empty, like a missing value.
    """
    return "" if value is None else quote(str(value), safe="")


def fill_url(url_template: str, params: Mapping[str, str]) -> str:
    """Substitute every placeholder with its quoted value (missing -> empty).

    One `re.sub` pass: substituted values are never scanned again, so a value
    that itself looks like `{{other}}` stays literal (and is quoted anyway).
    """
    return PLACEHOLDER_RE.sub(lambda match: quote_param(params.get(match.group(1))), url_template)


def append_query(url: str, pairs: Sequence[tuple[str, str]]) -> str:
    """`url` with the query parameters `pairs` added before its fragment (a click's forwarded parameters).

    Names the URL already has keep the URL's value: the sender's own
    parameters (utm_*, ids) cannot be overridden from outside. Everything
    added is percent-encoded, so it lands in the query and nowhere else: the
    scheme, host and path stay the registered ones.
    """
    base, hash_mark, fragment = url.partition("#")
    path, question_mark, query = base.partition("?")
    present = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
    added = [(name, value) for name, value in pairs if name and name not in present]
    if not added:
        return url
    extra = urlencode(added, errors="replace")
    query = f"{query}&{extra}" if query else extra
    return f"{path}?{query}{hash_mark}{fragment}"


def host_is_personalised(url: str) -> bool:
    """True when a placeholder could decide which host (or scheme) the link goes to.

    Tracked links redirect through our domain; letting recipient data pick the
    host would turn the redirect endpoint into an open redirect. So a placeholder
    may appear in the path, query or fragment, never in the scheme or authority,
    and the URL may not start with one (`{{site}}/x`).
    """
    url = url.strip()
    if PLACEHOLDER_RE.match(url):
        return True
    return PLACEHOLDER_RE.search(_scheme_and_authority(url)) is not None


def _scheme_and_authority(url: str) -> str:
    """The leading part of `url` that selects scheme and host (may be empty)."""
    scheme_match = _SCHEME_RE.match(url)
    scheme_end = scheme_match.end() if scheme_match else 0
    scheme = url[:scheme_end - 1].lower() if scheme_match else ""
    rest = url[scheme_end:]
    after_slashes = rest.lstrip("/\\")
    if scheme not in _SPECIAL_SCHEMES and not rest.startswith("//"):
        return url[:scheme_end]  # mailto:, tel:, relative paths: no authority at all
    authority = _AUTHORITY_RE.match(after_slashes).group(0)  # type: ignore[union-attr]  # always matches
    return url[:len(url) - len(after_slashes)] + authority
