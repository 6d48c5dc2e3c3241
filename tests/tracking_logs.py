"""Building redirection-log records for tests: genuine, tampered and malformed lines."""

from __future__ import annotations

import gzip
import json
from typing import Any

from chalicelib import tokens

KEY_ID = 1
SECRET = b"0123456789abcdef0123456789abcdef"  # = KEYRING_V1 in tests/conftest.py
KEYS = {KEY_ID: SECRET}
TOKEN_KINDS = {"click": tokens.KIND_CLICK, "open": tokens.KIND_OPEN, "optout": tokens.KIND_OPTOUT,
               "mirror": tokens.KIND_MIRROR}
DEFAULT_URL = {"click": 4, "open": 1, "optout": 2, "mirror": 3}
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")
IPHONE_MAIL = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
               "(KHTML, like Gecko) Mobile/15E148")
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"

_counter = [0]


def hit_id(ts: int, serial: int | None = None) -> str:
    if serial is None:
        _counter[0] += 1
        serial = _counter[0]
    return f"{ts:012x}{serial:020x}"


def record(kind: str = "click", delivery_id: str = "00112233445566ff", log_id: int = 1, url_id: int | None = None,
           ts: int = 1_700_000_000_000, ua: str = CHROME, ip: str = "203.0.113.0", params: str = "",
           token_kind: str | None = None, the_hit_id: str | None = None, secret: bytes = SECRET,
           key_id: int = KEY_ID, **overrides: Any) -> dict[str, Any]:
    """A hit record as the hit path writes it, with a genuine token unless told otherwise."""
    url_id = DEFAULT_URL[kind] if url_id is None else url_id
    token = tokens.mint(TOKEN_KINDS[token_kind or ("click" if kind == "click" else kind)], key_id, secret,
                        delivery_id, log_id, url_id, params)
    value = {"v": 1, "hit_id": the_hit_id or hit_id(ts), "ts": ts, "kind": kind, "delivery_id": delivery_id,
             "log_id": log_id, "url_id": url_id, "token": token, "p": params, "ua": ua, "ip": ip,
             "request_id": "req"}
    value.update(overrides)
    return value


def line(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


def log_bytes(records: list[dict[str, Any] | bytes], compress: bool = False) -> bytes:
    data = b"".join(item if isinstance(item, bytes) else line(item) for item in records)
    return gzip.compress(data) if compress else data
