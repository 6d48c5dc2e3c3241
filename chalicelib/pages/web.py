"""Serving pages: Jinja2 with autoescape, the headers every page sends, sessions, friendly errors.

Every stored string a page shows (URL, label, subject, user agent,
recipient id) goes through Jinja2's autoescape; the message shown by hot
clicks goes into an iframe's `srcdoc` attribute, escaped like any other
attribute. No page runs script: the Content-Security-Policy allows none
(script-src 'none'); styles are our stylesheet and the charts' by SHA-256
hash, except on the hot-clicks page whose sandboxed message keeps its
author's inline styles (see `Page.render`). Links and redirects carry API
Gateway's stage path when the default execute-api endpoint serves them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, quote, urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from chalice import Response
from chalice.app import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from chalicelib import auth
from chalicelib.api.http import BadRequest
from chalicelib.base_url import stage_prefix
from chalicelib.errors import InvalidField, NotFound
from chalicelib.pages import sessions
from chalicelib.settings import Settings, get_settings

logger = logging.getLogger("sendtrail.pages")

HERE = Path(__file__).resolve().parent
STYLESHEET = (HERE / "static" / "dashboard.css").read_text(encoding="utf-8")


def style_hash(text: str) -> str:
    """The CSP source that allows an inline <style> whose text is exactly `text`."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


STYLESHEET_HASH = style_hash(STYLESHEET)
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"], default_for_string=True, default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _filter(function: Callable[..., Any]) -> Callable[..., Any]:
    templates.filters[function.__name__] = function
    return function


@_filter
def when(epoch_ms: Any) -> str:
    """Milliseconds since the epoch as a UTC time a person reads; '' for none."""
    if epoch_ms is None or isinstance(epoch_ms, bool):
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(epoch_ms) / 1000))


@_filter
def number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


@_filter
def percent(value: Any) -> str:
    return "–" if value is None else f"{float(value):.2f} %"


@_filter
def duration(seconds: Any) -> str:
    """Seconds as '42 s', '7 min', '2 h 05 min' or '3 d 4 h'."""
    if seconds is None:
        return "–"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def content_security_policy(style_sources: list[str]) -> str:
    return "; ".join([
        "default-src 'none'",
        "script-src 'none'",
        f"style-src {' '.join(style_sources)}",
        "img-src data:",
        "form-action 'self'",
        "frame-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ])


def security_headers(csp: str) -> dict[str, str | list[str]]:
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


# bandit B704 (Markup): the module's own stylesheet constant, no input in it.
_STYLESHEET_MARKUP = Markup(STYLESHEET)  # nosec B704


@dataclass
class Page:
    """One page being rendered: its request, its base path, the styles its charts add."""

    request: Request
    settings: Settings
    session: sessions.Session | None = None
    style_hashes: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return stage_prefix(self.request)

    def url(self, path: str, **query: Any) -> str:
        """An absolute path on this API (stage path included), query values quoted."""
        pairs = [f"{quote(name)}={quote(str(value), safe='')}" for name, value in query.items() if value is not None]
        return f"{self.base}{path}" + ("?" + "&".join(pairs) if pairs else "")

    def allow_style(self, text: str) -> None:
        self.style_hashes.append(style_hash(text))

    def render(self, template: str, status: int = 200, inline_styles: bool = False, **context: Any) -> Response:
        """The template as an HTML response with the page headers.

        `inline_styles`: the page embeds an author's message (hot clicks), whose
        inline styles the sandboxed iframe inherits the policy for; styles are
        then allowed inline (a hash list would turn 'unsafe-inline' off).
        Scripts stay forbidden on every page.
        """
        body = templates.get_template(template).render(
            page=self, stylesheet=_STYLESHEET_MARKUP, form_token=self.session.form_token() if self.session else "",
            **context)
        sources = ["'unsafe-inline'"] if inline_styles else [STYLESHEET_HASH, *dict.fromkeys(self.style_hashes)]
        return Response(body=body, status_code=status, headers=security_headers(content_security_policy(sources)))

    def redirect(self, path: str, **query: Any) -> Response:
        headers = security_headers(content_security_policy([STYLESHEET_HASH]))
        headers["Location"] = self.url(path, **query)
        return Response(body="", status_code=303, headers=headers)


# --- sessions -------------------------------------------------------------------------------

def now_s() -> int:
    return int(time.time())


def _cookies(request: Request) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(request.headers.get("cookie", ""))
    except Exception:  # noqa: BLE001 - a malformed Cookie header is no session, not an error page
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def configured_tokens() -> list[tuple[str, str]]:
    """(scope, SHA-256) of each API token the authorizer accepts now (chalicelib/auth.py's configuration);
    none when that configuration is malformed (the API refuses every token then too)."""
    try:
        return [(entry.scope, entry.sha256) for entry in
                auth.parse_token_hashes(os.environ.get(auth.TOKENS_VARIABLE) or "")]
    except auth.TokenConfigurationError:
        return []


def current_session(request: Request, settings: Settings) -> sessions.Session | None:
    """The request's valid session, or None (none, forged, expired, or its API token is no longer configured)."""
    value = _cookies(request).get(sessions.COOKIE_NAME)
    if not value:
        return None
    return sessions.verify(value, settings.keyring(), configured_tokens(), now_s())


def session_cookie(page: Page, value: str, max_age: int) -> str:
    """Set-Cookie for the session: HttpOnly, SameSite=Strict, Secure unless on the local stack (plain HTTP)."""
    attributes = [f"{sessions.COOKIE_NAME}={value}", f"Path={page.base or '/'}", f"Max-Age={max_age}", "HttpOnly",
                  "SameSite=Strict"]
    if page.settings.stage != "local":
        attributes.append("Secure")
    return "; ".join(attributes)


def same_origin(request: Request) -> bool:
    """A form POST from our own pages: the browser says so (Sec-Fetch-Site) or its Origin is this host."""
    headers = request.headers
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site == "same-origin"
    origin = headers.get("origin")
    if not origin or origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == (headers.get("host") or "").lower()


def form_fields(request: Request) -> dict[str, str]:
    """A url-encoded form's fields (the first value of each)."""
    raw = request.raw_body or b""
    if isinstance(raw, str):  # Chalice types the body str | bytes; API Gateway's form posts arrive as bytes
        raw = raw.encode("utf-8")
    if len(raw) > 4096:
        return {}
    try:
        parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {name: values[0] for name, values in parsed.items()}


# --- handlers -------------------------------------------------------------------------------

def page_handler(signed_in: bool = True) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """A page route: the session checked (303 to the login without one), failures as friendly pages."""

    def decorate(function: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(function)
        def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
            page = Page(request, get_settings())
            try:
                page.session = current_session(request, page.settings)
                if signed_in and (page.session is None or not auth.includes(page.session.scope, auth.READ)):
                    return page.redirect("/dashboard/login", next=_return_path(request, page))
                return function(page, *args, **kwargs)
            except NotFound as error:
                return page.render("error.html", status=404, title="Not found", message=str(error))
            except InvalidField as error:
                return page.render("error.html", status=400, title="Not understood",
                                   message=f"{error.field}: {error.message}")
            except BadRequest as error:
                return page.render("error.html", status=400, title="Not understood", message=error.message)
            except (ClientError, BotoCoreError):
                logger.exception("AWS call failed while rendering a page")
                return page.render("error.html", status=503, title="Try again shortly",
                                   message="A backing AWS service did not answer.")

        return wrapper

    return decorate


def _return_path(request: Request, page: Page) -> str:
    """Where to come back after logging in: this page (a path on this API, never another site)."""
    path = request.context.get("resourcePath") or "/dashboard"
    path = request.context.get("path") or path
    base = page.base
    if base and path.startswith(base):
        path = path[len(base):]
    return path if path.startswith("/dashboard") else "/dashboard"
