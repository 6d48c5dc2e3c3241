"""Signed tracking tokens: what a tracked link carries, and proof we made it.

A token names a tracked thing: the kind of endpoint it is for, the delivery,
the recipient's delivery log and the URL id, plus the id of the key that
signed it and a truncated HMAC-SHA256 tag. Campaign signs its tracked links
for the same reason: an unsigned tracking domain becomes an open redirect
that phishers abuse and blocklists punish. Layout (then base64url, no
padding):

    kind (1 byte) | key id (1) | delivery id (8) | log id (varint) | url id (varint) | tag (10)

A click token is at most 40 characters (the limit is 48). The tag covers the
payload and, for personalised links, the signed parameters travelling next to
the token (`?p=`), so no byte of either can change unnoticed. Standard
library only: this module is on the hit path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Mapping, NamedTuple

KIND_CLICK = 1  # /r: redirect to a URL of the delivery's URL table
KIND_OPEN = 2  # /o: the open pixel
KIND_OPTOUT = 3  # /u: one-click unsubscribe
KIND_MIRROR = 6  # /m: the mirror page
KINDS = {KIND_CLICK: "click", KIND_OPEN: "open", KIND_OPTOUT: "optout", KIND_MIRROR: "mirror"}

TAG_BYTES = 10  # 80 bits
DELIVERY_ID_BYTES = 8
MAX_TOKEN_CHARS = 48
_DOMAIN = b"sendtrail-token-v1\x00"
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_PADDING = (b"", b"===", b"==", b"=")  # by length % 4, as many as make a multiple of 4


class InvalidToken(ValueError):
    """The token is not one of ours. `reason` says why, for counting."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenClaims(NamedTuple):
    """What a genuine token names (a named tuple: made on every hit, and cheaper to make than a dataclass)."""

    kind: int
    key_id: int
    delivery_id: str  # 16 lower-case hex characters
    log_id: int
    url_id: int


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("ids are never negative")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    if offset < len(data) and data[offset] < 0x80:  # ids below 128: one byte, the common case
        return data[offset], offset + 1
    value = shift = 0
    for index in range(offset, min(len(data), offset + 5)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if index > offset and byte == 0:
                raise InvalidToken("malformed")  # non-minimal encoding: one id, one spelling
            return value, index + 1
        shift += 7
    raise InvalidToken("malformed")


class _KeyedHmac:
    """HMAC-SHA256 (RFC 2104) under one secret, its keyed states computed once.

    HMAC hashes (key ^ ipad) and (key ^ opad), one block each, before the
    message: those two states, with the domain prefix every token's message
    starts with already absorbed, are kept per secret, so a verification
    copies two SHA-256 states instead of keying HMAC again (about half the
    cost of hmac.new on the hit path). Same tags as
    hmac.new(secret, _DOMAIN + message, sha256): tests/unit/test_tokens.py.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: bytes) -> None:
        key = hashlib.sha256(secret).digest() if len(secret) > _BLOCK_BYTES else secret
        key = key.ljust(_BLOCK_BYTES, b"\x00")
        self._inner = hashlib.sha256(key.translate(_INNER_PAD))
        self._inner.update(_DOMAIN)
        self._outer = hashlib.sha256(key.translate(_OUTER_PAD))

    def tag(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:TAG_BYTES]


_BLOCK_BYTES = 64  # SHA-256's block
_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))
_MAX_KEYED = 16  # a ring holds a few keys; a rotation adds one
_keyed: dict[bytes, _KeyedHmac] = {}


def _keyed_hmac(secret: bytes) -> _KeyedHmac:
    if type(secret) is not bytes:  # e.g. a bytearray: keyed for this call only
        return _KeyedHmac(secret)
    keyed = _keyed.get(secret)
    if keyed is None:
        if len(_keyed) >= _MAX_KEYED:
            _keyed.clear()
        keyed = _keyed[secret] = _KeyedHmac(secret)
    return keyed


def _tag(secret: bytes, payload: bytes, params: str) -> bytes:
    return _keyed_hmac(secret).tag(payload + b"\x00" + params.encode("ascii"))


def mint(kind: int, key_id: int, secret: bytes, delivery_id: str, log_id: int, url_id: int, params: str = "") -> str:
    """A token for one tracked thing. `params` is the signed `p` value, if any."""
    if kind not in KINDS or not 0 <= key_id <= 255:
        raise ValueError("unknown kind or key id out of range")
    delivery = bytes.fromhex(delivery_id)
    if len(delivery) != DELIVERY_ID_BYTES or delivery.hex() != delivery_id:
        raise ValueError("delivery ids are 16 hex characters")
    payload = bytes((kind, key_id)) + delivery + _varint(log_id) + _varint(url_id)
    raw = payload + _tag(secret, payload, params)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def verify(token: str, keys: Mapping[int, bytes], params: str = "") -> TokenClaims:
    """The claims of a genuine token; InvalidToken(reason) for anything else.

    Only the canonical spelling verifies: base64 decoders skip stray
    characters and ignore the last character's spare bits, so the decoded
    bytes are re-encoded and compared with what was presented.
    """
    if not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise InvalidToken("malformed")
    presented = token.encode("ascii")
    try:  # base64.urlsafe_b64decode's steps, without its wrappers
        raw = binascii.a2b_base64(presented.translate(_FROM_URLSAFE) + _PADDING[len(presented) % 4])
    except binascii.Error:
        raise InvalidToken("malformed") from None
    if binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE).rstrip(b"=") != presented:
        raise InvalidToken("malformed")
    if len(raw) < 2 + DELIVERY_ID_BYTES + 2 + TAG_BYTES:
        raise InvalidToken("malformed")
    payload, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
    kind, key_id = payload[0], payload[1]
    offset = 2 + DELIVERY_ID_BYTES
    log_id, offset = _read_varint(payload, offset)
    url_id, offset = _read_varint(payload, offset)
    if offset != len(payload) or kind not in KINDS:
        raise InvalidToken("malformed")
    secret = keys.get(key_id)
    if secret is None:
        raise InvalidToken("unknown_key")
    if not params.isascii() or not hmac.compare_digest(tag, _tag(secret, payload, params)):
        raise InvalidToken("bad_signature")
    return TokenClaims(kind, key_id, payload[2:2 + DELIVERY_ID_BYTES].hex(), log_id, url_id)


def encode_params(values: Mapping[str, str]) -> str:
    """The `p` value of a personalised link: its parameters, signed by the token's tag."""
    if not values:
        return ""
    raw = json.dumps(dict(values), separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_params(params: str) -> dict[str, str] | None:
    """The parameters `encode_params` made, or None if `params` is not such a value."""
    if not params:
        return {}
    try:
        values = json.loads(base64.urlsafe_b64decode(params + "=" * (-len(params) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(values, dict):
        return None
    return {str(name): str(value) for name, value in values.items()}
