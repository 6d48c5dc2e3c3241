"""The append-only layout's projection (bench/layout_projection.py): its state sizes and unit sums by hand."""

from __future__ import annotations

import pytest

from bench import layout_projection as projection
from bench.inputs import KEYRING, delivery_audiences, generate_lines
from chalicelib.tracking import classify
from chalicelib.tracking.core import Hit

MACHINE = classify.BIT["scanner_agent"]


def _hit(hit_id: str, ts: int, kind: str, url_id: int, ua: str = "Mail/1") -> Hit:
    return Hit(hit_id, ts, kind, "d" * 16, 7, url_id, ua, "203.0.113.0")


def test_a_state_holds_flags_open_times_urls_fingerprints_requesters_and_settling_clicks() -> None:
    hits = [_hit("a", 1_000, "open", 1), _hit("b", 2_000, "click", 4), _hit("c", 5_000, "click", 5, ua="Bot/2"),
            _hit("d", 9_000, "open", 1)]
    verdicts = [0, 0, MACHINE, MACHINE]
    # 10 fixed; two open times (all, human); URLs 4 and 5 clicked, 4 by a person; four fingerprints; two
    # requesters (two agents); both clicks within the 10 s burst window of the last one.
    assert projection.state_bytes(hits, verdicts) == 10 + 2 * 6 + 2 + 1 + 4 * 4 + 2 * 4 + 2 * 8
    assert projection.state_bytes(hits[:1], [MACHINE]) == 10 + 6 + 4  # no human open: one open time


def test_units_round_up_per_item() -> None:
    assert [projection.write_units(size) for size in (0, 1, 1024, 1025, 3600)] == [1, 1, 1, 2, 4]
    assert [projection.read_units(size) for size in (1, 4096, 4097)] == [1.0, 1.0, 2.0]


def test_every_distinct_hit_is_projected_once_however_the_runs_split_it() -> None:
    lines = list(generate_lines(400, audience=0.004))
    audiences = delivery_audiences(audience=0.004)
    one, four = (projection.project(lines, runs, audiences, KEYRING) for runs in (1, 4))
    distinct = len({line.split(b'"hit_id":"')[1][:32] for line in lines})
    assert distinct < len(lines)  # the input repeats some records, as Kinesis and Firehose do
    assert one.hits == four.hits == distinct
    assert "compaction" not in one.writes and four.writes["compaction"] > 0  # one run item a delivery: no fold
    assert four.writes["run_items"] > one.writes["run_items"]
    figures = four.per_1000_hits()
    assert figures["total"] == sum(value for name, value in figures.items() if name not in ("total", "reads"))


def test_rebuilding_the_state_by_reads_writes_no_state_and_reads_only_what_earlier_runs_stored() -> None:
    lines = list(generate_lines(400, audience=0.004))
    audiences = delivery_audiences(audience=0.004)
    one, four = (projection.project(lines, runs, audiences, KEYRING, state="read") for runs in (1, 4))
    shards = projection.project(lines, 4, audiences, KEYRING)
    assert one.hits == four.hits == shards.hits
    assert "state_shards" not in four.writes and shards.writes["state_shards"] > 0
    assert one.reads == 0 < four.reads  # a first run has nothing stored to read
    assert four.writes["run_items"] >= shards.writes["run_items"]  # kept per shard: more, smaller run items
    figures = four.per_1000_hits()
    assert figures["total"] == sum(value for name, value in figures.items() if name not in ("total", "reads"))


def test_a_state_kind_it_does_not_know_is_refused() -> None:
    with pytest.raises(ValueError, match="shards or read"):
        projection.project([], 1, {}, KEYRING, state="rows")


def test_a_compacted_page_holds_each_hit_once_with_its_latest_verdict_and_the_summed_counters() -> None:
    from chalicelib.tracking import run_items

    first = Hit("0" * 31 + "1", 1_000, "click", "d" * 16, 7, 4, "Mail/1", "203.0.113.0")
    second = Hit("0" * 31 + "2", 2_000, "open", "d" * 16, 8, 1, "Mail/1", "203.0.113.0")
    page = projection.ShardPage(items=2, hits={first.hit_id: (first, 0), second.hit_id: (second, MACHINE)})
    page.counters[("indicators", "clicks_total")] += 1
    page.counters[("indicators", "clicks_total")] += 2
    page.counters[("indicators", "opens_total")] += 0
    decoded = run_items.decode("d" * 16, page.body("d" * 16))
    assert decoded.hits == ((first, 0), (second, MACHINE))
    assert decoded.counters == (("indicators", "clicks_total", 3),)


def test_the_larger_shards_are_the_ones_the_workflow_writes() -> None:
    from chalicelib.data.run_items import RECIPIENTS_PER_SHARD

    assert max(projection.SHARD_BYTES) // projection.RECIPIENT_BYTES == RECIPIENTS_PER_SHARD
