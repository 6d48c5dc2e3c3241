"""Dashboard sessions: the API token exchanged for a signed, expiring cookie.

A person types the API token once (the login page); the browser then holds
only a session value, never the token. The value is signed with a key
derived from the link-signing key ring (chalicelib/keyring.py: SSM in AWS,
rotated there), under its own domain, so a session tag can never pass as a
link tag and rotating the ring also ends sessions signed with a removed key.
The session is bound to the configured token's hash: replacing the API
token logs every browser out. Layout (base64url, no padding, dot-separated):

    v1 . key id . expires (s since the epoch) . nonce . tag

CSRF: the cookie is SameSite=Strict, and the logout form carries a token
derived from the session (`form_token`), checked with the Origin header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from chalicelib.keyring import KeyRing

COOKIE_NAME = "sendtrail_session"
VERSION = "v1"
_DOMAIN = b"sendtrail-dashboard-session-v1\x00"
_FORM_DOMAIN = b"sendtrail-dashboard-form-v1\x00"
TAG_BYTES = 32


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

    def form_token(self) -> str:
        """What a form posted with this session must carry (a CSRF token bound to the session)."""
        return _b64(hmac.new(self.nonce.encode("ascii"), _FORM_DOMAIN, hashlib.sha256).digest()[:18])

    def accepts_form_token(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.form_token(), token or "")


def _tag(secret: bytes, payload: str, token_sha256: str) -> str:
    message = f"{payload}|{token_sha256}".encode("ascii")
    return _b64(hmac.new(_key(secret), message, hashlib.sha256).digest()[:TAG_BYTES])


def issue(ring: KeyRing, token_sha256: str, now_s: int, lifetime_s: int) -> Session:
    """A new session for whoever just presented the token whose hash is `token_sha256`."""
    nonce = _b64(secrets.token_bytes(18))
    expires_at = now_s + lifetime_s
    payload = f"{VERSION}.{ring.active_key_id}.{expires_at}.{nonce}"
    return Session(f"{payload}.{_tag(ring.active_secret, payload, token_sha256)}", expires_at, nonce)


def verify(value: str | None, ring: KeyRing, token_sha256: str, now_s: int) -> Session | None:
    """The session `value` names, or None when it is malformed, forged, expired or for another token."""
    if not value or len(value) > 200:
        return None
    parts = value.split(".")
    if len(parts) != 5 or parts[0] != VERSION:
        return None
    _, key_id, expires, nonce, tag = parts
    if not all(part.isascii() and part.isdigit() for part in (key_id, expires)):
        return None
    secret = ring.keys.get(int(key_id))
    if secret is None or not token_sha256:
        return None
    payload = ".".join(parts[:4])
    try:
        expected = _tag(secret, payload, token_sha256.lower())
    except UnicodeEncodeError:
        return None
    if not hmac.compare_digest(expected, tag) or int(expires) <= now_s:
        return None
    return Session(value, int(expires), nonce)
