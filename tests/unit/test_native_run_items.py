"""The native run-item codec gives exactly the reference's answers: bytes, RunItems and refusals (reason and message).

tests/unit/test_vectors.py and test_run_items.py run both backends on the
shared vectors and on valid content; here the native module itself is held to
the vectors (so a silent fallback to the reference would not pass for it), the
backend to the reference on content the encoder must refuse (in the same
order: the first refusal in canonical order), and on values the native side
does not represent exactly (ints past 64 bits, lone surrogates, other types,
other iterables), where the backend runs the reference instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib import native
from chalicelib.tracking import core, run_items
from tests.vectors import __main__ as vectors

if os.environ.get("REQUIRE_NATIVE_MODULE") != "1":  # make test requires it; elsewhere, skip where never built
    pytest.importorskip("sendtrail_native", reason="sendtrail_native is not built; `make native` builds it")

NATIVE = native.select("on")
MODULE: Any = NATIVE.module
RUN_ITEMS = json.loads((vectors.HERE / "run_items.json").read_text(encoding="utf-8"))
DELIVERY = RUN_ITEMS["delivery_id"]
T0 = 1_740_823_200_000


def _id(serial: int) -> str:
    return f"{T0:012x}{serial:020x}"


def _hit(serial: int, **fields: Any) -> core.Hit:
    return replace(core.Hit(_id(serial), T0, "click", DELIVERY, 1, 4, "ua", "ip"), **fields)


def outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    """What a call gives: ("value", its value), or the exception's type and message (and a refusal's reason)."""
    try:
        return ("value", call())
    except run_items.RunItemError as error:
        return (type(error), error.reason, str(error))
    except Exception as error:  # noqa: BLE001 - any other exception must be the reference's too
        return (type(error), str(error))


def assert_same_encoding(*arguments: Any) -> None:
    assert outcome(lambda: NATIVE.encode_run_item(*arguments)) == outcome(lambda: run_items.encode(*arguments))


def assert_same_decoding(delivery_id: Any, body: Any) -> None:
    assert outcome(lambda: NATIVE.decode_run_item(delivery_id, body)) == outcome(
        lambda: run_items.decode(delivery_id, body))


def _inputs(case: dict[str, Any]) -> tuple[list[tuple[core.Hit, int]], list[tuple[str, int]],
                                           list[tuple[str, str, int]]]:
    hits = [(core.Hit(**{name: value for name, value in hit.items() if name != "verdict"}), hit["verdict"])
            for hit in case["hits"]]
    return (hits, [(entry["hit_id"], entry["verdict"]) for entry in case["corrections"]],
            [(entry["stat"], entry["field"], entry["delta"]) for entry in case["counters"]])


@pytest.mark.parametrize("case", RUN_ITEMS["cases"], ids=lambda case: case["name"])
def test_the_module_itself_meets_every_vector_with_the_references_message(case: dict[str, Any]) -> None:
    if "error" in case:
        body = bytes.fromhex(case["body"])
        with pytest.raises(MODULE.RunItemError) as refused:
            MODULE.decode_run_item(DELIVERY, body, core.Hit)
        assert refused.value.reason == case["error"]
        assert_same_decoding(DELIVERY, body)
        return
    hits, corrections, counters = _inputs(case)
    if "encode_error" in case:
        with pytest.raises(MODULE.RunItemError) as refused:
            MODULE.encode_run_item(DELIVERY, hits, corrections, counters, core.Hit)
        assert refused.value.reason == case["encode_error"]
        assert isinstance(refused.value, ValueError)
        assert_same_encoding(DELIVERY, hits, corrections, counters)
        return
    body = bytes.fromhex(case["body"])
    assert MODULE.encode_run_item(DELIVERY, hits, corrections, counters, core.Hit) == body
    decoded = run_items.RunItem(*MODULE.decode_run_item(DELIVERY, body, core.Hit))
    assert decoded == run_items.decode(DELIVERY, body)
    assert all(type(hit) is core.Hit for hit, _ in decoded.hits)


def test_a_decoded_text_is_one_object_however_many_hits_use_it() -> None:
    hits = [(_hit(serial, log_id=serial), 0) for serial in range(3)]
    decoded = NATIVE.decode_run_item(DELIVERY, run_items.encode(DELIVERY, hits, (), [("ua", "hits", 3)]))
    assert len({id(hit.ua) for hit, _ in decoded.hits} | {id(decoded.counters[0][0])}) == 1
    assert all(hit.delivery_id is DELIVERY for hit, _ in decoded.hits)


# Content the encoder may refuse: ids of other shapes, unknown kinds and purposes, other deliveries, values
# at and past their ranges (within 64 bits: the native side decides), repeated ids, corrections of own hits.
_ids = st.sampled_from([_id(serial) for serial in range(4)] + ["", "AB" * 16, "0" * 31, "g" * 32, "é" * 32])
_values = st.sampled_from([0, 1, T0, 2**53 - 1, 2**53, -1, 2**63 - 1, -(2**63)]) | st.integers(0, 5)
_verdicts = st.sampled_from([-2, -1, 0, 1, 2**53 - 1, 2**53, 2**63 - 1, -(2**63)])
_hits = st.builds(
    core.Hit, hit_id=_ids, ts=_values | st.just(T0), kind=st.sampled_from([*core.KINDS, "view", ""]),
    delivery_id=st.sampled_from([DELIVERY, DELIVERY, "0a0b0c0d0e0f1011"]), log_id=_values, url_id=_values,
    ua=st.sampled_from(["", "ua", "ip", "é🙂"]), ip=st.sampled_from(["", "ip", "ua"]),
    purpose=st.sampled_from(["", *core.PURPOSES, "later"]))
_counters = st.tuples(st.sampled_from(["", "s", "ua", "é"]), st.sampled_from(["", "f", "ip"]),
                      st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**100]))


@settings(max_examples=500, deadline=None)  # a twin checking hits in the order given differs on ~40% of them
@given(hits=st.lists(st.tuples(_hits, _verdicts), max_size=6),
       corrections=st.lists(st.tuples(_ids, _verdicts), max_size=4), counters=st.lists(_counters, max_size=5))
def test_encoding_refuses_what_the_reference_refuses_first(
        hits: list[tuple[core.Hit, int]], corrections: list[tuple[str, int]],
        counters: list[tuple[str, str, int]]) -> None:
    assert_same_encoding(DELIVERY, hits, corrections, counters)


@settings(max_examples=1500, deadline=None)
@given(body=st.binary(max_size=64).map(lambda tail: b"\x01" + tail) | st.binary(max_size=8))
def test_decoding_any_bytes_answers_as_the_reference(body: bytes) -> None:
    assert_same_decoding(DELIVERY, body)


class _Text(str):
    pass


class _Hit(core.Hit):
    __slots__ = ()


_ODD_HITS = [
    _hit(1, ts=2**64),  # past 64 bits
    _hit(1, log_id=-(2**70)),
    _hit(1, ts=True),  # not exactly int
    _hit(1, ua="\ud800"),  # not Unicode: the reference fails to encode it
    _hit(1, hit_id="\udc00" * 32),
    _hit(1, hit_id=_Text(_id(1))),  # not exactly str
    _hit(1, purpose=None),  # the reference takes a falsy purpose as none
    _Hit(_id(1), T0, "click", DELIVERY, 1, 4, "ua", "ip"),  # not exactly core.Hit
]


@pytest.mark.parametrize("odd", _ODD_HITS, ids=repr)
def test_hits_the_native_side_does_not_represent_fall_back(odd: core.Hit) -> None:
    for hits in ([(odd, 0)], [(odd, 0), (_hit(2, kind="view"), 0)], [(_hit(0, log_id=0), 0), (odd, 0)]):
        with pytest.raises(MODULE.Unsupported):
            MODULE.encode_run_item(DELIVERY, hits, [], [], core.Hit)
        assert_same_encoding(DELIVERY, hits)


@pytest.mark.parametrize("corrections, counters", [
    ([(_id(1), 2**64)], []),
    ([(_id(1), -(2**64))], [("s", "f", 1)]),
    ([(_id(1), False)], []),
    ([[_id(1), 0]], []),  # a list, not a tuple
    ([(_id(1), 0, 0)], []),  # the reference cannot unpack it
    ([("\ud800", 0)], []),
    ([], [("s", "f", 2**200)]),  # past what the native side holds (128 bits)
    ([], [("s", "f", 2**200), ("s", "f", 2**200)]),
    ([], [("\ud800", "f", 1)]),
    ([], [(_Text("s"), "f", 1)]),
    ([], [("s", "f", 1.0)]),
    ([], [("s", "f")]),
])
def test_entries_the_native_side_does_not_represent_fall_back(corrections: list[Any], counters: list[Any]) -> None:
    with pytest.raises(MODULE.Unsupported):
        MODULE.encode_run_item(DELIVERY, [(_hit(1, kind="view"), 0)], corrections, counters, core.Hit)
    for hits in ([], [(_hit(1, kind="view"), 0)], [(_hit(1), 0)]):
        assert_same_encoding(DELIVERY, hits, corrections, counters)


def test_deltas_past_64_bits_are_refused_natively() -> None:
    for delta in (2**63, -(2**63) - 1, 2**127 - 1, -(2**127)):
        with pytest.raises(MODULE.RunItemError) as refused:
            MODULE.encode_run_item(DELIVERY, [], [], [("s", "f", delta)], core.Hit)
        assert str(refused.value) == f"out_of_range: s f {delta}"


def test_other_iterables_and_bodies_go_to_the_reference() -> None:
    hits = [(_hit(2), 1), (_hit(1, log_id=0), 0)]
    body = run_items.encode(DELIVERY, hits, [(_id(3), 5)], [("s", "f", 1)])
    assert NATIVE.encode_run_item(DELIVERY, iter(hits), (entry for entry in [(_id(3), 5)]),
                                  {("s", "f", 1): None}) == body

    def failing() -> Any:
        yield (_id(3), 5)
        raise LookupError("the iterable's own")

    bad_hits = [(_hit(1, kind="view"), 0)]
    assert outcome(lambda: NATIVE.encode_run_item(DELIVERY, bad_hits, failing())) == outcome(
        lambda: run_items.encode(DELIVERY, bad_hits, failing()))  # bad_hit: corrections are read after the hits
    assert outcome(lambda: NATIVE.encode_run_item(DELIVERY, hits, failing())) == outcome(
        lambda: run_items.encode(DELIVERY, hits, failing()))
    for delivery_id in (_Text(DELIVERY), None, "\ud800"):
        assert_same_encoding(delivery_id, hits)
    for other in (bytearray(body), memoryview(body), body + b"\x00", bytearray(body[:-1]), "\x01", b""):
        assert_same_decoding(DELIVERY, other)
    decoded = NATIVE.decode_run_item(None, body)  # type: ignore[arg-type]  # the delivery id is only passed on
    assert decoded == run_items.decode(None, body) and decoded.hits[0][0].delivery_id is None  # type: ignore[arg-type]


def test_refusals_are_the_reference_exception_with_its_reason_and_message() -> None:
    with pytest.raises(run_items.RunItemError) as refused:
        NATIVE.decode_run_item(DELIVERY, b"\x01\x00\x00\x00\x00\x07")
    assert (refused.value.reason, str(refused.value)) == ("trailing_bytes", "trailing_bytes: 1 bytes")
    assert refused.value.__cause__ is None and refused.value.__suppress_context__
    with pytest.raises(run_items.RunItemError) as refused:
        NATIVE.decode_run_item(DELIVERY, b"")
    assert (refused.value.reason, str(refused.value)) == ("bad_version", "bad_version")
    with pytest.raises(run_items.RunItemError) as refused:
        NATIVE.encode_run_item(DELIVERY, [(_hit(1), 0), (_hit(1, log_id=2), 0)])
    assert str(refused.value) == f"duplicate: {_id(1)}"
