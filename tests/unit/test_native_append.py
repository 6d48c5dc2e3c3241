"""The append layout's compute, native and Python: the same run record from the same objects and run items.

TrackingWorkflow._compute with settings.tracking_layout = "append", from
parsed objects to the run record (each touched shard's run item body, the
counters' bodies, statistics), with SENDTRAIL_NATIVE on (sendtrail_native.RunHits:
the stored run items decoded into the prior hits, aggregated, classified and
each shard's body encoded natively) and off (the Python reference). Runs
follow one another: each later run reads the run items the earlier ones
stored (a RunItemStore held in memory), as test_native_run.py's second run
reads stored tracking items. On the standard input's first lines, and on
hand-made hits: IPv6 addresses, declared purposes, ids whose ts is not the
id's time, known recipients, and late hits that change stored verdicts
(corrections).
"""

from __future__ import annotations

import base64
import os
from typing import Any, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.inputs import KEYRING
from chalicelib import native
from chalicelib.data import item_json
from chalicelib.data.run_items import RECIPIENTS_PER_SHARD, StoredRunItem, seq_of
from chalicelib.tracking import core, run_items, workflow
from chalicelib.tracking.workflow import Limits
from tests.tracking_logs import CHROME, IPHONE_MAIL, KEYS, hit_id, line, record
from tests.unit.test_native_run import NATIVE, NOW_MS, PYTHON, _Workflow, configure, standard_objects
from tests.unit.test_run_items import _canonical, _items

if os.environ.get("REQUIRE_NATIVE_MODULE") != "1":  # make test requires it; elsewhere, skip where never built
    pytest.importorskip("sendtrail_native", reason="sendtrail_native is not built; `make native` builds it")

__all__ = ["configure"]  # the settings fixture, shared with test_native_run.py

DELIVERY = "00112233445566ff"
OTHER = "0a0b0c0d0e0f1011"
T0 = 1_740_826_800_000  # the hand-made hits' time (ms)


class _RunItems:
    """The run items earlier runs wrote (RunItemStore.put of each record's run_items, each part an item), from
    memory, read in seq order."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, int | None], list[StoredRunItem]] = {}

    def read_shard(self, delivery_id: str, shard: int | None, consistent: bool = True) -> list[StoredRunItem]:
        return list(self.items.get((delivery_id, shard), []))

    def store(self, record: dict[str, Any]) -> None:
        for item in record["run_items"]:
            self.items.setdefault((item["delivery_id"], item["shard"]), []).append(
                StoredRunItem(seq_of(record["run"], item["part"]), base64.b64decode(item["body"])))


class _Run:
    """One backend's successive runs, each over the run items the earlier ones stored."""

    def __init__(self, backend: native.Backend, settings: Any, facts: dict[tuple[str, int], dict[str, Any]]) -> None:
        self.backend = backend
        self.settings = settings.model_copy(update={"tracking_layout": "append"})
        self.facts = facts
        self.store = _RunItems()
        self.runs = 0

    def record(self, monkeypatch: pytest.MonkeyPatch, objects: list[bytes], keys: dict[int, bytes]) -> dict[str, Any]:
        self.runs += 1
        workflow = _Workflow(self.settings, Limits(write_concurrency=1), logs=object(),  # type: ignore[arg-type]
                             tracking=object(), state=object(), runs=self.store)  # type: ignore[arg-type]
        workflow.facts = self.facts
        with monkeypatch.context() as patch:
            patch.setattr(native, "backend", lambda: self.backend)
            parsed = [("2025/03/01/10", f"logs/2025/03/01/10/object-{self.runs}-{index}",
                       self.backend.parse_log(data, keys)) for index, data in enumerate(objects)]
            computed = workflow._compute(self.runs, "owner", NOW_MS, parsed, "2025/03/01/10",  # noqa: SLF001
                                         backlog=False)
        self.store.store(computed)
        return computed


@pytest.fixture
def natively(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Whether each native run's compute was native (True) or fell back to the reference (False)."""
    computed: list[bool] = []
    original = native.Backend.compute_appended

    def counted(self: native.Backend, *given: Any) -> Any:
        result = original(self, *given)
        computed.append(result is not None)
        return result

    monkeypatch.setattr(native.Backend, "compute_appended", counted)
    yield computed


def runs(monkeypatch: pytest.MonkeyPatch, natively: list[bool], settings: Any, runs_objects: list[list[bytes]],
         keys: dict[int, bytes], facts: dict[tuple[str, int], dict[str, Any]] | None = None
         ) -> list[dict[str, Any]]:
    """The records of successive runs by both backends, each asserted equal to the other's (the native ones
    computed natively)."""
    by_native, by_python = _Run(NATIVE, settings, facts or {}), _Run(PYTHON, settings, facts or {})
    records = []
    for objects in runs_objects:
        natively.clear()
        native_record = by_native.record(monkeypatch, objects, keys)
        python_record = by_python.record(monkeypatch, objects, keys)
        assert natively == [True], "the native backend computed in Python"
        assert item_json.dumps(native_record) == item_json.dumps(python_record)  # the very bytes of the record
        assert native_record == python_record
        records.append(native_record)
    assert by_native.store.items == by_python.store.items
    return records


def decoded(record: dict[str, Any]) -> list[tuple[dict[str, Any], run_items.RunItem]]:
    return [(item, run_items.decode(item["delivery_id"], base64.b64decode(item["body"])))
            for item in record["run_items"]]


@pytest.mark.parametrize("ip_mode", ["truncated", "full"])
def test_runs_over_the_standard_input_give_the_same_records(monkeypatch: pytest.MonkeyPatch, configure: Any,
                                                            natively: list[bool], ip_mode: str) -> None:
    objects = standard_objects(8_000, 1_000)
    # Some recipients known to the delivery logs (domains, send times: too_fast), on every shard of the first object.
    first = {(hit.delivery_id, hit.log_id) for hit in PYTHON.parse_log(objects[0], KEYRING).hits}
    facts = {key: {"recipient_id": f"r{index}", "sent_at": NOW_MS - 86_400_000 + index,
                   "domain": ["example.com", "example.org"][index % 2]} for index, key in enumerate(sorted(first)[::4])}
    # The second run repeats an object of the first (duplicates across runs); later runs add to stored shards.
    records = runs(monkeypatch, natively, configure(ip_mode), [objects[:3], objects[2:5], objects[5:]], KEYRING,
                   facts)
    statistics = [record["statistics"] for record in records]
    assert all(entry["hits_accepted"] > 1_000 for entry in statistics)
    assert statistics[1]["duplicates"] >= 1_000
    later = [entry for record in records[1:] for entry in decoded(record)]
    assert any(body.corrections for _, body in later), "no stored verdict changed"
    assert any(body.hits for _, body in later) and any(body.counters for _, body in later)
    shards = {(item["delivery_id"], item["shard"]) for record in records for item in record["run_items"]}
    assert len(shards) > 50 and any(shard is None for _, shard in shards)
    counters = {stat for _, body in later for stat, _, _ in body.counters}
    assert "indicators" in counters and any(stat.startswith("domain#") for stat in counters)


def test_runs_whose_items_are_written_in_parts_give_the_same_records(monkeypatch: pytest.MonkeyPatch,
                                                                     configure: Any, natively: list[bool]) -> None:
    """A shard's item past the size of a part (workflow._in_parts; made small here) is written in parts, and
    the next runs read them all, in order."""
    monkeypatch.setattr(workflow, "MAX_BODY_BYTES", 1_500)
    objects = standard_objects(3_000, 1_000)
    records = runs(monkeypatch, natively, configure("truncated"), [objects[:1], objects[1:]], KEYRING)
    parts = [item["part"] for record in records for item in record["run_items"]]
    assert max(parts) >= 2 and any(body.corrections for _, body in decoded(records[1]))


def test_hand_made_hits_over_several_runs_give_the_same_records(monkeypatch: pytest.MonkeyPatch, configure: Any,
                                                                natively: list[bool]) -> None:
    """IPv6 addresses, declared purposes, ids whose ts is not the id's own, recipients on several shards and
    deliveries, an agent spelled as an address, and late hits that turn stored ones machine (bursts with
    stored clicks): corrections."""
    far = RECIPIENTS_PER_SHARD * 3 + 7  # another shard of the delivery
    first = [
        record("open", DELIVERY, 1, ts=T0, ip="2001:db8:85a3:8d3:1319:8a2e:370:7348", ua=IPHONE_MAIL),
        record("open", DELIVERY, 1, ts=T0 + 70_000, ip="2001:DB8:85A3::1", purpose="prefetch"),
        record("click", DELIVERY, 1, ts=T0 + 80_000, ip="::ffff:203.0.113.9", the_hit_id="f" * 32),
        record("click", DELIVERY, 2, url_id=4, ts=T0 + 10_000, ip="203.0.113.200"),  # a burst's first click ...
        record("click", DELIVERY, far, url_id=5, ts=T0 + 20_000, ip="198.51.100.7"),
        record("open", DELIVERY, far, ts=T0 + 21_000, ip="198.51.100.7", the_hit_id=hit_id(T0 - 5, 77)),
        record("mirror", OTHER, 3, ts=T0 + 3_000, ip="not an address"),
        record("click", OTHER, 7, ts=T0 + 4_000, ip="10.0.0", ua="Mozilla/5.0"),
        record("optout", OTHER, 8, ts=T0 + 5_000, ip="fe80::1%eth0"),
        record("open", OTHER, 9, ts=T0, ip="17.58.100.0"),  # Apple's range
        record("open", DELIVERY, 3, ts=T0 + 7_000, ua="", ip=""),  # one text, an agent's and an address's
    ]
    second = [
        record("click", DELIVERY, 2, url_id=6, ts=T0 + 10_300, ip="203.0.113.200"),  # ... a late click: both burst
        record("click", DELIVERY, far, url_id=7, ts=T0 + 20_500, ip="198.51.100.7"),  # a burst with a stored click
        record("open", DELIVERY, 1, ts=T0 + 200_000, ip="2001:db8::2", ua=IPHONE_MAIL),
        record("click", DELIVERY, 1, ts=T0 + 1_000, ip="2001:db8::2", the_hit_id="e" * 32),  # before stored hits
        first[0],  # stored already: a duplicate
        record("click", OTHER, 9, ts=T0 + 6_000, ip="40.92.3.0"),  # a scanner's address
        record("open", OTHER, 11, ts=T0 + 1, ip="2a01:111:f400::7", purpose="preview"),
        record("click", DELIVERY, 3, ts=T0 + 8_000, ua="203.0.113.0", ip="203.0.113.0"),
    ]
    third = [
        record("click", DELIVERY, far, url_id=8, ts=T0 + 20_800, ip="198.51.100.7", ua=CHROME),
        record("open", OTHER, 3, ts=T0 + 3_100, ip="2A01:0111:F403:0:0:0:0:9"),
        second[0],
    ]
    facts = {(DELIVERY, 1): {"recipient_id": "alice", "sent_at": T0 - 1_000, "domain": "example.com"},
             (DELIVERY, 2): {"recipient_id": "", "sent_at": T0 + 9_000},  # a click 1 s after the send: too fast
             (OTHER, 9): {"recipient_id": 42, "domain": "example.org"}}
    for ip_mode in ("truncated", "full", "none"):
        records = runs(monkeypatch, natively, configure(ip_mode),
                       [[b"".join(map(line, first))], [b"".join(map(line, second))], [b"".join(map(line, third))]],
                       KEYS, facts)
        assert [entry["statistics"]["duplicates"] for entry in records] == [0, 1, 1]
        later = [body for entry in records[1:] for _, body in decoded(entry)]
        assert sum(len(body.corrections) for body in later) >= 2
        timed = [hit for _, body in decoded(records[0]) for hit, _ in body.hits if hit.hit_id == "f" * 32]
        assert timed and timed[0].ts != int(timed[0].hit_id[:12], 16)
        assert {hit.purpose for _, body in decoded(records[0]) for hit, _ in body.hits} >= {"", "prefetch"}


def test_a_stored_body_the_decoder_refuses_fails_the_run_the_same_way(
        monkeypatch: pytest.MonkeyPatch, configure: Any) -> None:
    settings = configure("truncated")
    objects = [line(record("open", DELIVERY, 1, ts=T0))]
    failures = []
    for backend in (NATIVE, PYTHON):
        run = _Run(backend, settings, {})
        run.store.items[(DELIVERY, 0)] = [StoredRunItem(seq_of(1, 0), b"\x01\x00\x01")]
        with pytest.raises(run_items.RunItemError) as raised:
            run.record(monkeypatch, objects, KEYS)
        failures.append((raised.value.reason, str(raised.value)))
    assert failures[0] == failures[1] and failures[0][0] == "truncated"


def test_a_context_the_native_side_does_not_represent_is_computed_by_the_reference(
        monkeypatch: pytest.MonkeyPatch, configure: Any, natively: list[bool]) -> None:
    """A send time past 64 bits (never what the delivery logs hold): the native module declines, after it read
    the run items, and the reference computes the record from them."""
    settings = configure("truncated")
    facts = {(DELIVERY, 1): {"sent_at": 2**70}}
    first = [line(record("open", DELIVERY, 1, ts=T0)), line(record("click", DELIVERY, 2, ts=T0 + 1))]
    second = [line(record("click", DELIVERY, 1, ts=T0 + 61_000)), line(record("click", DELIVERY, 2, ts=T0 + 100))]
    by_native, by_python = _Run(NATIVE, settings, facts), _Run(PYTHON, settings, facts)
    for objects in (first, second):
        natively.clear()
        assert by_native.record(monkeypatch, [b"".join(objects)], KEYS) == by_python.record(
            monkeypatch, [b"".join(objects)], KEYS)
        assert natively == [False]
    assert by_native.store.items == by_python.store.items


def test_the_run_items_are_read_from_their_bodies_and_refused_as_the_decoder_refuses() -> None:
    """The native run reads the stored bodies themselves (no core.Hit per stored hit): their agents and
    addresses join the run's; a body the decoder refuses raises its RunItemError; one it cannot take is left
    to the reference."""
    hits = NATIVE.run_hits([NATIVE.parse_log(line(record("open", DELIVERY, 1, ts=T0)), KEYS)], "full")
    assert hits is not None and hits.recipients() == [(DELIVERY, 1)]
    stored = core.Hit(hit_id(T0 - 100_000, 5), T0 - 100_000, "open", DELIVERY, 1, 1, CHROME, "203.0.113.0")
    body = run_items.encode(DELIVERY, [(stored, 0)])
    assert NATIVE.read_run_items(hits, [(DELIVERY, [body])])
    assert sorted(hits.user_agents()) == sorted({CHROME}) and sorted(hits.ips()) == ["203.0.113.0"]
    with pytest.raises(run_items.RunItemError, match="bad_version"):
        NATIVE.read_run_items(hits, [(DELIVERY, [b"\x02"])])
    assert not NATIVE.read_run_items(hits, [(DELIVERY, ["not bytes"])])  # Unsupported: the reference reads it


@settings(max_examples=200, deadline=None)
@given(item=_items, limit=st.integers(0, 600))
def test_a_body_is_split_as_the_reference_splits_it(item: tuple[list, list, list], limit: int) -> None:
    """workflow._in_parts splits a flooded shard's item with the native module: the same parts, or the same
    refusal (a part of one entry past the limit)."""
    hits, corrections, counters = item
    body = run_items.encode(DELIVERY, hits, _canonical(hits, corrections, counters)[1], counters)
    outcomes = []
    for backend in (NATIVE, PYTHON):
        try:
            outcomes.append(backend.split_run_item(DELIVERY, body, limit))
        except ValueError as error:  # a RunItemError is one: the reason and detail are in the message
            outcomes.append((type(error), str(error)))
    assert outcomes[0] == outcomes[1]


def test_a_body_the_decoder_refuses_is_not_split() -> None:
    for backend in (NATIVE, PYTHON):
        with pytest.raises(run_items.RunItemError, match="truncated"):
            backend.split_run_item(DELIVERY, b"\x01\x00\x01", 1)
