"""The dashboard API's bearer-token check (a Chalice built-in authorizer).

Only the SHA-256 of the token is configured (SENDTRAIL_API_TOKEN_SHA256), so
neither the template, the Lambda environment nor the logs hold the token.
Raising Unauthorized is how a Lambda authorizer makes API Gateway answer
401; the local runtime's gateway emulates exactly that.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from chalice import AuthResponse

TOKEN_HASH_VARIABLE = "SENDTRAIL_API_TOKEN_SHA256"


class Unauthorized(Exception):
    def __init__(self) -> None:
        super().__init__("Unauthorized")  # the exact message API Gateway maps to 401


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def authorize(authorization_header: str | None) -> AuthResponse:
    expected = (os.environ.get(TOKEN_HASH_VARIABLE) or "").strip().lower()
    scheme, _, token = (authorization_header or "").partition(" ")
    token = token.strip()
    if not expected or scheme.lower() != "bearer" or not token:
        raise Unauthorized()
    if not hmac.compare_digest(token_sha256(token), expected):
        raise Unauthorized()
    return AuthResponse(routes=["*"], principal_id="operator")
