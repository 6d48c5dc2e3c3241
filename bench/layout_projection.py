"""What the workflow's DynamoDB writes would be in an append-only layout: a projection, not a measurement.

    .venv/bin/python -m bench.layout_projection

Issue 16 asks for at most 200 write units a 1,000 hits over 10 runs, and $1.65
a million hits. Today's layout writes each touched recipient's whole item
every run (bench/tracking_workflow.py measures it: about 920). The layout
this projects (README, "Cost") writes instead, per delivery and run:

- one **run item**: the run's new hits in a binary form (HIT_BYTES each,
  each new address once) and the run's counter deltas (COUNTER_BYTES per
  non-zero counter: an attribute code and a varint), appended once;
- the **counting state** of the recipients the run touched, packed into
  per-delivery shard items (a fixed number a delivery, from its audience:
  at about 80 bytes a recipient, over a shard's target size, SHARD_BYTES),
  each touched shard rewritten whole.
  A recipient's state (`state_bytes`) is what the indicators need from the
  hits before a run: flags, the last counted opens (the 1-minute rule),
  the URLs clicked, a fingerprint of every hit id (duplicates), a hash of
  every requester (persons_clicking), the clicks still inside the burst
  window (their verdicts may change), the send time;
- a **compaction** that folds a delivery's run items into pages once they
  are many (each hit rewritten once more, HIT_BYTES; the readers' cost),
  counted here once a delivery for the whole input when it had several runs;
- no recipient index on the tracking table: the delivery logs' own index
  already maps a recipient id to their (delivery, log id).

The hits, their duplicates and the counters are the real ones: the Python
core (`core.aggregate`, classification on) runs over the same standard input
and runs as `bench.tracking_workflow.measure_units`. Only the encodings'
sizes are assumptions (the constants below). The workflow's own state items
are not in it (`workflow/*` of write_units_by_kind: about 7 a 1,000 hits
over 10 runs, whatever the layout).
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

HIT_BYTES = 26  # 16-byte id, kind, URL, agent and address numbers, log id (3), verdict
COUNTER_BYTES = 6  # an attribute code (2) and a varint value (4)
ITEM_HEADER_BYTES = 100  # keys, run number, guard
RECIPIENT_BYTES = 80  # a recipient's stored hits, on average over a delivery's audience
SHARD_BYTES = (900, 3600)  # a shard's target size: one write unit a rewrite, or four (fewer shards)
STATE_FIXED_BYTES = 3 + 1 + 6  # log id, flags, send time
FINGERPRINT_BYTES = 4  # a hit id's fingerprint (a false duplicate 1 in 2**32 per stored hit)
REQUESTER_BYTES = 4
OPEN_TIME_BYTES = 6
SETTLING_CLICK_BYTES = 8  # ts, URL, verdict of a click still inside the burst window
BURST_WINDOW_MS = 10_000  # classify.Rules' default burst window



@dataclass
class Entry:
    """A recipient's part of a run: its new hits with their verdicts, and its stored hits whose verdict the run
    changed (hit id, new verdict)."""

    added: list[tuple[Any, int]]
    changed: list[tuple[str, int]]


def write_units(size: float) -> int:
    """DynamoDB's write request units for an item of `size` bytes (1 KB each, at least one)."""
    return max(1, math.ceil(size / 1024))


def read_units(size: float) -> float:
    """Strongly consistent read units for an item of `size` bytes (4 KB each, at least one)."""
    return float(max(1, math.ceil(size / 4096)))


def state_bytes(hits: Sequence[Any], verdicts: Sequence[int]) -> int:
    """The counting state of a recipient whose stored hits are `hits` (core.Hit, by (ts, hit_id)) with
    their `verdicts`."""
    from chalicelib.tracking.classify import is_human

    opens = [hit for hit in hits if hit.kind == "open"]
    human_opens = [hit for hit, verdict in zip(hits, verdicts, strict=True) if hit.kind == "open" and is_human(verdict)]
    clicks = [(hit, verdict) for hit, verdict in zip(hits, verdicts, strict=True) if hit.kind == "click"]
    urls = {hit.url_id for hit, _ in clicks}
    human_urls = {hit.url_id for hit, verdict in clicks if is_human(verdict)}
    requesters = {(hit.ua, hit.ip) for hit, _ in clicks}
    last_click = max((hit.ts for hit, _ in clicks), default=None)
    settling = sum(1 for hit, _ in clicks if last_click is not None and last_click - hit.ts <= BURST_WINDOW_MS)
    return (STATE_FIXED_BYTES + OPEN_TIME_BYTES * (bool(opens) + bool(human_opens)) + len(urls) + len(human_urls)
            + FINGERPRINT_BYTES * len(hits) + REQUESTER_BYTES * len(requesters)
            + SETTLING_CLICK_BYTES * settling)


@dataclass
class Projection:
    """Units of one spread of the input: writes by kind, reads, and the hits they are for."""

    hits: int = 0
    writes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    reads: float = 0.0

    def per_1000_hits(self) -> dict[str, float]:
        figures = {kind: 1000 * units / self.hits for kind, units in sorted(self.writes.items())}
        return {**figures, "total": sum(figures.values()), "reads": 1000 * self.reads / self.hits}


def project(lines: Sequence[bytes], runs: int, audiences: dict[str, int], keys: dict[int, bytes],
            shard_bytes: int = SHARD_BYTES[0], state: str = "shards") -> Projection:
    """The projected units of `lines` (the standard input's records) applied in `runs` time-ordered runs, with
    shards of about `shard_bytes` of counting state.

    `state`: "shards", each recipient's counting state written in state shards
    (fingerprints of hit ids, verdicts final once out of the burst window); or
    "read", no state written: run items are kept per state shard, and a run
    reads the touched shards' run items (every stored hit, its whole id and
    verdict) to rebuild its recipients' state exactly, appending the verdicts
    that changed to its own run item. "read" sizes its run items and pages with
    the run-item codec itself (chalicelib/tracking/run_items.py), not with
    assumed sizes.
    """
    if state not in ("shards", "read"):
        raise ValueError(f"state is shards or read, not {state!r}")
    from chalicelib.tracking import classify, core
    from chalicelib.tracking.workflow import stat_updates

    projection = Projection()
    prior: dict[tuple[str, int], list[Any]] = {}
    stored_verdicts: dict[str, int] = {}
    states: dict[str, dict[int, int]] = defaultdict(dict)  # delivery -> log id -> its state's bytes
    hit_bytes: dict[str, int] = defaultdict(int)  # "shards": by delivery
    runs_with_hits: dict[str, int] = defaultdict(int)
    pages: dict[tuple[str, int | None], ShardPage] = defaultdict(ShardPage)  # "read": by (delivery, shard)
    size = -(-len(lines) // runs)
    for run in range(runs):
        parsed = core.parse_log(b"".join(lines[run * size:(run + 1) * size]), keys)
        touched_hits = [*parsed.hits, *(hit for hits in prior.values() for hit in hits)]
        context = classify.context_for(touched_hits, classify.Rules(), {}, stored_verdicts)
        aggregates = core.aggregate(parsed.hits, prior, 10_000, context)
        fresh = core.fresh_by_recipient(parsed.hits, prior, {})
        counters: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
        for delivery_id, stat, deltas in stat_updates(aggregates.deliveries):
            counters[delivery_id] += [(stat, name, value) for name, value in deltas.items() if value]
        touched: dict[str, dict[int, Entry]] = defaultdict(dict)  # delivery -> log id -> its part of the run
        for update in aggregates.recipients:
            key = (update.delivery_id, update.log_id)
            verdicts = dict(zip((hit.hit_id for hit in update.hits), update.verdicts, strict=True))
            added = fresh[key]
            changed = [(hit.hit_id, verdict) for hit, verdict in zip(update.hits, update.verdicts, strict=True)
                       if stored_verdicts.get(hit.hit_id, verdict) != verdict]
            touched[update.delivery_id][update.log_id] = Entry([(hit, verdicts[hit.hit_id]) for hit in added],
                                                               changed)
            prior[key] = list(update.hits)
            stored_verdicts.update((hit.hit_id, verdict) for hit, verdict in zip(update.hits, update.verdicts,
                                                                                 strict=True))
            states[update.delivery_id][update.log_id] = state_bytes(update.hits, update.verdicts)
            projection.hits += len(added)
        for delivery_id in sorted(set(touched) | set(counters)):
            logs = touched[delivery_id]
            if state == "read":
                _append_by_shard(projection, delivery_id, logs, shard_bytes // RECIPIENT_BYTES, counters[delivery_id],
                                 pages)
                continue
            shards = _shards(audiences.get(delivery_id, len(logs)), shard_bytes)
            counter_bytes = COUNTER_BYTES * len(counters[delivery_id])
            body = _run_item_body(logs.values())  # the state shards hold the verdicts
            projection.writes["run_items"] += write_units(ITEM_HEADER_BYTES + body + counter_bytes)
            hit_bytes[delivery_id] += body
            runs_with_hits[delivery_id] += 1
            by_shard: dict[int, int] = defaultdict(int)
            for log_id, state_size in states[delivery_id].items():
                by_shard[_shard(log_id, shards)] += state_size
            for shard in {_shard(log_id, shards) for log_id in logs}:
                projection.writes["state_shards"] += write_units(ITEM_HEADER_BYTES + by_shard[shard])
                projection.reads += read_units(ITEM_HEADER_BYTES + by_shard[shard])
    for delivery_id, body in hit_bytes.items():  # "shards": a delivery's run items folded into one page
        if runs_with_hits[delivery_id] > 1:  # a lone run item is its own page: nothing to fold
            projection.writes["compaction"] += write_units(ITEM_HEADER_BYTES + body)
    for (delivery_id, _), page in pages.items():  # "read": a shard's run items folded into one page
        if page.items > 1:
            projection.writes["compaction"] += write_units(ITEM_HEADER_BYTES + len(page.body(delivery_id)))
    return projection


def _run_item_body(entries: Iterable[Entry]) -> int:
    """The bytes of a "shards" run item's recipients' part: their new hits (HIT_BYTES), each new address once."""
    entries = list(entries)
    return (HIT_BYTES * sum(len(entry.added) for entry in entries)
            + sum(len(ip) for ip in {hit.ip for entry in entries for hit, _ in entry.added}))


@dataclass
class ShardPage:
    """A shard's stored run items in the "read" state: their bytes, and what a compaction folds them into."""

    items: int = 0
    stored_bytes: int = 0
    hits: dict[str, tuple[Any, int]] = field(default_factory=dict)  # hit id -> (hit, latest verdict)
    counters: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))

    def add(self, projection: Projection, body: bytes) -> None:
        """A run item of `body` written to this shard."""
        size = ITEM_HEADER_BYTES + len(body)
        projection.writes["run_items"] += write_units(size)
        self.items += 1
        self.stored_bytes += size

    def body(self, delivery_id: str) -> bytes:
        """The compacted page: every hit once with its final verdict, the summed counters (run-item codec)."""
        from chalicelib.tracking import run_items

        return run_items.encode(delivery_id, self.hits.values(), (),
                                [(stat, name, value) for (stat, name), value in self.counters.items()])


def _append_by_shard(projection: Projection, delivery_id: str, logs: dict[int, Entry], recipients_per_shard: int,
                     counters: list[tuple[str, str, int]], pages: dict[tuple[str, int | None], ShardPage]) -> None:
    """One delivery's run in project's "read" state: per shard (`recipients_per_shard` consecutive log ids, as
    chalicelib/data/run_items.py shards them) it touches, the read of its stored run items (strongly
    consistent, one query) and the write of its new one; then the run item of its counter deltas, in the
    delivery's counters partition (shard None). Each encoded by the run-item codec (docs/spec/run-items.md)."""
    from chalicelib.tracking import run_items

    by_shard: dict[int, list[Entry]] = defaultdict(list)
    for log_id, entry in logs.items():
        by_shard[log_id // recipients_per_shard].append(entry)
    for shard in sorted(by_shard):
        entries = by_shard[shard]
        added = [hit for entry in entries for hit in entry.added]
        changed = [change for entry in entries for change in entry.changed]
        page = pages[(delivery_id, shard)]
        if page.stored_bytes:
            projection.reads += read_units(page.stored_bytes)
        page.add(projection, run_items.encode(delivery_id, added, changed))
        page.hits.update((hit.hit_id, (hit, verdict)) for hit, verdict in added)
        page.hits.update((hit_id, (page.hits[hit_id][0], verdict)) for hit_id, verdict in changed)
    if counters:
        totals = pages[(delivery_id, None)]
        totals.add(projection, run_items.encode(delivery_id, (), (), counters))
        for stat, name, value in counters:
            totals.counters[(stat, name)] += value


def _shards(audience: int, shard_bytes: int) -> int:
    """A delivery's state shards: its audience at about RECIPIENT_BYTES a recipient, `shard_bytes` a shard."""
    return max(1, math.ceil(RECIPIENT_BYTES * audience / shard_bytes))


def _shard(log_id: int, shards: int) -> int:
    return zlib.crc32(str(log_id).encode()) % shards


def main(spreads: Iterable[int] = (1, 10)) -> None:
    from bench.inputs import KEYRING, delivery_audiences, standard_input
    from bench.tracking_workflow import WORKFLOW_AUDIENCE, WORKFLOW_HITS

    sample = standard_input(WORKFLOW_HITS, audience=WORKFLOW_AUDIENCE)
    with gzip.open(sample.path, "rb") as stream:
        lines = stream.readlines()
    audiences = delivery_audiences(audience=WORKFLOW_AUDIENCE)
    for state in ("shards", "read"):
        for shard_bytes in SHARD_BYTES:
            for runs in spreads:
                figures = project(lines, runs, audiences, KEYRING, shard_bytes, state).per_1000_hits()
                print(f"layout_projection state={state} runs={runs} shard_bytes={shard_bytes} " + " ".join(
                    f"{name}_per_1000_hits={value:.0f}" for name, value in figures.items()))


if __name__ == "__main__":
    main()
