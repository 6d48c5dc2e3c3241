"""A workflow run's compute, native and Python: the same run record from the same objects and stored state.

TrackingWorkflow._compute from parsed objects to the run record (recipient
items, counter and domain deltas, log pages, quarantine, statistics) with
SENDTRAIL_NATIVE on (sendtrail_native.RunHits: IPs minimised, items, domain
deltas and log pages encoded natively) and off (the Python reference), on
the standard input's first lines, in two runs where the second reads what
the first stored (bounded so that hits are evicted into summaries), on the
shared aggregation vectors (tests/vectors/aggregate.json) with their stored
hits and summaries, and on hand-made hits that exercise IPv6 addresses,
declared purposes, non-hit-path ids and known recipients.
"""

from __future__ import annotations

import gc
import io
import ipaddress
import itertools
import json
import os
import random
from pathlib import Path
from typing import Any, Iterator

import pytest
import sendtrail_native

from bench.inputs import KEYRING, KEYRING_JSON, generate_lines
from chalicelib import native
from chalicelib.data import item_json
from chalicelib.tracking import core
from chalicelib.tracking.items import decode_summary, encode_recipient
from chalicelib.tracking.workflow import Limits, TrackingWorkflow
from infra.local_runtime import environment
from tests.tracking_logs import KEYS, line, record

if os.environ.get("REQUIRE_NATIVE_MODULE") != "1":  # make test requires it; elsewhere, skip where never built
    pytest.importorskip("sendtrail_native", reason="sendtrail_native is not built; `make native` builds it")

NATIVE = native.select("on")
PYTHON = native.select("off")
NOW_MS = 1_740_830_000_000
VECTORS = Path(__file__).parents[1] / "vectors" / "aggregate.json"
TABLES = ("hit_stream", "deliveries_table", "delivery_logs_table", "addresses_table", "redirection_log_bucket",
          "tracking_table", "tracking_stats_table", "tracking_runs_table", "workflow_table", "send_queue_url")


class _Stored:
    """The tracking items a run reads (what earlier runs stored), from memory."""

    def __init__(self, items: dict[tuple[str, int], dict[str, Any]]) -> None:
        self.items = items

    def get_recipients(self, keys: Any) -> dict[tuple[str, int], dict[str, Any]]:
        return {key: self.items[key] for key in keys if key in self.items}


class _Workflow(TrackingWorkflow):
    facts: dict[tuple[str, int], dict[str, Any]] = {}

    def _delivery_log_facts(self, touched: Any, stored: Any) -> dict[tuple[str, int], dict[str, Any]]:
        return {key: value for key, value in self.facts.items() if key in touched}


@pytest.fixture
def configure() -> Iterator[Any]:
    """Settings for a run (the IP mode given), the backend chosen per call."""
    saved = dict(os.environ)

    def settings(ip_mode: str) -> Any:
        from chalicelib.settings import get_settings

        environment.apply({**environment.fake_aws(), "SENDTRAIL_SIGNING_KEYS": KEYRING_JSON,
                           "SENDTRAIL_IP_ADDRESS_MODE": ip_mode, "SENDTRAIL_TRACKING_LAYOUT": "items",
                           **{f"SENDTRAIL_{name.upper()}": f"test-{name}" for name in TABLES}})
        environment.forget_cached_configuration()
        return get_settings()

    yield settings
    os.environ.clear()
    os.environ.update(saved)
    environment.forget_cached_configuration()


def run_record(monkeypatch: pytest.MonkeyPatch, backend: native.Backend, settings: Any, objects: list[bytes],
               keys: dict[int, bytes], stored: dict[tuple[str, int], dict[str, Any]] | None = None,
               facts: dict[tuple[str, int], dict[str, Any]] | None = None, first: int = 100, last: int = 100,
               run: int = 1) -> dict[str, Any]:
    with monkeypatch.context() as patch:
        patch.setattr(native, "backend", lambda: backend)
        return _compute(backend, settings, objects, keys, stored or {}, facts or {}, first, last, run)


def _compute(backend: native.Backend, settings: Any, objects: list[bytes], keys: dict[int, bytes],
             stored: dict[tuple[str, int], dict[str, Any]], facts: dict[tuple[str, int], dict[str, Any]],
             first: int, last: int, run: int) -> dict[str, Any]:
    workflow = _Workflow(settings, Limits(first_hits_per_recipient=first, last_hits_per_recipient=last,
                                          write_concurrency=1),
                         logs=object(), tracking=_Stored(stored), state=object())  # type: ignore[arg-type]
    workflow.facts = facts
    parsed = [("2025/03/01/10", f"logs/2025/03/01/10/object-{index}", backend.parse_log(data, keys))
              for index, data in enumerate(objects)]
    return workflow._compute(run, "owner", NOW_MS, parsed, "2025/03/01/10", backlog=False)  # noqa: SLF001


def both(monkeypatch: pytest.MonkeyPatch, *arguments: Any, **keywords: Any) -> dict[str, Any]:
    """The run record by both backends, asserted equal (and the native one made natively)."""
    computed = []
    original = native.Backend.compute_run

    def counted(self: native.Backend, *given: Any) -> Any:
        result = original(self, *given)
        computed.append(result is not None)
        return result

    with monkeypatch.context() as patch:
        patch.setattr(native.Backend, "compute_run", counted)
        by_native = run_record(monkeypatch, NATIVE, *arguments, **keywords)
    by_python = run_record(monkeypatch, PYTHON, *arguments, **keywords)
    assert computed == [True], "the native backend computed in Python"
    assert item_json.dumps(by_native) == item_json.dumps(by_python)  # the very bytes the run record is
    assert by_native == by_python
    return by_native


def standard_objects(lines: int, per_object: int) -> list[bytes]:
    taken = list(itertools.islice(generate_lines(1_000_000), lines))
    return [b"".join(taken[start:start + per_object]) for start in range(0, lines, per_object)]


def stored_items(record: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(item["delivery_id"], item["log_id"]): item for item in record["recipients"].values()}


@pytest.mark.parametrize("ip_mode", ["truncated", "full", "none"])
def test_the_standard_input_gives_the_same_record(monkeypatch: pytest.MonkeyPatch, configure: Any,
                                                  ip_mode: str) -> None:
    result = both(monkeypatch, configure(ip_mode), standard_objects(3_000, 1_000), KEYRING)
    assert result["statistics"]["hits_accepted"] > 2_000 and result["log_pages"] and result["stats"]


def test_the_native_items_are_read_in_place_and_read_only(monkeypatch: pytest.MonkeyPatch, configure: Any) -> None:
    """The items and pages come as views of the native text (no copy), which outlives the computing RunHits,
    and nothing can write through them."""
    record = run_record(monkeypatch, NATIVE, configure("truncated"), standard_objects(300, 100), KEYRING)
    gc.collect()  # the RunHits is gone; the views keep the text alive
    for name in ("recipients", "log_pages"):
        text = record[name].text
        assert isinstance(text, memoryview) and text.readonly and text.format == "B" and text.ndim == 1
        assert isinstance(text.obj, sendtrail_native.EncodedText) and len(text.obj) == text.nbytes
        assert bytes(text[:1]) == b"[" and bytes(text[-1:]) == b"]"
        assert json.loads(bytes(text)) == record[name].items() and len(record[name].items()) == len(record[name])
        with pytest.raises(TypeError):
            text[0] = 0
        with pytest.raises(TypeError, match="read-write"):  # the writable buffer readinto asks for is refused
            io.BytesIO(b"x").readinto(text.obj)
    assert all(isinstance(item, bytes) for item in record["recipients"].texts())


def test_a_second_run_over_stored_hits_and_summaries_gives_the_same_record(
        monkeypatch: pytest.MonkeyPatch, configure: Any) -> None:
    settings = configure("truncated")
    objects = standard_objects(6_000, 1_500)
    first = both(monkeypatch, settings, objects[:2], KEYRING, first=1, last=2)
    stored = stored_items(first)
    assert any("evicted" in item for item in stored.values())
    some = sorted(stored)[::3]
    # Two recipients share each recipient id (a profile targeted twice): a log page lists each id once.
    facts = {key: {"recipient_id": f"r{index // 2}", "sent_at": NOW_MS - 86_400_000 + index,
                   "domain": ["example.com", "example.org"][index % 2]} for index, key in enumerate(some)}
    second = both(monkeypatch, settings, objects[1:], KEYRING, stored=stored, facts=facts, first=1, last=2, run=2)
    assert second["statistics"]["duplicates"] >= 1_500
    assert any(item.get("recipient_id") for item in second["recipients"].values())


def _vector_record(hit: dict[str, Any]) -> bytes:
    return line(record(hit["kind"], hit["delivery_id"], hit["log_id"], hit["url_id"], hit["ts"], hit["ua"],
                       hit["ip"], the_hit_id=hit["hit_id"],
                       **({"purpose": hit["purpose"]} if hit.get("purpose") else {})))


@pytest.mark.parametrize("case", json.loads(VECTORS.read_text())["cases"], ids=lambda case: case["name"][:40])
def test_the_aggregation_vectors_give_the_same_record(monkeypatch: pytest.MonkeyPatch, configure: Any,
                                                      case: dict[str, Any]) -> None:
    stored = {}
    for prior in case["prior"]:
        hits = [core.Hit(**{**hit, "purpose": hit.get("purpose", "")}) for hit in prior["hits"]]
        summary = decode_summary({"evicted": prior["summary"]}) if prior["summary"] else None
        stored[(prior["delivery_id"], prior["log_id"])] = encode_recipient(
            prior["delivery_id"], prior["log_id"], hits, None, NOW_MS, 30, summary=summary)
    bound = case["max_hits_per_recipient"]
    first = case["first_hits_per_recipient"]
    first = bound // 2 if first is None else first
    both(monkeypatch, configure("full"), [b"".join(_vector_record(hit) for hit in case["new_hits"])], KEYS,
         stored=stored, first=first, last=bound - first)


def test_ipv6_purposes_odd_ids_and_known_recipients_give_the_same_record(
        monkeypatch: pytest.MonkeyPatch, configure: Any) -> None:
    delivery = "00112233445566ff"
    ts = 1_740_826_800_000
    records = [
        record("open", delivery, 1, ts=ts, ip="2001:db8:85a3:8d3:1319:8a2e:370:7348"),
        record("open", delivery, 1, ts=ts + 70_000, ip="2001:DB8:85A3::1", purpose="prefetch"),
        record("click", delivery, 1, ts=ts + 80_000, ip="::ffff:203.0.113.9", the_hit_id="f" * 32),
        record("click", delivery, 2, ts=ts + 1_000, ip="203.0.113.200", ua="python-requests/2.32.3"),
        record("optout", delivery, 2, ts=ts + 2_000, ip="fe80::1%eth0"),
        record("mirror", delivery, 3, ts=ts + 3_000, ip="not an address"),
        record("click", "0a0b0c0d0e0f1011", 7, ts=ts + 4_000, ip="10.0.0", ua="Mozilla/5.0"),
        record("open", "0a0b0c0d0e0f1011", 7, ts=ts - 400_000, ip=""),
        record("open", "0a0b0c0d0e0f1011", 8, ts=ts, ip="17.58.100.0"),  # Apple's range
        record("click", "0a0b0c0d0e0f1011", 8, ts=ts + 90_000, ip="40.92.3.0"),  # a scanner's
        record("click", "0a0b0c0d0e0f1011", 8, ts=ts + 95_000, ip="040.92.3.0"),  # not a dotted quad inet_pton reads
        # A scanner's IPv6 range, in canonical text (looked up natively) and spelled otherwise (by the reference).
        record("click", "0a0b0c0d0e0f1011", 9, ts=ts + 96_000, ip="2a01:111:f400::7"),
        record("click", "0a0b0c0d0e0f1011", 10, ts=ts + 97_000, ip="2A01:0111:F403:0:0:0:0:9"),
        record("click", "0a0b0c0d0e0f1011", 11, ts=ts + 98_000, ip="2a01:111:f402::1"),
    ]
    facts = {(delivery, 1): {"recipient_id": "alice", "sent_at": ts - 1_000, "domain": "example.com"},
             (delivery, 2): {"recipient_id": "", "sent_at": ts - 500}}
    for ip_mode in ("truncated", "full", "none"):
        result = both(monkeypatch, configure(ip_mode), [b"".join(line(value) for value in records)], KEYS,
                      facts=facts)
        assert len(result["recipients"]) == 8
        machine = {stat["stat"]: stat["add"] for stat in result["stats"] if stat["delivery_id"] == "0a0b0c0d0e0f1011"}
        if ip_mode != "none":
            assert machine["indicators"].get("machine_apple_proxy")
            assert machine["indicators"].get("machine_scanner_address") == 3  # 40.92.3.0, f400::7 and f403::9


def _ipv6_spellings(count: int) -> list[str]:
    """IPv6 addresses as clients and proxies write them: compressed or not, any case, zero-padded, with
    runs of zero hextets; and text that is not one address (the reference gives "")."""
    rng = random.Random(48)
    spellings = ["::", "::1", "1::", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "0:0:1::", "1::2::3", "12345::", ":1::",
                 "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::", "1:2", ":::", "::ffff:203.0.113.9", "fe80::1%eth0",
                 "2001:db8::/64", "0000:0000:0000:0000:0000:0000:0000:0001"]
    while len(spellings) < count:
        hextets = [rng.choice([0, 0, rng.randrange(1 << 16), rng.randrange(16)]) for _ in range(8)]
        address = ipaddress.IPv6Address(b"".join(value.to_bytes(2, "big") for value in hextets))
        text = rng.choice([address.compressed, address.exploded, ":".join(f"{value:x}" for value in hextets)])
        spellings.append(text.upper() if rng.random() < 0.3 else text)
    return spellings


def test_ipv6_addresses_are_truncated_as_the_reference_does(monkeypatch: pytest.MonkeyPatch, configure: Any) -> None:
    ts = 1_740_826_800_000
    records = [record("open", "00112233445566ff", index, ts=ts + index, ip=ip)
               for index, ip in enumerate(_ipv6_spellings(400))]
    result = both(monkeypatch, configure("truncated"), [b"".join(line(value) for value in records)], KEYS)
    ips = {ip for item in result["recipients"].values() for ip in item["ips"]}
    assert "" in ips and "::" in ips and len(ips) > 100


def test_stored_hits_the_native_side_does_not_represent_are_computed_by_the_reference(
        monkeypatch: pytest.MonkeyPatch, configure: Any) -> None:
    delivery = "00112233445566ff"
    ts = 1_740_826_800_000
    odd = core.Hit("h" * 32, ts - 5_000, "bounce", delivery, 1, 1, "ua", "203.0.113.0")
    stored = {(delivery, 1): encode_recipient(delivery, 1, [odd], "alice", NOW_MS, 30)}
    objects = [line(record("open", delivery, 1, ts=ts))]
    calls: list[Any] = []
    original = native.Backend.compute_run

    def counted(self: native.Backend, *given: Any) -> Any:
        result = original(self, *given)
        calls.append(result)
        return result

    with monkeypatch.context() as patch:
        patch.setattr(native.Backend, "compute_run", counted)
        by_native = run_record(monkeypatch, NATIVE, configure("truncated"), objects, KEYS, stored=stored)
    by_python = run_record(monkeypatch, PYTHON, configure("truncated"), objects, KEYS, stored=stored)
    assert calls == [None]  # the native module declined; the reference computed the record
    assert by_native == by_python and by_native["statistics"]["hits_accepted"] == 1
