"""The shared test vectors (tests/vectors/, docs/spec/tracking-core.md): the reference and the native backend.

The crate runs the same files in `cargo test` (native/src/vectors.rs).
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest

from chalicelib import native
from chalicelib.tracking import core, run_items
from chalicelib.tracking.items import decode_summary, encode_summary
from tests.vectors import __main__ as vectors

PARSE = json.loads((vectors.HERE / "parse_log.json").read_text(encoding="utf-8"))
AGGREGATE = json.loads((vectors.HERE / "aggregate.json").read_text(encoding="utf-8"))
RUN_ITEMS = json.loads((vectors.HERE / "run_items.json").read_text(encoding="utf-8"))
KEYS = {int(key_id): bytes.fromhex(secret) for key_id, secret in PARSE["keys"].items()}
BACKENDS = [native.select("off")]
if os.environ.get("REQUIRE_NATIVE_MODULE") == "1" or native.select("auto").is_native:
    BACKENDS.append(native.select("on"))


def _data(case: dict[str, Any]) -> bytes:
    return case["data"].encode("utf-8") if "data" in case else base64.b64decode(case["data_base64"])


def _hit(value: dict[str, Any]) -> core.Hit:
    return core.Hit(**value)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
@pytest.mark.parametrize("case", PARSE["cases"], ids=lambda case: case["name"])
def test_parse_log_vectors(case: dict[str, Any], backend: native.Backend) -> None:
    parsed = backend.parse_log(_data(case), KEYS)
    expected = case["expected"]
    assert (parsed.lines, parsed.rejected, parsed.duplicates) == (expected["lines"], expected["rejected"],
                                                                  expected["duplicates"])
    assert list(parsed.hits) == [_hit(hit) for hit in expected["hits"]]
    assert [(r.line, r.reason, r.field, base64.b64encode(r.data).decode("ascii")) for r in parsed.rejections] == [
        (r["line"], r["reason"], r["field"], r["data_base64"]) for r in expected["rejections"]]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
@pytest.mark.parametrize("case", AGGREGATE["cases"], ids=lambda case: case["name"])
def test_aggregate_vectors(case: dict[str, Any], backend: native.Backend) -> None:
    prior = {(entry["delivery_id"], entry["log_id"]): tuple(_hit(hit) for hit in entry["hits"])
             for entry in case["prior"]}
    summaries = {(entry["delivery_id"], entry["log_id"]): decode_summary({"evicted": entry["summary"]})
                 for entry in case["prior"] if entry["summary"]}
    result = backend.aggregate([_hit(hit) for hit in case["new_hits"]], prior, case["max_hits_per_recipient"], None,
                               summaries, case["first_hits_per_recipient"])  # type: ignore[arg-type]
    expected = case["expected"]
    assert (result.duplicates, result.over_limit) == (expected["duplicates"], expected["over_limit"])
    assert [{"delivery_id": u.delivery_id, "log_id": u.log_id, "hits": [hit.hit_id for hit in u.hits],
             "added": u.added, "over_limit": u.over_limit, "verdicts": list(u.verdicts),
             "summary": None if u.summary is None else encode_summary(u.summary)}
            for u in result.recipients] == expected["recipients"]
    assert [{"delivery_id": d.delivery_id, "indicators": d.indicators, "urls": vectors._keyed(d.urls),
             "buckets": vectors._keyed(d.buckets), "user_agents": vectors._keyed(d.user_agents)}
            for d in result.deliveries] == expected["deliveries"]


def _run_item_inputs(case: dict[str, Any]) -> tuple[list[tuple[core.Hit, int]], list[tuple[str, int]],
                                                    list[tuple[str, str, int]]]:
    hits = [(_hit({name: value for name, value in hit.items() if name != "verdict"}), hit["verdict"])
            for hit in case["hits"]]
    return (hits, [(entry["hit_id"], entry["verdict"]) for entry in case["corrections"]],
            [(entry["stat"], entry["field"], entry["delta"]) for entry in case["counters"]])


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
@pytest.mark.parametrize("case", RUN_ITEMS["cases"], ids=lambda case: case["name"])
def test_run_item_vectors(case: dict[str, Any], backend: native.Backend) -> None:
    delivery_id = RUN_ITEMS["delivery_id"]
    if "error" in case:
        with pytest.raises(run_items.RunItemError) as refused:
            backend.decode_run_item(delivery_id, bytes.fromhex(case["body"]))
        assert refused.value.reason == case["error"]
        return
    hits, corrections, counters = _run_item_inputs(case)
    if "encode_error" in case:
        with pytest.raises(run_items.RunItemError) as refused:
            backend.encode_run_item(delivery_id, hits, corrections, counters)
        assert refused.value.reason == case["encode_error"]
        return
    body = bytes.fromhex(case["body"])
    assert backend.encode_run_item(delivery_id, hits, corrections, counters) == body
    decoded = backend.decode_run_item(delivery_id, body)
    assert decoded.hits == tuple(sorted(hits, key=lambda entry: (entry[0].log_id, entry[0].ts, entry[0].hit_id)))
    assert decoded.corrections == tuple(sorted(corrections))
    assert decoded.counters == tuple(sorted(counter for counter in counters if counter[2]))


@pytest.mark.parametrize("name", sorted(vectors.FILES))
def test_the_vector_files_are_what_the_reference_gives(name: str) -> None:
    """A change to the contract shows as a change to the vectors (`python -m tests.vectors`, then review)."""
    assert (vectors.HERE / name).read_text(encoding="utf-8") == vectors.render(vectors.FILES[name]())
