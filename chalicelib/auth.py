"""The dashboard API's scoped bearer tokens: who may call which route.

Tokens: only their SHA-256 hashes are configured, each with a scope, as
`scope:sha256` entries separated by commas or whitespace in
SENDTRAIL_API_TOKENS (the ApiTokens template parameter), so neither the
template, the Lambda environment nor the logs hold a token. Several entries
may be valid at once: a rotation adds the new token's entry, moves the
clients over, then removes the old entry.

Scopes: `read` (dashboards, reports, status) and `admin` (creating, sending,
steering, running the workflow, erasing; admin includes read).

Where the check happens: Chalice's built-in authorizer sees a token, never
the route, so it only tells who is calling; it answers with a policy for
every route ("*") and the token's scope in its context. API Gateway caches
that answer by the Authorization header (the token itself), so a cached
answer is only ever reused for the same token, and since it names no route
it is right for any route that token calls next. Each route declares the
scope it needs with `@requires(READ)` / `@requires(ADMIN)` next to its
`@app.route`; `enforce_scopes`, a middleware on every HTTP request, answers
403 naming the missing scope. A route behind an authorizer that declares
nothing needs admin (fail-closed). Standard library and Chalice only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from functools import lru_cache
from typing import Any, Callable, NamedTuple, TypeVar

from chalice import AuthResponse, Response

TOKENS_VARIABLE = "SENDTRAIL_API_TOKENS"

READ = "read"
ADMIN = "admin"
SCOPES = (READ, ADMIN)  # each includes those before it
REQUIRED_SCOPE_ATTRIBUTE = "sendtrail_required_scope"

_ENTRY = re.compile(r"^(read|admin):([0-9a-f]{64})$")

View = TypeVar("View", bound=Callable[..., Any])


class Unauthorized(Exception):
    def __init__(self) -> None:
        super().__init__("Unauthorized")  # the exact message API Gateway maps to 401


class TokenConfigurationError(ValueError):
    """SENDTRAIL_API_TOKENS holds something that is not a `scope:sha256` entry."""


class TokenHash(NamedTuple):
    scope: str
    sha256: str


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_entry(scope: str, token: str) -> str:
    """The SENDTRAIL_API_TOKENS entry that lets `token` in with `scope`."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    return f"{scope}:{token_sha256(token)}"


@lru_cache(maxsize=4)
def parse_token_hashes(text: str) -> tuple[TokenHash, ...]:
    """The configured hashes; a malformed entry is an error (never silently a token nobody can use)."""
    hashes = []
    for entry in re.split(r"[\s,]+", text.strip()):
        if not entry:
            continue
        match = _ENTRY.match(entry.lower())
        if match is None:
            raise TokenConfigurationError(f"{TOKENS_VARIABLE}: {entry[:12]}... is not scope:sha256 "
                                          f"(scope {' or '.join(SCOPES)}, 64 hex digits)")
        hashes.append(TokenHash(match.group(1), match.group(2)))
    return tuple(hashes)


def scope_of(token: str, hashes: tuple[TokenHash, ...]) -> str | None:
    """The widest scope `token` is configured with, or None. Every entry is compared (constant time each)."""
    presented = token_sha256(token)
    granted = None
    for entry in hashes:
        if hmac.compare_digest(presented, entry.sha256) and (granted is None or includes(entry.scope, granted)):
            granted = entry.scope
    return granted


def includes(granted: str | None, needed: str) -> bool:
    """Does scope `granted` allow what `needed` allows?"""
    return granted in SCOPES and SCOPES.index(granted) >= SCOPES.index(needed)


def authorize(authorization_header: str | None) -> AuthResponse:
    """The built-in authorizer's answer: every route, and the token's scope in the context."""
    scheme, _, token = (authorization_header or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized()
    scope = scope_of(token, parse_token_hashes(os.environ.get(TOKENS_VARIABLE) or ""))
    if scope is None:
        raise Unauthorized()
    # The principal names the scope and a few hash digits: enough to tell tokens apart in logs, nothing to replay.
    return AuthResponse(routes=["*"], principal_id=f"{scope}-{token_sha256(token)[:8]}", context={"scope": scope})


def requires(scope: str) -> Callable[[View], View]:
    """Declare the scope a route needs (one line under its `@app.route`); the view is returned unchanged."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def declare(view: View) -> View:
        setattr(view, REQUIRED_SCOPE_ATTRIBUTE, scope)
        return view

    return declare


def required_scope(route_entry: Any) -> str | None:
    """The scope a route needs: None for a public route (no authorizer), admin when it declares none."""
    if route_entry.authorizer is None:
        return None
    return getattr(route_entry.view_function, REQUIRED_SCOPE_ATTRIBUTE, ADMIN)


def forbidden(needed: str, granted: str | None) -> Response:
    return Response(status_code=403, headers={"Content-Type": "application/json"}, body={
        "message": f"Forbidden: this request needs the {needed} scope; "
                   f"the token has {granted or 'no'} scope",
        "missing_scope": needed,
    })


def enforce_scopes(app: Any) -> Callable[[Any, Callable[[Any], Any]], Any]:
    """Chalice HTTP middleware for `app`: 403 when the caller's scope does not cover the route's."""

    def middleware(request: Any, get_response: Callable[[Any], Any]) -> Any:
        context = request.context or {}
        entry = app.routes.get(context.get("resourcePath"), {}).get(request.method)
        needed = None if entry is None else required_scope(entry)
        if needed is not None:
            granted = (context.get("authorizer") or {}).get("scope")
            if not includes(granted, needed):
                return forbidden(needed, granted)
        return get_response(request)

    return middleware
