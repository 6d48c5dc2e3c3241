"""The hit record format and IP minimisation."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from chalicelib.hits.records import build_record, declared_purpose, minimise_ip, new_hit_id, reference_record
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


@pytest.mark.parametrize(("headers", "expected"), [
    ({}, ""),
    ({"sec-purpose": "prefetch"}, "prefetch"),
    ({"sec-purpose": "prefetch;prerender"}, "prerender"),
    ({"sec-purpose": "Prefetch ; anonymous-client-ip-when-cross-origin"}, "prefetch"),
    ({"sec-purpose": "prefetch; prerender, x"}, "prerender"),
    ({"purpose": "prefetch"}, "prefetch"),
    ({"x-purpose": "preview"}, "preview"),
    ({"x-moz": "prefetch"}, "prefetch"),
    ({"x-purpose": "instant"}, ""),  # not a value we know: declares nothing
    ({"sec-purpose": "", "x-moz": "prefetch"}, "prefetch"),
    ({"purpose": "navigate"}, ""),
])
def test_the_purpose_a_request_declares(headers: dict[str, str], expected: str) -> None:
    assert declared_purpose(headers) == expected


def test_a_declared_purpose_is_the_records_last_field_and_absent_otherwise() -> None:
    claims = TokenClaims(1, 1, "0123456789abcdef", 7, 4)
    plain = build_record("click", claims, "T", "", "ua", "", "r", 5, "h")
    prefetch = build_record("click", claims, "T", "", "ua", "", "r", 5, "h", purpose="prefetch")
    assert "purpose" not in json.loads(plain)
    assert prefetch == plain[:-2] + b',"purpose":"prefetch"}\n'


def test_hit_ids_are_unique_and_time_ordered() -> None:
    ids = [new_hit_id(1000 + index // 10) for index in range(1000)]
    assert len(set(ids)) == 1000
    assert [hit_id[:12] for hit_id in ids] == sorted(hit_id[:12] for hit_id in ids)
    assert all(len(hit_id) == 32 for hit_id in ids)


@given(strings=st.lists(st.text(), min_size=7, max_size=7), ids=st.lists(st.integers(0, 2**40), min_size=3, max_size=3),
       purpose=st.one_of(st.sampled_from(["", "prefetch", "prerender", "preview"]), st.text()))
@example(strings=['Evil "agent"\\ \u2028 \U0001F600 {"kind":"click"}', "\x00\x1f\x7f", "é", "", "<\u2029>", "\t", "/"],
         ids=[0, 1, 2], purpose="")
@example(strings=["click", "T", "", "lone \ud800 surrogate", "", "r", "h"], ids=[0, 1, 2], purpose="")
def test_the_record_is_exactly_its_reference_json_line(strings: list[str], ids: list[int], purpose: str) -> None:
    kind, token, params, user_agent, ip, request_id, hit_id = strings
    claims = TokenClaims(2, 1, "0123456789abcdef", ids[0], ids[1])
    expected = reference_record(kind, claims, token, params, user_agent, ip, request_id, ids[2], hit_id or "h", purpose)
    assert build_record(kind, claims, token, params, user_agent, ip, request_id, ids[2], hit_id or "h",
                        purpose) == expected


def test_values_of_other_types_are_written_as_json_writes_them() -> None:
    claims = TokenClaims(2, 1, "0123456789abcdef", 7, 1)
    raw = build_record("open", claims, "T", "", None, "", "req", 5, "h")  # type: ignore[arg-type]
    assert raw == reference_record("open", claims, "T", "", None, "", "req", 5, "h")  # type: ignore[arg-type]
    assert json.loads(raw)["ua"] is None
