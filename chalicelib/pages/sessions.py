"""Dashboard sessions: the API token exchanged for a signed, expiring cookie.

A person types the API token once (the login page); the browser then holds
only a session value, never the token. The value is signed with a key
derived from the link-signing key ring (chalicelib/keyring.py: SSM in AWS,
rotated there), under its own domain, so a session tag can never pass as a
link tag and rotating the ring also ends sessions signed with a removed key.
The session is bound to the token that opened it: it names the first hex
digits of the token's SHA-256 and its tag covers the whole hash, so it holds
only while that hash is still configured (removing or replacing a token logs
its browsers out), with the scope configured for it now. Layout
(dot-separated; nonce and tag base64url without padding):

    v1 . key id . expires (s since the epoch) . nonce . token id . tag

CSRF: the cookie is SameSite=Strict, and the logout form carries a token
derived from the session (`form_token`), checked with the Origin header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Iterable

from chalicelib.keyring import KeyRing

COOKIE_NAME = "sendtrail_session"
VERSION = "v1"
_DOMAIN = b"sendtrail-dashboard-session-v1\x00"
_FORM_DOMAIN = b"sendtrail-dashboard-form-v1\x00"
TAG_BYTES = 32
TOKEN_ID_DIGITS = 12


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _key(secret: bytes) -> bytes:
    """The session key of a ring key: HMAC(ring key, domain), never the ring key itself."""
    return hmac.new(secret, _DOMAIN, hashlib.sha256).digest()


@dataclass(frozen=True)
class Session:
    value: str
    expires_at: int  # seconds since the epoch
    nonce: str
    scope: str = ""  # the scope configured now for the token that opened the session

    def form_token(self) -> str:
        """What a form posted with this session must carry (a CSRF token bound to the session)."""
        return _b64(hmac.new(self.nonce.encode("ascii"), _FORM_DOMAIN, hashlib.sha256).digest()[:18])

    def accepts_form_token(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.form_token(), token or "")


def _tag(secret: bytes, payload: str, token_sha256: str) -> str:
    message = f"{payload}|{token_sha256}".encode("ascii")
    return _b64(hmac.new(_key(secret), message, hashlib.sha256).digest()[:TAG_BYTES])


def issue(ring: KeyRing, token_sha256: str, scope: str, now_s: int, lifetime_s: int) -> Session:
    """A new session for whoever just presented the token whose hash is `token_sha256`."""
    nonce = _b64(secrets.token_bytes(18))
    expires_at = now_s + lifetime_s
    token_sha256 = token_sha256.lower()
    payload = f"{VERSION}.{ring.active_key_id}.{expires_at}.{nonce}.{token_sha256[:TOKEN_ID_DIGITS]}"
    return Session(f"{payload}.{_tag(ring.active_secret, payload, token_sha256)}", expires_at, nonce, scope)


def verify(value: str | None, ring: KeyRing, configured: Iterable[tuple[str, str]], now_s: int) -> Session | None:
    """The session `value` names, or None when it is malformed, forged, expired or its token is no longer
    configured. `configured`: the (scope, token SHA-256) pairs the API accepts now."""
    if not value or len(value) > 200 or not value.isascii():
        return None
    parts = value.split(".")
    if len(parts) != 6 or parts[0] != VERSION:
        return None
    _, key_id, expires, nonce, token_id, tag = parts
    if not (key_id.isdigit() and expires.isdigit()) or int(expires) <= now_s:
        return None
    secret = ring.keys.get(int(key_id))
    if secret is None or len(token_id) != TOKEN_ID_DIGITS:
        return None
    payload = ".".join(parts[:5])
    for scope, token_sha256 in configured:
        token_sha256 = token_sha256.lower()
        if token_sha256.startswith(token_id) and hmac.compare_digest(_tag(secret, payload, token_sha256), tag):
            return Session(value, int(expires), nonce, scope)
    return None
