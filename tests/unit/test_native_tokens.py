"""Native token verification gives exactly the Python reference's answers.

Every case runs chalicelib.tokens.verify and the native module (directly and
through chalicelib.native's face) and compares the outcome: the same claims,
or the same InvalidToken reason, or the same kind of error for arguments of
the wrong type. `make test` builds the native module first and sets
REQUIRE_NATIVE_MODULE=1, so there a missing module fails these tests instead
of skipping them.
"""

from __future__ import annotations

import base64
import os
from typing import Any, Callable, Mapping

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chalicelib import native, tokens

try:
    import sendtrail_native
except ImportError as error:  # pragma: no cover - only where the module was never built
    if os.environ.get("REQUIRE_NATIVE_MODULE") == "1":
        raise
    pytest.skip(f"sendtrail_native is not built ({error}); `make native` builds it", allow_module_level=True)

KEY_1 = b"k" * 32
KEY_2 = b"q" * 32
RING = {1: KEY_1, 2: KEY_2}
DELIVERY = "0123456789abcdef"
URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
NATIVE = native.select("on")
PYTHON = native.select("off")

Outcome = tuple[str, Any]


def _outcome(verify: Callable[[], tokens.TokenClaims]) -> Outcome:
    try:
        return "ok", verify()
    except tokens.InvalidToken as error:
        return "invalid", error.reason
    except (TypeError, AttributeError):  # arguments of the wrong type (Python says AttributeError at times)
        return "error", "TypeError"


def _raw_native(token: Any, keys: Any, params: Any) -> Outcome:
    """The module itself: its own InvalidToken, with .reason and args[0]."""
    try:
        kind, key_id, delivery_id, log_id, url_id = sendtrail_native.verify_token(token, keys, params)
    except sendtrail_native.InvalidToken as error:
        assert isinstance(error, ValueError)
        assert error.args == (error.reason,)
        return "invalid", error.reason
    except (TypeError, AttributeError):
        return "error", "TypeError"
    return "ok", tokens.TokenClaims(kind, key_id, delivery_id, log_id, url_id)


def assert_same(token: Any, keys: Mapping[int, Any] = RING, params: Any = "") -> Outcome:
    expected = _outcome(lambda: tokens.verify(token, keys, params))
    assert _outcome(lambda: PYTHON.verify_token(token, keys, params)) == expected
    assert _outcome(lambda: NATIVE.verify_token(token, keys, params)) == expected, (token, params)
    assert _raw_native(token, keys, params) == expected, (token, params)
    return expected


def _mint(kind: int = tokens.KIND_CLICK, log_id: int = 42, url_id: int = 5, key_id: int = 1,
          secret: bytes = KEY_1, params: str = "", delivery: str = DELIVERY) -> str:
    return tokens.mint(kind, key_id, secret, delivery, log_id, url_id, params)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _signed(payload: bytes, secret: bytes = KEY_1, params: str = "") -> str:
    """A token around any payload, correctly tagged: reaches every structural check."""
    return _b64(payload + tokens._tag(secret, payload, params))  # noqa: SLF001 - the reference's own tag


def test_the_native_backend_is_the_module() -> None:
    assert NATIVE.is_native and NATIVE.module is sendtrail_native
    assert not PYTHON.is_native
    assert sendtrail_native.REASONS == ["malformed", "unknown_key", "bad_signature"]


params_text = st.one_of(
    st.just(""),
    st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=3).map(tokens.encode_params),
    st.text(alphabet=URL_ALPHABET, max_size=40),
    st.text(max_size=20),  # non-ASCII never verifies
)


@given(kind=st.sampled_from(sorted(tokens.KINDS)), log_id=st.integers(0, 2**35 + 5),
       url_id=st.integers(0, 2**35 + 5), key_id=st.sampled_from([1, 2, 3]), delivery=st.binary(min_size=8, max_size=8),
       params=params_text, presented=st.one_of(st.none(), params_text))
@example(kind=1, log_id=2**35 - 1, url_id=2**35 - 1, key_id=1, delivery=b"\xff" * 8, params="", presented=None)
@example(kind=1, log_id=2**35, url_id=0, key_id=1, delivery=b"\x00" * 8, params="", presented=None)
def test_valid_tokens_and_presented_params(kind: int, log_id: int, url_id: int, key_id: int, delivery: bytes,
                                           params: str, presented: str | None) -> None:
    if not params.isascii():
        params = tokens.encode_params({"v": params})
    token = _mint(kind, log_id, url_id, key_id, RING.get(key_id, b"x" * 32), params, delivery.hex())
    outcome = assert_same(token, RING, params if presented is None else presented)
    if presented is None and key_id in RING and log_id < 2**35 and url_id < 2**35:
        assert outcome == ("ok", tokens.TokenClaims(kind, key_id, delivery.hex(), log_id, url_id))


def test_every_single_byte_tampering() -> None:
    token = _mint(params="cD0x")
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    reasons = set()
    for position in range(len(raw)):
        for value in range(256):
            if value != raw[position]:
                forged = _b64(raw[:position] + bytes([value]) + raw[position + 1:])
                reasons.add(assert_same(forged, RING, "cD0x")[1])
    assert reasons == {"malformed", "unknown_key", "bad_signature"}


def test_every_single_character_change_insertion_and_deletion() -> None:
    token = _mint(log_id=300, url_id=70000)
    characters = URL_ALPHABET + "=.~+/ \n\t\x00é€\U0001f600\ud800"
    for position in range(len(token) + 1):
        for character in characters:
            assert_same(token[:position] + character + token[position + 1:])
            assert_same(token[:position] + character + token[position:])
        assert_same(token[:position] + token[position + 1:])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=60), st.text(alphabet=URL_ALPHABET + "=+/", max_size=60),
                 st.binary(max_size=45).map(_b64)))
def test_random_strings(token: str) -> None:
    assert_same(token)


varint_bytes = st.lists(st.one_of(st.integers(0, 255), st.sampled_from([0x00, 0x80, 0x81, 0xFF, 0x7F])),
                        max_size=12).map(bytes)


@settings(max_examples=400)
@given(kind=st.integers(0, 255), key_id=st.sampled_from([1, 2, 9]), delivery=st.binary(min_size=8, max_size=8),
       ids=varint_bytes, params=st.sampled_from(["", "cD0x", "é"]), sign_params=st.sampled_from(["", "cD0x"]))
def test_hand_built_payloads_signed_with_the_key(kind: int, key_id: int, delivery: bytes, ids: bytes, params: str,
                                                 sign_params: str) -> None:
    """Correct tags around any layout: varint spellings, kinds, lengths, key ids."""
    payload = bytes([kind, key_id]) + delivery + ids
    assert_same(_signed(payload, RING.get(key_id, KEY_1), sign_params), RING, params)


@pytest.mark.parametrize("keys", [
    {}, {2: KEY_2}, {1: KEY_2}, {1: b""}, {1: bytearray(KEY_1)}, {1: KEY_1 * 10}, {True: KEY_1},
])
def test_key_rings(keys: dict[Any, Any]) -> None:
    assert_same(_mint(), keys)
    assert_same(_mint(key_id=0, secret=b""), {0: b"", **keys})


def test_non_ascii_params_and_unknown_keys_in_python_order() -> None:
    token = _mint(key_id=9)
    assert assert_same(token, RING, "é") == ("invalid", "unknown_key")
    assert assert_same(_mint(), RING, "é") == ("invalid", "bad_signature")
    assert assert_same(_mint(), RING, "\ud800") == ("invalid", "bad_signature")
    assert assert_same("\ud800" * 3) == ("invalid", "malformed")


@pytest.mark.parametrize("token", [None, 0, 7, b"", bytearray(), b"abcd", bytearray(b"abcd"), b"\xff" * 4, b"a" * 49,
                                   [], [1], "", " "])
def test_tokens_that_are_not_str_fail_as_in_python(token: Any) -> None:
    """Falsy values and unusable bytes are malformed; the rest is a TypeError in both."""
    assert_same(token)


@pytest.mark.parametrize("params", [b"", b"cD0x", b"\xe9", bytearray(b"\xe9"), 5])
@pytest.mark.parametrize("key_id", [1, 9])
def test_params_that_are_not_str_fail_as_in_python(params: Any, key_id: int) -> None:
    assert_same(_mint(key_id=key_id, secret=RING.get(key_id, KEY_1)), RING, params)


@pytest.mark.parametrize("params", ["", "é", "cD0x"])
def test_a_str_secret_is_an_error_unless_params_are_not_ascii(params: str) -> None:
    assert_same(_mint(), {1: "k" * 32}, params)


def test_the_48_character_limit() -> None:
    longest = _mint(log_id=2**35 - 1, url_id=2**35 - 1)
    assert assert_same(longest)[0] == "ok"
    for extra in range(1, 12):
        assert assert_same(longest + "A" * extra) == ("invalid", "malformed")
    assert assert_same("A" * 48) == ("invalid", "malformed")
    assert assert_same("A" * 49) == ("invalid", "malformed")
