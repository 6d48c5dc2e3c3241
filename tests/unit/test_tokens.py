"""Signed tracking tokens: round trip, tampering, rotation, canonical form."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib import tokens
from chalicelib.keyring import KeyRing, KeyRingError

KEY_1 = b"k" * 32
KEY_2 = b"q" * 32
DELIVERY = "0123456789abcdef"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _mint(kind: int = tokens.KIND_CLICK, log_id: int = 42, url_id: int = 5, key_id: int = 1,
          secret: bytes = KEY_1, params: str = "") -> str:
    return tokens.mint(kind, key_id, secret, DELIVERY, log_id, url_id, params)


@given(kind=st.sampled_from(sorted(tokens.KINDS)), log_id=st.integers(0, 2**32 - 1), url_id=st.integers(0, 2**21 - 1),
       key_id=st.integers(0, 255), delivery=st.binary(min_size=8, max_size=8))
def test_round_trip_and_length(kind: int, log_id: int, url_id: int, key_id: int, delivery: bytes) -> None:
    token = tokens.mint(kind, key_id, KEY_1, delivery.hex(), log_id, url_id)
    assert len(token) <= tokens.MAX_TOKEN_CHARS
    assert set(token) <= set(ALPHABET)
    claims = tokens.verify(token, {key_id: KEY_1})
    assert claims == tokens.TokenClaims(kind, key_id, delivery.hex(), log_id, url_id)


def test_click_token_fits_in_48_characters_with_the_largest_ids() -> None:
    assert len(_mint(log_id=2**32 - 1, url_id=2**21 - 1)) <= 48


def test_every_single_byte_tampering_is_rejected() -> None:
    token = _mint()
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for position in range(len(raw)):
        for value in range(256):
            if value == raw[position]:
                continue
            forged = raw[:position] + bytes([value]) + raw[position + 1:]
            forged_token = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
            with pytest.raises(tokens.InvalidToken):
                tokens.verify(forged_token, {1: KEY_1})


def test_every_single_character_change_is_rejected() -> None:
    token = _mint()
    for position in range(len(token)):
        for character in ALPHABET + "=.~+/ ":
            if character == token[position]:
                continue
            with pytest.raises(tokens.InvalidToken):
                tokens.verify(token[:position] + character + token[position + 1:], {1: KEY_1})


@pytest.mark.parametrize("forged", ["", "x", "a" * 49, "é" * 10, "abc=", "YWJj"])
def test_garbage_is_malformed(forged: str) -> None:
    with pytest.raises(tokens.InvalidToken) as error:
        tokens.verify(forged, {1: KEY_1})
    assert error.value.reason == "malformed"


def test_padding_and_stray_characters_do_not_verify() -> None:
    token = _mint()
    for variant in (token + "=", token + "==", token[:5] + "\n" + token[5:], " " + token):
        with pytest.raises(tokens.InvalidToken):
            tokens.verify(variant, {1: KEY_1})


def test_signed_parameters_cannot_change() -> None:
    params = tokens.encode_params({"member_id": "m-42"})
    token = _mint(params=params)
    assert tokens.verify(token, {1: KEY_1}, params).url_id == 5
    other = tokens.encode_params({"member_id": "m-43"})
    for presented in ("", other, params + "A"):
        with pytest.raises(tokens.InvalidToken) as error:
            tokens.verify(token, {1: KEY_1}, presented)
        assert error.value.reason == "bad_signature"


def test_unknown_key_and_wrong_secret() -> None:
    token = _mint(key_id=7)
    with pytest.raises(tokens.InvalidToken) as unknown:
        tokens.verify(token, {1: KEY_1})
    assert unknown.value.reason == "unknown_key"
    with pytest.raises(tokens.InvalidToken) as wrong:
        tokens.verify(token, {7: KEY_2})
    assert wrong.value.reason == "bad_signature"


def test_key_rotation_old_key_verifies_until_removed() -> None:
    ring_v1 = KeyRing.from_json('{"active": 1, "keys": {"1": "%s"}}' % base64.b64encode(KEY_1).decode())
    old = tokens.mint(tokens.KIND_OPEN, ring_v1.active_key_id, ring_v1.active_secret, DELIVERY, 1, 1)
    ring_v2 = KeyRing.from_json('{"active": 2, "keys": {"1": "%s", "2": "%s"}}'
                                % (base64.b64encode(KEY_1).decode(), base64.b64encode(KEY_2).decode()))
    new = tokens.mint(tokens.KIND_OPEN, ring_v2.active_key_id, ring_v2.active_secret, DELIVERY, 1, 1)
    assert tokens.verify(old, ring_v2.keys).key_id == 1
    assert tokens.verify(new, ring_v2.keys).key_id == 2
    ring_v3 = KeyRing.from_json('{"active": 2, "keys": {"2": "%s"}}' % base64.b64encode(KEY_2).decode())
    assert tokens.verify(new, ring_v3.keys).key_id == 2
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(old, ring_v3.keys)


@given(secret=st.one_of(st.binary(max_size=200), st.sampled_from([b"", b"k" * 64, b"k" * 65, KEY_1 * 10])),
       payload=st.binary(max_size=40), params=st.text(alphabet=ALPHABET, max_size=30))
def test_the_tag_is_hmac_sha256_of_the_domain_payload_and_params(secret: bytes, payload: bytes, params: str) -> None:
    """The keyed states kept per secret give the standard library's HMAC, for every key length."""
    expected = hmac.new(secret, b"sendtrail-token-v1\x00" + payload + b"\x00" + params.encode(),
                        hashlib.sha256).digest()[:tokens.TAG_BYTES]
    assert tokens._tag(secret, payload, params) == expected  # noqa: SLF001
    assert tokens._tag(bytearray(secret), payload, params) == expected  # noqa: SLF001 - not kept, same tag


def test_mint_refuses_non_canonical_delivery_ids() -> None:
    for delivery in ("0123456789ABCDEF", "0123", "01 23456789abcdef"):
        with pytest.raises(ValueError):
            tokens.mint(tokens.KIND_CLICK, 1, KEY_1, delivery, 1, 4)


@pytest.mark.parametrize("document", [
    "", "{}", '{"active": 1, "keys": {}}', '{"active": 1, "keys": {"1": "c2hvcnQ="}}',
    '{"active": 1, "keys": {"1": "not base64!"}}', '{"active": 300, "keys": {"300": "%s"}}'
    % base64.b64encode(KEY_1).decode(),
])
def test_malformed_key_rings_are_refused(document: str) -> None:
    with pytest.raises(KeyRingError):
        KeyRing.from_json(document)


def test_params_round_trip_and_garbage() -> None:
    values = {"a": "1 2/3", "é": "ü&"}
    assert tokens.decode_params(tokens.encode_params(values)) == values
    assert tokens.decode_params("") == {}
    assert tokens.decode_params("!!") is None
    assert tokens.decode_params(base64.urlsafe_b64encode(b"[1]").decode()) is None
