"""The tracking workflow: every new redirection log into the tracking tables, exactly once.

Campaign's `tracking` workflow, serverless: a scheduled Lambda (every minute;
every few seconds on the local stack) reads the redirection logs Firehose
wrote since its listing position and turns their hits into tracking tables and
indicators. A run, step by step (each write numbered as the crash tests
number them):

 1. Lease. A conditional write on the state item (owner + expiry, longer
    than the Lambda's timeout) [write: acquire]. Another run holding it means
    this one answers "busy" at once; overlapping runs never both apply.
 2. Resume. If the state names a pending run, its write-ahead record is read
    from S3 and applied (steps 6-9): a crashed run is completed, never
    recomputed.
 3. List. New log objects are listed from the cursor (StartAfter the last
    key a run finished with), so what earlier runs went past is never
    listed again, however much of it there is; late objects (behind the
    cursor: Firehose retries, other writers in the same hour) are found by
    a sweep of the lookback window that resumes where it stopped a few
    pages a run. Objects already processed (the processed-object markers,
    a key-range Query per listed page and hour) are skipped; at most
    `max_objects` are taken, and objects are read until `max_seconds`
    (x 0.6) or `max_hits` is reached. The rest is a backlog for the next
    runs, counted (and its oldest object's age is the lag).
 4. Compute, in memory, for the whole run: the pure core (core.py) parses
    and verifies every object; the touched recipients' stored tracking items
    are read (strongly consistent BatchGetItem); core.aggregate merges the
    run's hits into them (dropping repeated hit ids, applying the 1-minute
    rule over each recipient's whole history) and gives each delivery's
    counter deltas; user agents are classified once each. With the native
    layer, the run's hits stay native from the parse to the items written
    (IPs minimised, recipient items, domain deltas and log pages encoded by
    sendtrail_native.RunHits, the items and pages as DynamoDB JSON:
    data/item_json.py); Python reads the stored state, classifies
    the distinct agents and addresses and sums the user-agent families.
    The Python path (`_writes`) is the reference and writes the same record
    (tests/unit/test_native_run.py).
 5. Write ahead. The run record (objects, new recipient items, stat deltas,
    quarantined lines, listing position, statistics) is put to S3 [write], its
    items and log pages as PutItem takes them (`items_encoding`; a record an
    older version wrote holds plain values, converted when applied), then
    registered as the state's pending run under the next run number, on
    condition that this run still holds the lease [write: register].
 6. Recipients: one PutItem per touched recipient, the whole new item,
    on condition `last_run < run` [writes].
 7. Stats: the deltas (per counter: indicators, each URL, 5-minute
    bucket and user-agent family) ADDed to a few grouped items a delivery
    (data/counters.py: the tally, its URL and family shards, one item per
    hour of buckets) and to each recipient domain's item, one UpdateItem
    per item, on condition `last_run < run` [writes]. The record names its
    counter layout; a record an older version wrote is applied one item per
    counter, as that version may have begun it. A family shard at its
    cap (counters.FAMILY_SHARD_CAP; hostile user agents: ua-parser's
    families are open-ended) refuses a write bringing new families, and
    returns its attribute names [refused write]: the new families go to
    <shard>~x folded into "Other" [write], then the shard takes the run
    with the families it holds [write]. One DynamoDB refuses because it
    would pass 400 KB (the backstop) overflows all it was to take the
    same way. Replayed, the shard is refused again and the same guarded
    items are written once (_apply_stat, counters.overflow; metric
    FamiliesOverflowed). Then the run's new hits as
    log pages per kind and window (log_pages.py, for the delivery's
    Tracking tab), same guard [writes].
 8. Quarantine copies of rejected lines [S3 writes]; processed-object
    markers [BatchWriteItem].
 9. Finish: clear the pending run, advance the listing position (last) and
    release the lease [write].

The append layout (settings.tracking_layout = "append", the default;
docs/design/append-only-tracking.md) replaces steps 4, 6 and 7: a run reads
the run items of the delivery shards it touches (strongly consistent Query
per shard, chalicelib/data/run_items.py), aggregates its hits over every hit
stored there with no bound, and writes one run item per touched (delivery,
shard) [writes]: the new hits and the stored verdicts that changed, and one
per touched delivery with its counter deltas (docs/spec/run-items.md).
Each is a PutItem on condition that the (shard, seq) item does not exist,
so a replayed record writes nothing twice. It writes no recipient item,
counter item or log page; the reports read run items (data/tracking.py). With
the native layer its compute is native too, from the objects' bytes and the
stored bodies to the bodies it writes (RunHits.read_run_items and
compute_appended); Python reads the shards, classifies the distinct agents
and addresses, sums the user-agent families and encodes each delivery's
counters body. The Python path (`_appended_writes`) is the reference and
writes the same record (tests/unit/test_native_append.py).

Why this is exactly once: every tracking-table write carries the run number
and is refused by an item that already took that run or a later one, so
re-applying a record (after a crash anywhere in 6-9, a Lambda retry, or a
stalled run waking up after its lease expired) changes nothing twice and
can never overwrite newer data. A run's numbers are fixed before its first
tracking write (step 5), and a run is only computed when no run is pending,
from state that the previous runs finished writing. Unique counts stay
exact because they are deltas of each recipient's contribution computed
against that recipient's stored hits. Duplicated records (Kinesis and
Firehose deliver at least once; a hit can reach both Kinesis and the
fallback object) are dropped by hit id, in the core, across objects and runs.

Writes grow with the distinct keys a run touches (recipients, a few
counter items a delivery, recipient domains, objects / 25), not with the
number of hits.

Every run says how it went, for the alarms and the status check: the write
that releases the lease records the outcome on the state item (last run,
last success, lag, last error), and the invocation's metrics count it
(WorkflowRuns, WorkflowSuccesses, WorkflowLagSeconds: the age of the oldest
log object the run saw and left unprocessed, 0 when it left none;
LinesProcessed; HitsTracked, the run's new hits, which the hit path does not
count itself; MalformedLines by reason).
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import json
import logging
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Collection, Iterable, Mapping, Sequence

from chalicelib import metrics, native
from chalicelib.data import counters, item_json
from chalicelib.data.domain_stats import TRACKED, UNKNOWN_DOMAIN, domain_stat
from chalicelib.data.dynamo import to_item
from chalicelib.data.item_json import EncodedItems
from chalicelib.data.redirection_logs import LOG_PREFIX, RedirectionLogStore, hour_partition, object_hour
from chalicelib.data.run_items import MAX_BODY_BYTES, RECIPIENTS_PER_SHARD, RunItemStore, shard_of
from chalicelib.data.tracking import (
    INDICATORS,
    FamiliesFull,
    ItemTooLarge,
    TrackingStore,
    WorkflowStateStore,
    bucket_stat,
    delivery_audiences,
    delivery_log_facts,
    ua_stat,
    url_stat,
)
from chalicelib.hits.records import minimise_ip
from chalicelib.settings import Settings, get_settings
from chalicelib.tracking import classify as classification
from chalicelib.tracking import core, log_pages, run_items
from chalicelib.tracking.items import DAY_SECONDS, decode_hits, decode_summary, decode_verdicts, encode_recipient
from chalicelib.tracking.useragents import DIMENSIONS, classify

logger = logging.getLogger("sendtrail.tracking.workflow")
NOTHING_EVICTED = core.Summary()  # a recipient with no evicted hits (made once: it holds a 4 KiB filter)
_CURSOR_HOUR = re.compile(r"^" + re.escape(LOG_PREFIX) + r"(\d{4}/\d{2}/\d{2}/\d{2})")
HOUR_MS = 3_600_000
READ_SHARE_OF_BUDGET = 0.6
LIST_PAGE_SIZE = 1000  # S3's page: a listing settles (queries processed markers) one page at a time
BACKLOG_COUNT_PAGES = 4  # pages the head lists past the run's objects to count what waits
MAX_LISTED_DELIVERIES = 100  # the statistics name at most this many (they are kept in the state item)
UNBOUNDED = 2**31 - 1  # the append layout's hits per recipient: every one kept (a shard holds them all)


class LeaseLost(RuntimeError):
    """Another run took the lease (this one stalled past its expiry): it stops; the other completes."""


class WorkflowError(RuntimeError):
    """The workflow cannot go on without an operator (e.g. a pending run's record is gone)."""


@dataclass(frozen=True)
class Limits:
    max_objects: int = 200
    max_hits: int = 500_000
    max_seconds: float = 40.0
    lease_seconds: int = 360
    lookback_hours: int = 26
    write_concurrency: int = 16
    first_hits_per_recipient: int = core.FIRST_HITS_PER_RECIPIENT
    last_hits_per_recipient: int = core.LAST_HITS_PER_RECIPIENT
    max_list_pages: int = 50
    sweep_pages: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> "Limits":
        return cls(max_objects=settings.workflow_max_objects, max_hits=settings.workflow_max_hits,
                   max_seconds=settings.workflow_max_seconds, lease_seconds=settings.workflow_lease_seconds,
                   lookback_hours=settings.workflow_lookback_hours,
                   write_concurrency=settings.workflow_write_concurrency,
                   first_hits_per_recipient=settings.workflow_first_hits_per_recipient,
                   last_hits_per_recipient=settings.workflow_last_hits_per_recipient,
                   max_list_pages=settings.workflow_max_list_pages, sweep_pages=settings.workflow_sweep_pages)


@dataclass
class _Listing:
    """One pass over the log objects in key order, from `start_after`: what it takes, leaves, and where it ends."""

    start_after: str | None
    taken: list[tuple[str, str]] = field(default_factory=list)  # (hour, key) to read in this run, key order
    modified: dict[str, int] = field(default_factory=dict)  # last modified (ms) of every pending object seen
    resume: dict[str, str | None] = field(default_factory=dict)  # pending key -> the StartAfter that lists it again
    left: list[str] = field(default_factory=list)  # pending keys seen and not taken (counted, left to later runs)
    end: str | None = None  # the StartAfter past everything listed (the last layout key, up to the current hour)
    complete: bool = False  # the listing reached the end of its range (not stopped by its page budget)
    ignored: int = 0

    def next_start(self, unread: set[str]) -> str | None:
        """Where the next run's listing starts: just before the first object this run leaves pending."""
        for _, key in self.taken:
            if key in unread:
                return self.resume[key]
        return self.resume[self.left[0]] if self.left else self.end

    def waiting(self, unread: set[str]) -> list[str]:
        return [key for _, key in self.taken if key in unread] + self.left


@dataclass
class _Plan:
    """A run's listings: the sweep of the lookback window (late objects), then the head (new objects)."""

    sweep: _Listing
    head: _Listing

    @property
    def objects(self) -> list[tuple[str, str]]:
        return self.sweep.taken + self.head.taken

    @property
    def ignored(self) -> int:
        return self.sweep.ignored + self.head.ignored

    def position(self, unread: set[str]) -> dict[str, str]:
        """The state's new listing position: the head's cursor, the sweep's ('' = start the window over)."""
        cursor = self.head.next_start(unread) or ""
        sweep_done = self.sweep.complete and not self.sweep.waiting(unread)
        sweep = "" if sweep_done else (self.sweep.next_start(unread) or "")
        return {"cursor": cursor, "sweep_cursor": sweep, "checkpoint": _hour_of(cursor)}

    def backlog(self, unread: set[str], now_ms: int) -> tuple[int, bool, int | None]:
        """(objects left waiting, whether that count is exact, last modified of the oldest), as this run saw them."""
        waiting = self.sweep.waiting(unread) + self.head.waiting(unread)
        modified = {**self.sweep.modified, **self.head.modified}
        oldest = min((modified[key] for key in waiting), default=None)
        return len(waiting), self.head.complete, oldest


@dataclass(frozen=True)
class _StoredState:
    """What a run reads before computing: the touched recipients' tracking items (their hits and summaries
    decoded) and, for those whose item lacks them, their delivery log facts."""

    stored: Mapping[tuple[str, int], Mapping[str, Any]]
    prior: Mapping[tuple[str, int], Sequence[core.Hit]]
    summaries: Mapping[tuple[str, int], core.Summary]
    facts: Mapping[tuple[str, int], Mapping[str, Any]]
    verdicts: Mapping[str, int]  # the verdict each stored hit was counted with, by hit id

    def details(self, key: tuple[str, int] | None) -> tuple[Any, str, str, str]:
        """(recipient id or None, the recipient id as log pages name it, address domain, its stat) of a
        recipient, the stored item's values over the delivery log's."""
        found = {**self.facts.get(key, {}), **{name: value for name, value in self.stored.get(key, {}).items()
                                                if value}} if key is not None else {}
        domain = found.get("domain") or UNKNOWN_DOMAIN
        return found.get("recipient_id"), str(found.get("recipient_id") or ""), domain, domain_stat(domain)


@dataclass(frozen=True)
class _Writes:
    """What a run writes besides the counter items' stat_updates: computed natively or in Python, the same."""

    recipients: EncodedItems
    deliveries: Sequence[core.DeliveryDelta]
    domains: list[tuple[str, str, dict[str, int]]]
    pages: EncodedItems
    hits_accepted: int
    duplicates: int
    over_limit: int
    run_items: Sequence[Mapping[str, Any]] = ()  # the append layout's: {delivery_id, shard, body (base64)}
    recipients_touched: int | None = None  # the append layout's (it writes no recipient item)


# What an append-layout run writes besides its counters' bodies (_appended_writes, natively or not): the touched
# shards' run items [(delivery id, shard, body in base64)], delivery deltas, domain deltas, hits accepted,
# duplicates, over_limit and recipients touched.
_Appended = tuple[Sequence[tuple[str, int, str]], Sequence[core.DeliveryDelta], list[tuple[str, str, dict[str, int]]],
                  int, int, int, int]


class TrackingWorkflow:
    def __init__(self, settings: Settings, limits: Limits | None = None, clock: Callable[[], float] = time.time,
                 logs: RedirectionLogStore | None = None, tracking: TrackingStore | None = None,
                 state: WorkflowStateStore | None = None, runs: RunItemStore | None = None) -> None:
        self.settings = settings
        self.limits = limits or Limits.from_settings(settings)
        self._clock = clock
        self.logs = logs or RedirectionLogStore(settings.redirection_log_bucket)
        self.tracking = tracking or TrackingStore.of(settings)
        self.state = state or WorkflowStateStore(settings.workflow_table)
        self.runs = runs or RunItemStore(settings.tracking_runs_table)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- a run -------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """One bounded run; its statistics (status completed, idle or busy)."""
        started = self._clock()
        owner = uuid.uuid4().hex
        state = self.state.acquire(owner, self._now_ms(), self.limits.lease_seconds * 1000)
        if state is None:
            metrics.emit(metrics.WORKFLOW_RUNS)
            return {"status": "busy", "message": "another run holds the lease; try again shortly",
                    "duration_ms": int((self._clock() - started) * 1000)}
        try:
            resumed = None
            if state.get("pending_run") is not None:
                record = self._read_pending(state)
                self._apply(record, owner, release=False)
                resumed = int(record["run"])
                state = {**state, "run_seq": resumed, **_record_position(record, state)}
            statistics = self._run_new(state, owner, started)
        except BaseException as error:
            metrics.emit(metrics.WORKFLOW_RUNS)
            if isinstance(error, Exception):
                logger.exception("tracking workflow run failed")
            with contextlib.suppress(Exception):  # a crash leaves the lease to expire; an error releases it
                self.state.release(owner, outcome=_failed(error, self._now_ms()))
            raise
        statistics["resumed_run"] = resumed
        statistics["duration_ms"] = int((self._clock() - started) * 1000)
        logger.info("tracking workflow run", extra={"statistics": statistics})
        _count(statistics)
        return statistics

    def _read_pending(self, state: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self.logs.get_run_record(str(state["pending_record"]))
        except Exception as error:
            raise WorkflowError(f"pending run {state['pending_run']}: its record {state.get('pending_record')} "
                                f"cannot be read ({error}); restore it or clear pending_run by hand") from error

    def _run_new(self, state: Mapping[str, Any], owner: str, started: float) -> dict[str, Any]:
        now_ms = self._now_ms()
        plan = self._plan(state)
        if not plan.objects:
            position = plan.position(set())
            backlog = self._backlog(plan, set(), now_ms)
            self.state.release(owner, position, outcome=_succeeded("idle", self._now_ms(), backlog))
            return {**_empty_statistics("idle"), "ignored_objects": plan.ignored, "checkpoint": position["checkpoint"],
                    **backlog}
        parsed, unread = self._read(plan.objects, started)
        run = int(state.get("run_seq") or 0) + 1
        unread_keys = {key for _, key in unread}
        position = plan.position(unread_keys)
        backlog = self._backlog(plan, unread_keys, now_ms)
        record = self._compute(run, owner, now_ms, parsed, position["checkpoint"],
                               backlog=backlog["backlog_objects"] > 0)
        record["position"] = position
        record["audiences"] = self._delivery_audiences(record["stats"])
        stat_writes = _stat_writes(record)
        record["statistics"]["stat_items_updated"] = len(stat_writes)
        record["statistics"]["ignored_objects"] = plan.ignored
        record["statistics"].update(backlog)
        record_key = self.logs.put_run_record(f"{run:012d}-{owner}", record)
        if not self.state.register_run(owner, run, record_key):
            raise LeaseLost(f"run {run} could not be registered: the lease was lost or another run registered")
        self._apply(record, owner, release=True, stat_writes=stat_writes)
        return dict(record["statistics"])

    # --- listing and reading --------------------------------------------------

    def _plan(self, state: Mapping[str, Any]) -> _Plan:
        """What this run reads: late objects the sweep finds behind the cursor, then new ones after it.

        The head lists from the cursor (StartAfter the last key a run
        finished with), so it never lists what earlier runs went past,
        however many objects that is. Objects can still appear behind the
        cursor: Firehose names an object by its oldest record and retries
        for up to 24 h, and the fallback paths write other names into the
        same hour. The sweep walks the lookback window behind the cursor a
        few pages a run, from where it stopped, and starts over once it
        reaches the cursor: every late object is found within one sweep.
        The sweep may take half of a run's objects, the head the rest.
        """
        now_ms = self._now_ms()
        floor = f"{LOG_PREFIX}{hour_partition(now_ms - self.limits.lookback_hours * HOUR_MS)}"
        newest_hour = hour_partition(now_ms + HOUR_MS)
        cursor, sweep_from = state.get("cursor"), state.get("sweep_cursor") or floor
        if cursor is None and state.get("checkpoint"):  # a state from before cursors: an hour partition
            cursor, sweep_from = self._cursor_from_markers(str(state["checkpoint"]), newest_hour), min(
                sweep_from, f"{LOG_PREFIX}{state['checkpoint']}")
        if cursor and sweep_from < cursor:
            sweep = self._list(sweep_from, cursor, self.limits.sweep_pages, max(1, self.limits.max_objects // 2),
                               newest_hour, count_left=False)
        else:
            sweep = _Listing(sweep_from, end=sweep_from, complete=True)
        head = self._list(cursor, None, self.limits.max_list_pages, self.limits.max_objects - len(sweep.taken),
                          newest_hour, count_left=True)
        return _Plan(sweep, head)

    def _cursor_from_markers(self, checkpoint: str, newest_hour: str) -> str:
        """The newest processed object from `checkpoint` on, as the first cursor of a state that had only an hour.

        Whatever is unprocessed behind it, the sweep (starting at
        `checkpoint`) finds; the head need not list it first.
        """
        cursor = f"{LOG_PREFIX}{checkpoint}"
        at_ms = _hour_ms(checkpoint)
        while hour_partition(at_ms) <= newest_hour:
            newest = self.state.newest_processed_object(hour_partition(at_ms))
            cursor = newest or cursor
            at_ms += HOUR_MS
        return cursor

    def _list(self, start_after: str | None, stop_after: str | None, max_pages: int, quota: int, newest_hour: str,
              count_left: bool) -> _Listing:
        """List from `start_after` (to `stop_after`), taking up to `quota` objects not processed yet.

        With `count_left`, the rest of the page where the quota filled and
        BACKLOG_COUNT_PAGES more are listed to count what waits.
        """
        listing = _Listing(start_after, end=start_after)
        previous = start_after
        page: list[tuple[str, int]] = []
        listed = 0
        counting_pages = None

        def settle() -> bool:
            """Classify one page of listed objects; False once the listing should stop."""
            nonlocal previous, counting_pages
            processed = self._processed(page)
            for key, modified_ms in page:
                hour = object_hour(key)
                if hour is None:
                    listing.ignored += 1
                elif key not in processed:
                    listing.resume[key], listing.modified[key] = previous, modified_ms
                    if len(listing.taken) < quota:
                        listing.taken.append((hour, key))
                    elif count_left:
                        listing.left.append(key)
                    else:
                        listing.left.append(key)
                        return False
                if hour is not None and hour <= newest_hour and not listing.left:
                    listing.end = key
                previous = key
            page.clear()
            if len(listing.taken) >= quota and listing.left:
                counting_pages = (counting_pages or 0) + 1
                return count_left and counting_pages <= BACKLOG_COUNT_PAGES
            return True

        for key, modified_ms in self.logs.list_log_objects(start_after, max_pages):
            if stop_after is not None and key > stop_after:
                break
            listed += 1
            page.append((key, modified_ms))
            if len(page) == LIST_PAGE_SIZE and not settle():
                return listing
        else:
            if listed >= max_pages * LIST_PAGE_SIZE:
                settle()
                return listing
        settle()
        listing.complete = True
        return listing

    def _processed(self, page: list[tuple[str, int]]) -> set[str]:
        """The keys of a page of listed objects that a run already processed (a key-range Query per hour)."""
        ranges: dict[str, tuple[str, str]] = {}
        for key, _ in page:
            hour = object_hour(key)
            if hour is not None:
                low, high = ranges.get(hour, (key, key))
                ranges[hour] = (min(low, key), max(high, key))
        processed: set[str] = set()
        for hour, (low, high) in ranges.items():
            processed |= self.state.processed_objects(hour, low, high)
        return processed

    def _backlog(self, plan: _Plan, unread: set[str], now_ms: int) -> dict[str, Any]:
        """What a run leaves waiting: how many objects (exact, or at least), and the oldest one's age (lag)."""
        count, exact, oldest_ms = plan.backlog(unread, now_ms)
        lag = max(0, (now_ms - oldest_ms) // 1000) if oldest_ms is not None else 0
        return {"backlog_objects": count, "backlog_exact": exact, "oldest_waiting_at": oldest_ms,
                "lag_seconds": lag}

    def _read(self, objects: list[tuple[str, str]], started: float
              ) -> tuple[list[tuple[str, str, core.ParsedLog]], list[tuple[str, str]]]:
        """Read and parse objects in key order until the time or hit budget is spent; (parsed, unread)."""
        keys = self.settings.keyring().keys
        deadline = started + self.limits.max_seconds * READ_SHARE_OF_BUDGET
        parsed: list[tuple[str, str, core.ParsedLog]] = []
        hits = 0
        chunk_size = max(1, self.limits.write_concurrency)
        position = 0
        while position < len(objects):
            if parsed and (self._clock() > deadline or hits >= self.limits.max_hits):
                break
            chunk = objects[position:position + chunk_size]
            read = self._parallel(lambda item: self.logs.read(item[1]), chunk)
            for (hour, key), data in zip(chunk, read, strict=True):
                result = native.backend().parse_log(data, keys)
                parsed.append((hour, key, result))
                hits += len(result.hits)
            position += len(chunk)
        return parsed, objects[position:]

    # --- computing a run -------------------------------------------------------

    def _compute(self, run: int, owner: str, now_ms: int, parsed: list[tuple[str, str, core.ParsedLog]],
                 checkpoint: str, backlog: bool) -> dict[str, Any]:
        with native.collector_paused():
            return self._computed(run, owner, now_ms, parsed, checkpoint, backlog)

    def _computed(self, run: int, owner: str, now_ms: int, parsed: list[tuple[str, str, core.ParsedLog]],
                  checkpoint: str, backlog: bool) -> dict[str, Any]:
        mode = self.settings.ip_address_mode
        results = [result for _, _, result in parsed]
        if self.settings.tracking_layout == "append":
            writes = self._appended(results, mode)
            stats: list[dict[str, Any]] = []  # in the run items
        else:
            writes = self._items_writes(results, mode, run, now_ms)
            stats = [{"delivery_id": delivery_id, "stat": stat, "add": deltas}
                     for delivery_id, stat, deltas in stat_updates(writes.deliveries) + writes.domains]
        recipients, pages = writes.recipients, writes.pages
        quarantine = [_quarantine_entry(key, result) for _, key, result in parsed if result.rejections]

        rejected: dict[str, int] = {}
        for _, _, result in parsed:
            for reason, count in result.rejected.items():
                rejected[reason] = rejected.get(reason, 0) + count
        statistics = {
            **_empty_statistics("completed"),
            "run": run,
            "objects": len(parsed),
            "lines": sum(result.lines for _, _, result in parsed),
            "hits_accepted": writes.hits_accepted,
            "rejected": {reason: rejected[reason] for reason in core.REASONS if reason in rejected},
            "rejected_total": sum(rejected.values()),
            "duplicates": sum(result.duplicates for _, _, result in parsed) + writes.duplicates,
            "over_limit": writes.over_limit,
            "recipients_updated": len(recipients) if writes.recipients_touched is None else writes.recipients_touched,
            "stat_items_updated": 0,  # counted by _run_new once the audiences say how the counters are grouped
            "log_pages_written": len(pages),
            "deliveries": sorted({delta.delivery_id for delta in writes.deliveries})[:MAX_LISTED_DELIVERIES],
            "deliveries_touched": len(writes.deliveries),
            "backlog": backlog,
            "checkpoint": checkpoint,
        }
        return {
            "run": run, "owner": owner, "created_at": now_ms, "checkpoint": checkpoint,
            "objects": [[hour, key] for hour, key, _ in parsed],
            "recipients": recipients, "stats": stats, "counter_layout": counters.LAYOUT, "quarantine": quarantine,
            "statistics": statistics, "log_pages": pages, "items_encoding": item_json.ENCODING,
            "layout": self.settings.tracking_layout, "run_items": _in_parts(writes.run_items),
        }

    def _items_writes(self, results: Sequence[core.ParsedLog], mode: str, run: int, now_ms: int) -> _Writes:
        """What a run writes in the items layout: the touched recipients' items, read and rewritten whole."""
        native_hits = native.backend().run_hits(results, mode)
        hits: list[core.Hit] = []
        touched: Collection[tuple[str, int]]
        if native_hits is not None:
            touched = native_hits.recipients()  # distinct already (no set of a run's recipients made again)
        else:
            hits = _minimised_hits(results, mode)
            touched = {hit.recipient for hit in hits}
        stored = self.tracking.get_recipients(touched) if touched else {}
        verdicts: dict[str, int] = {}
        for item in stored.values():
            verdicts.update(decode_verdicts(item))
        state = _StoredState(stored, {key: decode_hits(item) for key, item in stored.items()},
                             {key: summary for key, item in stored.items()
                              if (summary := decode_summary(item)) is not None},
                             self._delivery_log_facts(touched, stored), verdicts)
        writes = self._writes_natively(native_hits, state, run, now_ms) if native_hits is not None else None
        return writes or self._writes(hits or _minimised_hits(results, mode), state, run, now_ms)

    def _appended(self, results: Sequence[core.ParsedLog], mode: str) -> _Writes:
        """What a run writes in the append layout: one run item per (delivery, shard) it touches.

        The touched shards' run items are read (strongly consistent) and
        decoded: every stored hit of the touched recipients, with the
        verdict it was last counted with (its run item's, or a later
        correction's). The core aggregates the run's hits over them with no
        bound (nothing is evicted: a shard holds every hit), exactly as the
        items layout does. Each run item holds its shard's new hits and the
        stored hits whose verdict changed; the delivery's counter deltas
        (indicators, URLs, buckets, user-agent families, recipient domains)
        go to a run item of its counters partition (shard None).

        With the native layer the run's hits stay native as in the items
        layout (`run_hits`): the stored bodies are decoded into the
        aggregation's prior hits and each shard's body is encoded natively
        (`_appended_natively`); Python classifies the distinct agents and
        addresses, sums the user-agent families (stat_updates) and encodes
        the counters' bodies. `_appended_writes` is the reference and writes
        the same record (tests/unit/test_native_append.py).
        """
        backend = native.backend()
        native_hits = backend.run_hits(results, mode)
        hits: list[core.Hit] = []
        touched: Collection[tuple[str, int]]
        if native_hits is not None:
            touched = native_hits.recipients()  # distinct already
            shards: list[tuple[str, int]] = native_hits.shards(RECIPIENTS_PER_SHARD)  # sorted and distinct too
        else:
            hits = _minimised_hits(results, mode)
            touched = {hit.recipient for hit in hits}
            shards = sorted({(delivery_id, shard_of(log_id)) for delivery_id, log_id in touched})
        stored = [(delivery_id, [item.body for item in items]) for (delivery_id, _), items in zip(
            shards, self._parallel(lambda key: self.runs.read_shard(*key), shards), strict=True)]
        read = native_hits is not None and backend.read_run_items(native_hits, stored)
        prior, verdicts = ({}, {}) if read else _stored_hits(backend, stored, touched)
        state = _StoredState({}, prior, {}, self._delivery_log_facts(touched, {}) if touched else {}, verdicts)
        computed = self._appended_natively(native_hits, state) if read else None
        if computed is None:
            if read:  # the native module read the run items but cannot compute: the reference reads them again
                prior, verdicts = _stored_hits(backend, stored, touched)
                state = replace(state, prior=prior, verdicts=verdicts)
            computed = self._appended_writes(hits or _minimised_hits(results, mode), state)
        shard_items, deliveries, domains, accepted, duplicates, over_limit, recipients_touched = computed
        deltas: dict[str, list[tuple[str, str, int]]] = {}
        for delivery_id, stat, values in stat_updates(deliveries) + domains:
            deltas.setdefault(delivery_id, []).extend((stat, name, value) for name, value in values.items() if value)
        written = [{"delivery_id": delivery_id, "shard": shard, "body": body}
                   for delivery_id, shard, body in shard_items]
        for delivery_id in sorted(deltas):
            written.append({"delivery_id": delivery_id, "shard": None, "body": base64.b64encode(
                backend.encode_run_item(delivery_id, (), (), deltas[delivery_id])).decode("ascii")})
        return _Writes(EncodedItems.encode([]), deliveries, [], EncodedItems.encode([]), accepted, duplicates,
                       over_limit, written, recipients_touched)

    def _appended_natively(self, hits: Any, state: _StoredState) -> _Appended | None:
        """`_appended_writes` from the native layer, over the run items `read_run_items` decoded (no Python
        object per hit, stored or new); None when it cannot represent the context or the recipients' details."""
        known = classification.lists()
        flagged, others = hits.address_flags(*((ranges.starts, ranges.ends, ranges.flags)
                                               for ranges in (known.v4, known.v6)))
        context = self._classification(hits.user_agents(), others, state, flagged)
        computed = native.backend().compute_appended(
            hits, context, UNBOUNDED, None, {key: state.details(key) for key in state.facts}, state.details(None),
            RECIPIENTS_PER_SHARD)
        if computed is None:
            return None
        shard_items, deliveries, domains, accepted, duplicates, over_limit, recipients_touched = computed
        return (shard_items, tuple(core.DeliveryDelta(*delivery) for delivery in deliveries), domains, accepted,
                duplicates, over_limit, recipients_touched)

    def _appended_writes(self, hits: Sequence[core.Hit], state: _StoredState) -> _Appended:
        """What an append-layout run writes, computed in Python (the reference; SENDTRAIL_NATIVE=off):
        ([(delivery id, shard, body in base64)] of the touched shards, delivery deltas, domain deltas, hits
        accepted, duplicates, over_limit, recipients touched)."""
        backend = native.backend()
        context = self._classification({hit.ua for hit in hits}, {hit.ip for hit in hits}, state)
        aggregates = backend.aggregate(hits, state.prior, UNBOUNDED, context, {}, None)
        fresh = core.fresh_by_recipient(hits, state.prior, {})
        by_shard: dict[tuple[str, int], tuple[list[tuple[core.Hit, int]], list[tuple[str, int]]]] = {}
        domains: dict[tuple[str, int], str] = {}
        for update in aggregates.recipients:
            key = (update.delivery_id, update.log_id)
            domains[key] = state.details(key)[2]
            added, corrections = by_shard.setdefault((update.delivery_id, shard_of(update.log_id)), ([], []))
            counted = dict(zip((hit.hit_id for hit in update.hits), update.verdicts, strict=True))
            added.extend((hit, counted[hit.hit_id]) for hit in fresh[key])
            corrections.extend((hit.hit_id, verdict) for hit, verdict in zip(update.hits, update.verdicts, strict=True)
                               if state.verdicts.get(hit.hit_id, verdict) != verdict)
        shard_items = []
        for delivery_id, shard in sorted(by_shard):
            added, corrections = by_shard[(delivery_id, shard)]
            shard_items.append((delivery_id, shard, base64.b64encode(
                backend.encode_run_item(delivery_id, added, corrections)).decode("ascii")))
        return (shard_items, aggregates.deliveries,
                domain_updates(aggregates.recipients, state.prior, domains, state.verdicts),
                sum(update.added for update in aggregates.recipients), aggregates.duplicates, aggregates.over_limit,
                len(aggregates.recipients))

    def _delivery_log_facts(self, touched: Collection[tuple[str, int]],
                            stored: Mapping[tuple[str, int], Mapping[str, Any]]
                            ) -> dict[tuple[str, int], dict[str, Any]]:
        """Recipient id, send time and address domain of the touched recipients whose tracking item does not
        hold them yet."""
        unknown = [key for key in touched
                   if not stored.get(key, {}).get("recipient_id") or stored.get(key, {}).get("sent_at") is None
                   or not stored.get(key, {}).get("domain")]
        return delivery_log_facts(self.settings.delivery_logs_table, unknown) if unknown else {}

    def _delivery_audiences(self, stats: Iterable[Mapping[str, Any]]) -> dict[str, int]:
        """The audience of each delivery whose domain counters the run shards (counters.domain_shards), for the
        run record: _apply places the counters from the record alone."""
        sharded = {str(entry["delivery_id"]) for entry in stats if counters.is_sharded_domain(str(entry["stat"]))}
        return delivery_audiences(self.settings.deliveries_table, sharded) if sharded else {}

    def _writes(self, hits: Sequence[core.Hit], state: _StoredState, run: int, now_ms: int) -> _Writes:
        """What the run writes, computed in Python (the reference; SENDTRAIL_NATIVE=off)."""
        context = self._classification({hit.ua for hit in hits}, {hit.ip for hit in hits}, state)
        limits = self.limits
        aggregates = native.backend().aggregate(
            hits, state.prior, limits.first_hits_per_recipient + limits.last_hits_per_recipient, context,
            state.summaries, limits.first_hits_per_recipient)
        retention = self.settings.tracking_retention_days
        recipients = []
        domains: dict[tuple[str, int], str] = {}
        logged: dict[str, list[tuple[core.Hit, str]]] = {}  # each delivery's new hits, for its log pages
        fresh = core.fresh_by_recipient(hits, state.prior, state.summaries)  # evicted at once too: all logged
        for update in aggregates.recipients:
            key = (update.delivery_id, update.log_id)
            recipient_id, recipient_text, domains[key], _ = state.details(key)
            recipients.append(encode_recipient(update.delivery_id, update.log_id, update.hits, recipient_id,
                                               now_ms, retention, update.verdicts, context.sent_at.get(key),
                                               domains[key], update.summary))
            logged.setdefault(update.delivery_id, []).extend((hit, recipient_text) for hit in fresh[key])
        return _Writes(EncodedItems.encode(recipients), aggregates.deliveries,
                       domain_updates(aggregates.recipients, state.prior, domains, context.stored, state.summaries),
                       EncodedItems.encode([page for delivery_id in sorted(logged)
                                            for page in log_pages.encode_pages(delivery_id, logged[delivery_id], run)]),
                       sum(update.added for update in aggregates.recipients), aggregates.duplicates,
                       aggregates.over_limit)

    def _writes_natively(self, hits: Any, state: _StoredState, run: int, now_ms: int) -> _Writes | None:
        """What the run writes, from the native layer (no Python object per hit); None when it cannot
        represent the stored state (then `_writes` computes it)."""
        # Dotted quads and canonical IPv6 addresses looked up natively, other addresses by the reference.
        known = classification.lists()
        flagged, others = hits.address_flags(*((ranges.starts, ranges.ends, ranges.flags)
                                               for ranges in (known.v4, known.v6)))
        context = self._classification(hits.user_agents(), others, state, flagged)
        limits = self.limits
        backend = native.backend()
        computed = backend.compute_run(
            hits, state.prior, state.summaries, core.Hit, context,
            limits.first_hits_per_recipient + limits.last_hits_per_recipient, limits.first_hits_per_recipient,
            {key: state.details(key) for key in state.stored.keys() | state.facts.keys()}, state.details(None),
            now_ms, self.settings.tracking_retention_days, run)
        if computed is None:
            return None
        items, item_ends, deliveries, domains, pages, page_ends, accepted, duplicates, over_limit = computed
        return _Writes(EncodedItems(memoryview(items), item_ends),
                       tuple(core.DeliveryDelta(*delivery) for delivery in deliveries),
                       domains, EncodedItems(memoryview(pages), page_ends), accepted, duplicates, over_limit)

    def _classification(self, agents: Iterable[str], addresses: Iterable[str], state: _StoredState,
                        flagged_addresses: Mapping[str, int] | None = None) -> classification.Context:
        """What classifying the run's recipients needs: rules, flags of their agents and addresses (the
        run's and the stored hits'; `flagged_addresses`: those already looked up), send times, and the
        verdicts their stored hits were counted with."""
        sent_at = {key: int(item["sent_at"]) for key, item in state.stored.items() if item.get("sent_at") is not None}
        for key, found in state.facts.items():
            if found.get("sent_at") is not None and key not in sent_at:
                sent_at[key] = int(found["sent_at"])
        stored_hits = [hit for kept in state.prior.values() for hit in kept]
        if stored_hits:
            agents = {*agents, *(hit.ua for hit in stored_hits)}
            addresses = {*addresses, *(hit.ip for hit in stored_hits)}
        return classification.context_of(agents, addresses, classification_rules(self.settings), sent_at,
                                         state.verdicts, flagged_addresses)

    # --- applying a run record -----------------------------------------------

    def _apply(self, record: Mapping[str, Any], owner: str, release: bool,
               stat_writes: Sequence[tuple[str, str, dict[str, int]]] | None = None) -> None:
        """Steps 6-9; safe to repeat any number of times, in whole or in part. `stat_writes`: the record's
        grouped counters when the caller has them already (_stat_writes)."""
        run = int(record["run"])
        at_ms = int(record["created_at"])
        expires = at_ms // 1000 + self.settings.tracking_retention_days * DAY_SECONDS
        self._parallel(lambda item: self.tracking.put_recipient_item(_decoded(item), run),
                       _item_writes(record, "recipients"))
        self._parallel(lambda item: self.runs.put(str(item["delivery_id"]), _shard(item["shard"]), run,
                                                  base64.b64decode(item["body"]), at_ms, expires,
                                                  int(item.get("part") or 0)),
                       record.get("run_items") or [])
        self._parallel(lambda write: self._apply_stat(write, run, at_ms, expires),
                       _stat_writes(record) if stat_writes is None else stat_writes)
        self._parallel(lambda page: self.tracking.put_log_page_item(_decoded(page), run, expires),
                       _item_writes(record, "log_pages"))
        for entry in record["quarantine"]:
            if entry["whole_object"]:
                self.logs.copy_to_quarantine(entry["source"])
            else:
                self.logs.put_quarantine(entry["source"], entry["lines"])
        self.state.mark_processed(((hour, key) for hour, key in record["objects"]), run, expires)
        now_ms = self._now_ms()
        outcome = _succeeded("completed", now_ms, record["statistics"]) if release else None
        if not self.state.finish_run(owner, run, _record_position(record, {}), record["statistics"], now_ms,
                                     release, outcome):
            raise LeaseLost(f"run {run} could not be finished: the lease was lost")

    def _apply_stat(self, write: tuple[str, str, dict[str, int]], run: int, at_ms: int, expires: int) -> None:
        """One stats item's write of run `run`; a family shard that cannot take its new families overflows them
        (counters.overflow): full (FAMILY_SHARD_CAP), or too large (DynamoDB's 400 KB limit, the backstop).

        The refused write changed nothing, so a replay decides the same: the
        overflow item first (guarded: taken once), then the shard takes the
        run with the families it already holds, or alone (its guard and
        expiry: it stays as long as the delivery's other items, and a replay
        finds it done). Last, so a crash between the two leaves the shard to
        refuse the write again.
        """
        delivery_id, stat, deltas = write
        try:
            self.tracking.apply_stat(delivery_id, stat, deltas, run, at_ms, expires,
                                     counters.family_marks(stat, deltas))
            return
        except FamiliesFull as full:
            known, new = counters.split_known(deltas, full.stored)
            cause = "cap"
        except ItemTooLarge:
            if counters.overflow(stat, deltas) is None:
                raise
            known, new, cause = {}, dict(deltas), "size"
        self._overflow(delivery_id, stat, new, run, at_ms, expires, counters.OVERFLOW, cause)
        for attempt in (known, {}) if known else ({},):
            try:
                self.tracking.apply_stat(delivery_id, stat, attempt, run, at_ms, expires)
                return
            except ItemTooLarge:
                # A shard filled before the cap, within bytes of 400 KB: its own families' counters overflow
                # too, to an item of their own (<shard>~x took the run already), decided the same on a replay.
                self._overflow(delivery_id, stat, attempt, run, at_ms, expires, counters.LATE_OVERFLOW, "size")
        # A shard within bytes of the limit: its guard and expiry stay as they were.
        logger.warning("family shard full: not even its run guard fits", extra={
            "delivery_id": delivery_id, "stat": stat, "run": run})

    def _overflow(self, delivery_id: str, stat: str, deltas: dict[str, int], run: int, at_ms: int, expires: int,
                  suffix: str, cause: str) -> None:
        """Write a family shard's families it cannot take to <shard><suffix>, folded into "Other"."""
        spilled = counters.overflow(stat, deltas, suffix)
        if not deltas or spilled is None:
            return
        item, folded, families = spilled
        logger.warning("family shard full: its new families counted under Other", extra={
            "delivery_id": delivery_id, "stat": stat, "overflow": item, "run": run, "cause": cause,
            "families": len(families), "examples": sorted(families)[:5]})
        metrics.emit(metrics.FAMILIES_OVERFLOWED, len(families))
        self.tracking.apply_stat(delivery_id, item, folded, run, at_ms, expires)

    def _parallel(self, function: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if self.limits.write_concurrency <= 1 or len(items) <= 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.limits.write_concurrency, len(items))) as pool:
            return list(pool.map(function, items))


def _item_writes(record: Mapping[str, Any], name: str) -> list[bytes | dict[str, Any]]:
    """A run record's items of `name` (recipients, log_pages) in DynamoDB's form, ready for PutItem (_decoded):
    each one's JSON text as this version computes them (EncodedItems), decoded as its record reads back from
    S3, or converted from the plain values of a record an older version wrote, as that version did."""
    items = record.get(name) or []
    if record.get("items_encoding") != item_json.ENCODING:
        return [to_item(item) for item in items]
    return list(items.texts() if isinstance(items, EncodedItems) else items)


def _in_parts(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A run's items of the append layout as written: each in parts of at most MAX_BODY_BYTES (numbered, in
    order), one part for all but a shard flooded with hits."""
    written = []
    for item in items:
        if len(item["body"]) // 4 * 3 <= MAX_BODY_BYTES:  # base64: the body's size without decoding it
            written.append({**item, "part": 0})
            continue
        parts = native.backend().split_run_item(str(item["delivery_id"]), base64.b64decode(item["body"]),
                                                MAX_BODY_BYTES)
        written += [{**item, "part": part, "body": base64.b64encode(body).decode("ascii")}
                    for part, body in enumerate(parts)]
    return written


def _shard(shard: Any) -> int | None:
    """A run record's run-item shard: a number, or None for the delivery's counters."""
    return None if shard is None else int(shard)


def _decoded(item: bytes | dict[str, Any]) -> dict[str, Any]:
    """An item of _item_writes in DynamoDB's form (decoded by the thread that writes it, one at a time)."""
    if isinstance(item, bytes):
        decoded: dict[str, Any] = json.loads(item)
        return decoded
    return item


def _stat_writes(record: Mapping[str, Any]) -> list[tuple[str, str, dict[str, int]]]:
    """(delivery id, stats item, deltas) of a run record's counters: grouped (data/counters.py), or one item
    per counter for a record an older version wrote (it may have applied part of it that way already)."""
    layout = record.get("counter_layout")
    if layout in (counters.LAYOUT, counters.UNPACKED_LAYOUT):
        return counters.group(record["stats"], record.get("audiences"), packed=layout == counters.LAYOUT)
    return [(str(stat["delivery_id"]), str(stat["stat"]), dict(stat["add"])) for stat in record["stats"]]


def classification_rules(settings: Settings) -> classification.Rules:
    """The human/machine rules as the settings have them (classify_*)."""
    enabled = classification.ALL_RULES
    for reason in settings.classify_rules_off:
        enabled &= ~classification.BIT[reason]
    return classification.Rules(enabled, settings.classify_burst_links, settings.classify_burst_window_ms,
                          settings.classify_min_click_after_send_ms)


def stat_updates(deliveries: Iterable[core.DeliveryDelta]) -> list[tuple[str, str, dict[str, int]]]:
    """(delivery id, per-counter item, deltas) for every counter a run changes (written grouped: _stat_writes).

    The indicators item is always touched (its last_updated is the delivery's).
    User agents are classified here, once per distinct string, and summed per family.
    """
    updates: list[tuple[str, str, dict[str, int]]] = []
    for delta in deliveries:
        updates.append((delta.delivery_id, INDICATORS, dict(delta.indicators)))
        for url_id, counts in delta.urls.items():
            updates.append((delta.delivery_id, url_stat(url_id), dict(counts)))
        for start, counts in delta.buckets.items():
            updates.append((delta.delivery_id, bucket_stat(start), dict(counts)))
        families: dict[str, dict[str, int]] = {}
        for user_agent, counts in delta.user_agents.items():
            classified = classify(user_agent)
            for dimension in DIMENSIONS:
                target = families.setdefault(ua_stat(dimension, classified.family(dimension)), {})
                for name, value in counts.items():
                    target[name] = target.get(name, 0) + value
        for stat in sorted(families):
            deltas = {name: value for name, value in families[stat].items() if value}
            if deltas:
                updates.append((delta.delivery_id, stat, deltas))
    return updates


def domain_updates(recipients: Iterable[core.RecipientUpdate], prior: Mapping[tuple[str, int], Sequence[core.Hit]],
                   domains: Mapping[tuple[str, int], str], stored: Mapping[str, int] | None = None,
                   summaries: Mapping[tuple[str, int], core.Summary] | None = None
                   ) -> list[tuple[str, str, dict[str, int]]]:
    """(delivery id, domain#<domain>, deltas) of the recipients whose opened / clicked state changed.

    Recipients, not hits, as the indicators count them: a recipient opened when
    they have any hit (a click implies an open) and clicked with any click,
    stored or evicted (`summaries`: the stored ones before the run);
    opens_human / clicks_human the same over hits classified human (the
    update's verdicts; the stored hits' verdicts as they were counted,
    `stored`, UNCLASSIFIED when missing; the evicted hits' flags), so a later
    hit that turns a recipient's only "person" into a machine takes them back out.
    """
    stored = stored or {}

    def reached(hits: Sequence[core.Hit], verdicts: Sequence[int],
                summary: core.Summary | None) -> tuple[int, int, int, int]:
        people = [hit for hit, verdict in zip(hits, verdicts, strict=True) if classification.is_human(verdict)]
        evicted = summary if summary is not None else NOTHING_EVICTED
        return (int(bool(hits) or summary is not None),
                int(any(hit.kind == "click" for hit in hits) or evicted.clicked),
                int(bool(people) or evicted.human),
                int(any(hit.kind == "click" for hit in people) or evicted.clicked_human))

    summaries = summaries or {}
    totals: dict[tuple[str, str], dict[str, int]] = {}
    for update in recipients:
        key = (update.delivery_id, update.log_id)
        before = prior.get(key, ())
        now = reached(update.hits, update.verdicts or [classification.UNCLASSIFIED] * len(update.hits),
                      update.summary)
        then = reached(before, [stored.get(hit.hit_id, classification.UNCLASSIFIED) for hit in before],
                       summaries.get(key))
        target = totals.setdefault((update.delivery_id, domain_stat(domains[key])),
                                   dict.fromkeys(TRACKED, 0))
        for name, value, was in zip(target, now, then, strict=True):
            target[name] += value - was
    return [(delivery_id, stat, {name: value for name, value in deltas.items() if value})
            for (delivery_id, stat), deltas in sorted(totals.items()) if any(deltas.values())]


def _quarantine_entry(key: str, result: core.ParsedLog) -> dict[str, Any]:
    whole = any(rejection.line == 0 for rejection in result.rejections)
    lines = [] if whole else [_quarantined_line(rejection) for rejection in result.rejections]
    return {"source": key, "whole_object": whole, "reasons": dict(result.rejected), "lines": lines}


def _quarantined_line(rejection: core.Rejection) -> dict[str, Any]:
    """A rejected line as it was: text when it is UTF-8, base64 otherwise."""
    entry: dict[str, Any] = {"line": rejection.line, "reason": rejection.reason, "field": rejection.field}
    try:
        entry["data"] = rejection.data.decode("utf-8")
    except UnicodeDecodeError:
        entry["data_base64"] = base64.b64encode(rejection.data).decode("ascii")
    return entry


def _empty_statistics(status: str) -> dict[str, Any]:
    return {"status": status, "run": None, "objects": 0, "lines": 0, "hits_accepted": 0, "rejected": {},
            "rejected_total": 0, "duplicates": 0, "over_limit": 0, "recipients_updated": 0,
            "stat_items_updated": 0, "log_pages_written": 0, "deliveries": [], "deliveries_touched": 0,
            "backlog": False, "backlog_objects": 0, "backlog_exact": True, "oldest_waiting_at": None, "lag_seconds": 0}


def _minimised_hits(results: Iterable[core.ParsedLog], mode: str) -> list[core.Hit]:
    """The run's hits with their IPs as the privacy setting allows now.

    Records already carry the IP as the setting allowed when the hit came,
    so most hits comply as they are and are kept, not copied: a run
    handles up to max_hits of them.
    """
    hits = []
    for result in results:
        for hit in result.hits:
            ip = minimise_ip(hit.ip, mode)
            hits.append(hit if ip == hit.ip else replace(hit, ip=ip))
    return hits


def _stored_hits(backend: native.Backend, stored: Sequence[tuple[str, Sequence[bytes]]],
                 touched: Collection[tuple[str, int]]
                 ) -> tuple[dict[tuple[str, int], tuple[core.Hit, ...]], dict[str, int]]:
    """The touched recipients' hits in the run items of their shards (`stored`: each shard's delivery id and
    bodies in run order), each recipient's in (ts, hit id) order, and the verdict each was last counted with,
    by hit id (its run item's, or a later item's correction)."""
    touched = touched if isinstance(touched, (set, frozenset)) else set(touched)
    prior: dict[tuple[str, int], list[core.Hit]] = {}
    verdicts: dict[str, int] = {}
    for delivery_id, bodies in stored:
        for hit, verdict in run_items.replay(delivery_id, bodies, backend.decode_run_item):
            if hit.recipient in touched:
                prior.setdefault(hit.recipient, []).append(hit)
                verdicts[hit.hit_id] = verdict
    return {key: tuple(sorted(kept, key=core.hit_order)) for key, kept in prior.items()}, verdicts


def _succeeded(status: str, at_ms: int, statistics: Mapping[str, Any]) -> dict[str, Any]:
    """The state item's record of a run that did its work (completed, or idle: nothing new to read).

    With what it left waiting, so the status check can tell the backlog's
    age at any time after the run, not only at the run.
    """
    return {"last_run_at": at_ms, "last_run_status": status, "last_success_at": at_ms,
            "lag_seconds": int(statistics.get("lag_seconds") or 0),
            "backlog_objects": int(statistics.get("backlog_objects") or 0),
            "backlog_exact": bool(statistics.get("backlog_exact", True)),
            "oldest_waiting_at": statistics.get("oldest_waiting_at")}


def _hour_ms(hour: str) -> int:
    """The start (ms) of an hour partition 'YYYY/MM/DD/HH'."""
    return int(calendar.timegm(time.strptime(hour, "%Y/%m/%d/%H"))) * 1000


def _hour_of(cursor: str) -> str:
    """The hour partition a listing position lies in ('' before the first one)."""
    match = _CURSOR_HOUR.match(cursor)
    return match.group(1) if match else ""


def _record_position(record: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, str]:
    """The listing position a run record moves the state to (records from before cursors carry an hour)."""
    if record.get("position"):
        return dict(record["position"])
    checkpoint = record.get("checkpoint") or state.get("checkpoint")
    return {"checkpoint": checkpoint} if checkpoint else {}


def _failed(error: BaseException, at_ms: int) -> dict[str, Any]:
    """The state item's record of a run that raised (what, not where: no stack, no data)."""
    return {"last_run_at": at_ms, "last_run_status": "failed",
            "last_error": f"{type(error).__name__}: {error}"[:500]}


def _count(statistics: Mapping[str, Any]) -> None:
    """The run's metrics: one run; for a successful one, its lag, lines and rejected lines by reason."""
    metrics.emit(metrics.WORKFLOW_RUNS)
    if statistics.get("status") not in ("completed", "idle"):
        return
    metrics.emit(metrics.WORKFLOW_SUCCESSES)
    metrics.emit(metrics.WORKFLOW_LAG, statistics.get("lag_seconds") or 0, metrics.SECONDS)
    metrics.emit(metrics.WORKFLOW_BACKLOG, statistics.get("backlog_objects") or 0)
    metrics.emit(metrics.LINES_PROCESSED, statistics.get("lines") or 0)
    metrics.emit(metrics.HITS_TRACKED, statistics.get("hits_accepted") or 0)
    for reason, count in (statistics.get("rejected") or {}).items():
        metrics.emit(metrics.MALFORMED_LINES, count, reason=reason)


def run_once(max_seconds: float | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """One run with the configured settings (the scheduled Lambda, the API and the CLI use this)."""
    settings = settings or get_settings()
    limits = Limits.from_settings(settings)
    if max_seconds is not None:
        limits = replace(limits, max_seconds=max_seconds)
    return TrackingWorkflow(settings, limits).run()


def scheduled_run(event: Any, context: Any) -> dict[str, Any]:
    """The scheduled Lambda's entry point (app.py)."""
    return run_once()
