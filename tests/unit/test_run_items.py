"""Run-item bodies (docs/spec/run-items.md) beyond the shared vectors: any content round-trips, and every
body a backend accepts is the one it would write (one body per content), for the reference and the native
twin alike. The vectors (tests/unit/test_vectors.py) pin the exact bytes and refusals.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib import native
from chalicelib.tracking import core, run_items

DELIVERY = "00112233445566ff"
BACKENDS = [native.select("off")]
if os.environ.get("REQUIRE_NATIVE_MODULE") == "1" or native.select("auto").is_native:
    BACKENDS.append(native.select("on"))

_ids = st.text("0123456789abcdef", min_size=32, max_size=32)
_values = st.integers(0, run_items.MAX_VALUE)
_texts = st.sampled_from(["", "Mozilla/5.0", "203.0.113.0", "2001:db8::", "é🙂", "indicators"]) | st.text(max_size=8)
_hits = st.builds(
    lambda hit_id, use_id_time, ts, kind, log_id, url_id, ua, ip, purpose: core.Hit(
        hit_id, int(hit_id[:12], 16) if use_id_time else ts, kind, DELIVERY, log_id, url_id, ua, ip, purpose),
    _ids, st.booleans(), _values, st.sampled_from(core.KINDS), st.integers(0, 40) | _values,
    st.integers(0, 40) | _values, _texts, _texts, st.sampled_from(("", *core.PURPOSES)))
_verdicts = st.integers(-1, 511) | st.integers(-1, run_items.MAX_VERDICT)
_items = st.tuples(
    st.lists(st.tuples(_hits, _verdicts), max_size=12, unique_by=lambda entry: entry[0].hit_id),
    st.lists(st.tuples(_ids, _verdicts), max_size=4, unique_by=lambda entry: entry[0]),
    st.lists(st.tuples(_texts, _texts, st.integers(-2**63, 2**63 - 1)), max_size=8,
             unique_by=lambda entry: entry[:2]))


def _canonical(hits, corrections, counters):
    own = {hit.hit_id for hit, _ in hits}
    return (tuple(sorted(hits, key=lambda entry: (entry[0].log_id, entry[0].ts, entry[0].hit_id))),
            tuple(sorted(entry for entry in corrections if entry[0] not in own)),
            tuple(sorted(counter for counter in counters if counter[2])))


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(item=_items)
def test_any_item_round_trips_and_both_backends_write_the_same_bytes(
        backend: native.Backend, item: tuple[list, list, list]) -> None:
    hits, corrections, counters = item
    expected = _canonical(hits, corrections, counters)
    body = backend.encode_run_item(DELIVERY, hits, expected[1], counters)
    assert body == run_items.encode(DELIVERY, hits, expected[1], counters)
    decoded = backend.decode_run_item(DELIVERY, body)
    assert (decoded.hits, decoded.corrections, decoded.counters) == expected


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_body_is_refused_with_the_references_reason_or_is_the_one_its_content_encodes_to(
        backend: native.Backend, data: st.DataObject) -> None:
    hits, corrections, counters = data.draw(_items)
    body = bytearray(run_items.encode(DELIVERY, hits, _canonical(hits, corrections, counters)[1], counters))
    for _ in range(data.draw(st.integers(1, 3))):  # damage it: flip, cut or insert bytes
        at = data.draw(st.integers(0, len(body)))
        action = data.draw(st.sampled_from(("flip", "cut", "insert")))
        if action == "flip" and at < len(body):
            body[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del body[at:at + data.draw(st.integers(1, 4))]
        else:
            body[at:at] = data.draw(st.binary(min_size=1, max_size=3))
    try:
        reference = run_items.decode(DELIVERY, bytes(body))
    except run_items.RunItemError as refused:
        with pytest.raises(run_items.RunItemError) as also_refused:
            backend.decode_run_item(DELIVERY, bytes(body))
        assert also_refused.value.reason == refused.reason
        return
    decoded = backend.decode_run_item(DELIVERY, bytes(body))
    assert decoded == reference
    assert backend.encode_run_item(DELIVERY, decoded.hits, decoded.corrections, decoded.counters) == bytes(body)


def test_a_hit_path_id_at_its_own_time_costs_no_time_field() -> None:
    """What keeps a hit near 25 bytes: ids the hit path makes carry their ms (chalicelib/hits/records.py)."""
    hit_id = f"{1_740_823_200_000:012x}{7:020x}"
    own_time = core.Hit(hit_id, 1_740_823_200_000, "click", DELIVERY, 300, 4, "a", "b")
    shifted = core.Hit(hit_id, 1_740_823_200_001, "click", DELIVERY, 300, 4, "a", "b")
    alone = len(run_items.encode(DELIVERY, []))
    texts = len(b"\x01a\x01b")
    assert len(run_items.encode(DELIVERY, [(own_time, 0)])) - alone - texts == 1 + 16 + 2 + 1 + 1 + 1 + 1
    assert len(run_items.encode(DELIVERY, [(shifted, 0)])) - len(run_items.encode(DELIVERY, [(own_time, 0)])) == 6


@settings(max_examples=100, deadline=None)
@given(item=_items, limit=st.integers(200, 600))  # one entry (a hit and its texts) fits in 200
def test_a_body_split_to_a_size_holds_the_same_content_in_order(item: tuple[list, list, list], limit: int) -> None:
    """chalicelib/data/run_items.py writes a run's item of a shard in parts below DynamoDB's item limit."""
    hits, corrections, counters = item
    body = run_items.encode(DELIVERY, hits, _canonical(hits, corrections, counters)[1], counters)
    parts = run_items.split(DELIVERY, body, limit)
    decoded = [run_items.decode(DELIVERY, part) for part in parts]
    assert all(len(part) <= limit for part in parts)
    whole = run_items.decode(DELIVERY, body)
    assert tuple(entry for part in decoded for entry in part.hits) == whole.hits
    assert tuple(entry for part in decoded for entry in part.corrections) == whole.corrections
    assert tuple(entry for part in decoded for entry in part.counters) == whole.counters
    assert (parts == [body]) == (len(body) <= limit)
