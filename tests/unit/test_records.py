"""The hit record format and IP minimisation."""

from __future__ import annotations

import json

import pytest

from chalicelib.hits.records import build_record, minimise_ip, new_hit_id
from chalicelib.tokens import TokenClaims


@pytest.mark.parametrize(("ip", "mode", "expected"), [
    ("203.0.113.77", "full", "203.0.113.77"),
    ("203.0.113.77", "truncated", "203.0.113.0"),
    ("203.0.113.77", "none", ""),
    ("2001:db8:abcd:12::1", "truncated", "2001:db8:abcd::"),
    ("2001:db8:abcd:12::1", "full", "2001:db8:abcd:12::1"),
    ("not-an-ip", "truncated", ""),
    ("", "truncated", ""),
])
def test_minimise_ip(ip: str, mode: str, expected: str) -> None:
    assert minimise_ip(ip, mode) == expected


def test_record_is_one_json_line_with_every_field() -> None:
    claims = TokenClaims(1, 1, "0123456789abcdef", 7, 4)
    raw = build_record("click", claims, "TOKEN", "", "Mozilla/5.0 \n\u00e9", "203.0.113.0", "req-1", at_ms=1_700_000_000_000)
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    record = json.loads(raw)
    assert record.pop("hit_id").startswith(f"{1_700_000_000_000:012x}")
    assert record == {"v": 1, "ts": 1_700_000_000_000, "kind": "click", "delivery_id": "0123456789abcdef",
                      "log_id": 7, "url_id": 4, "token": "TOKEN", "p": "", "ua": "Mozilla/5.0 \n\u00e9",
                      "ip": "203.0.113.0", "request_id": "req-1"}


def test_hit_ids_are_unique_and_time_ordered() -> None:
    ids = [new_hit_id(1000 + index // 10) for index in range(1000)]
    assert len(set(ids)) == 1000
    assert [hit_id[:12] for hit_id in ids] == sorted(hit_id[:12] for hit_id in ids)
    assert all(len(hit_id) == 32 for hit_id in ids)
