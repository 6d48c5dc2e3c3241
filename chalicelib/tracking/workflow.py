"""The tracking workflow: every new redirection log into the tracking tables, exactly once.

Campaign's `tracking` workflow, serverless: a scheduled Lambda (every minute;
every few seconds on the local stack) reads the redirection logs Firehose
wrote since its checkpoint and turns their hits into tracking tables and
indicators. A run, step by step (each write numbered as the crash tests
number them):

 1. Lease. A conditional write on the state item (owner + expiry, longer
    than the Lambda's timeout) [write: acquire]. Another run holding it means
    this one answers "busy" at once; overlapping runs never both apply.
 2. Resume. If the state names a pending run, its write-ahead record is read
    from S3 and applied (steps 6-9): a crashed run is completed, never
    recomputed.
 3. List. Log objects are listed from the checkpoint's hour partition on, in
    key order; those already processed (a Query per hour partition of the
    processed-object markers) are skipped; at most `max_objects` are taken,
    and objects are read until `max_seconds` (x 0.6) or `max_hits` is
    reached. The rest is a backlog for the next runs.
 4. Compute, in memory, for the whole run: the pure core (core.py) parses
    and verifies every object; the touched recipients' stored tracking items
    are read (strongly consistent BatchGetItem); core.aggregate merges the
    run's hits into them (dropping repeated hit ids, applying the 1-minute
    rule over each recipient's whole history) and gives each delivery's
    counter deltas; user agents are classified once each.
 5. Write ahead. The run record (objects, new recipient items, stat deltas,
    quarantined lines, checkpoint, statistics) is put to S3 [write], then
    registered as the state's pending run under the next run number, on
    condition that this run still holds the lease [write: register].
 6. Recipients: one PutItem per touched recipient, the whole new item,
    on condition `last_run < run` [writes].
 7. Stats: one UpdateItem per touched counter item (a delivery's
    indicators, each URL, each 5-minute bucket, each user-agent family),
    ADDing the deltas, on condition `last_run < run` [writes].
 8. Quarantine copies of rejected lines [S3 writes]; processed-object
    markers [BatchWriteItem].
 9. Finish: clear the pending run, advance the checkpoint (last) and
    release the lease [write].

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

Writes grow with the distinct keys a run touches (recipients, URLs,
buckets, user-agent families, objects / 25), not with the number of hits.

Every run says how it went, for the alarms and the status check: the write
that releases the lease records the outcome on the state item (last run,
last success, lag, last error), and the invocation's metrics count it
(WorkflowRuns, WorkflowSuccesses, WorkflowLagSeconds: the age of the oldest
log object the run saw and left unprocessed, 0 when it left none;
LinesProcessed, MalformedLines by reason).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from chalicelib import metrics, native
from chalicelib.data.redirection_logs import LOG_PREFIX, RedirectionLogStore, hour_partition, object_hour
from chalicelib.data.tracking import (
    INDICATORS,
    TrackingStore,
    WorkflowStateStore,
    bucket_stat,
    delivery_log_facts,
    ua_stat,
    url_stat,
)
from chalicelib.hits.records import minimise_ip
from chalicelib.settings import Settings, get_settings
from chalicelib.tracking import classify as classification
from chalicelib.tracking import core
from chalicelib.tracking.items import DAY_SECONDS, decode_hits, decode_verdicts, encode_recipient
from chalicelib.tracking.useragents import DIMENSIONS, classify

logger = logging.getLogger("sendtrail.tracking.workflow")
HOUR_MS = 3_600_000
READ_SHARE_OF_BUDGET = 0.6
MAX_LISTED_DELIVERIES = 100  # the statistics name at most this many (they are kept in the state item)


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
    max_hits_per_recipient: int = core.MAX_HITS_PER_RECIPIENT
    max_list_pages: int = 50

    @classmethod
    def from_settings(cls, settings: Settings) -> "Limits":
        return cls(max_objects=settings.workflow_max_objects, max_hits=settings.workflow_max_hits,
                   max_seconds=settings.workflow_max_seconds, lease_seconds=settings.workflow_lease_seconds,
                   lookback_hours=settings.workflow_lookback_hours,
                   write_concurrency=settings.workflow_write_concurrency,
                   max_hits_per_recipient=settings.workflow_max_hits_per_recipient)


@dataclass
class _Plan:
    objects: list[tuple[str, str]]  # (hour, key), key order
    more: bool  # pending objects beyond `objects`
    truncated_at: str | None  # hour where listing stopped before the end
    ignored: int
    modified: dict[str, int] = field(default_factory=dict)  # last modified (ms) of each object in `objects`
    first_left_modified: int | None = None  # last modified (ms) of the first pending object beyond `objects`


class TrackingWorkflow:
    def __init__(self, settings: Settings, limits: Limits | None = None, clock: Callable[[], float] = time.time,
                 logs: RedirectionLogStore | None = None, tracking: TrackingStore | None = None,
                 state: WorkflowStateStore | None = None) -> None:
        self.settings = settings
        self.limits = limits or Limits.from_settings(settings)
        self._clock = clock
        self.logs = logs or RedirectionLogStore(settings.redirection_log_bucket)
        self.tracking = tracking or TrackingStore(settings.tracking_table, settings.tracking_stats_table)
        self.state = state or WorkflowStateStore(settings.workflow_table)

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
                state = {**state, "run_seq": resumed, "checkpoint": record.get("checkpoint") or state.get("checkpoint")}
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
        checkpoint = state.get("checkpoint")
        plan = self._plan(checkpoint)
        if not plan.objects:
            new_checkpoint = self._checkpoint(checkpoint, now_ms, None, plan)
            self.state.release(owner, new_checkpoint, outcome=_succeeded("idle", self._now_ms(), 0))
            return {**_empty_statistics("idle"), "ignored_objects": plan.ignored, "checkpoint": new_checkpoint,
                    "lag_seconds": 0}
        parsed, unread = self._read(plan.objects, started)
        run = int(state.get("run_seq") or 0) + 1
        first_unread = unread[0][0] if unread else None
        new_checkpoint = self._checkpoint(checkpoint, now_ms, first_unread, plan)
        record = self._compute(run, owner, now_ms, parsed, new_checkpoint, backlog=bool(unread) or plan.more)
        record["statistics"]["ignored_objects"] = plan.ignored
        record["statistics"]["lag_seconds"] = self._lag_seconds(plan, unread)
        record_key = self.logs.put_run_record(f"{run:012d}-{owner}", record)
        if not self.state.register_run(owner, run, record_key):
            raise LeaseLost(f"run {run} could not be registered: the lease was lost or another run registered")
        self._apply(record, owner, release=True)
        return dict(record["statistics"])

    # --- listing and reading --------------------------------------------------

    def _plan(self, checkpoint: str | None) -> _Plan:
        start_after = f"{LOG_PREFIX}{checkpoint}" if checkpoint else None
        pending: list[tuple[str, str]] = []
        modified: dict[str, int] = {}
        processed: dict[str, set[str]] = {}
        ignored = 0
        last_hour = None
        listed = 0
        for key, modified_ms in self.logs.list_log_objects(start_after, self.limits.max_list_pages):
            listed += 1
            hour = object_hour(key)
            if hour is None:
                ignored += 1
                continue
            last_hour = hour
            if hour not in processed:
                processed[hour] = self.state.processed_objects(hour)
            if key in processed[hour]:
                continue
            if len(pending) >= self.limits.max_objects:
                return _Plan(pending, True, None, ignored, modified, modified_ms)
            pending.append((hour, key))
            modified[key] = modified_ms
        truncated = last_hour if listed >= self.limits.max_list_pages * 1000 else None
        return _Plan(pending, False, truncated, ignored, modified)

    def _lag_seconds(self, plan: _Plan, unread: list[tuple[str, str]]) -> int:
        """Age of the oldest log object this run saw and leaves unprocessed (0 when it leaves none)."""
        waiting = [plan.modified[key] for _, key in unread if key in plan.modified]
        if plan.first_left_modified is not None:
            waiting.append(plan.first_left_modified)
        return max(0, (self._now_ms() - min(waiting)) // 1000) if waiting else 0

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

    def _checkpoint(self, old: str | None, now_ms: int, first_unread_hour: str | None, plan: _Plan) -> str:
        """The oldest hour partition the next run must list again (never moves backwards)."""
        candidates = [hour_partition(now_ms - self.limits.lookback_hours * HOUR_MS)]
        if first_unread_hour:
            candidates.append(first_unread_hour)
        if plan.more and plan.objects:
            candidates.append(plan.objects[-1][0])
        if plan.truncated_at:
            candidates.append(plan.truncated_at)
        new = min(candidates)
        return max(old, new) if old else new

    # --- computing a run -------------------------------------------------------

    def _compute(self, run: int, owner: str, now_ms: int, parsed: list[tuple[str, str, core.ParsedLog]],
                 checkpoint: str, backlog: bool) -> dict[str, Any]:
        mode = self.settings.ip_address_mode
        hits = [_with_minimised_ip(hit, mode) for _, _, result in parsed for hit in result.hits]
        stored = self.tracking.get_recipients({hit.recipient for hit in hits}) if hits else {}
        prior = {key: decode_hits(item) for key, item in stored.items()}
        facts = self._delivery_log_facts({hit.recipient for hit in hits}, stored)
        context = self._classification(hits, prior, stored, facts)
        aggregates = native.backend().aggregate(hits, prior, self.limits.max_hits_per_recipient, context)

        retention = self.settings.tracking_retention_days
        recipients = []
        for update in aggregates.recipients:
            key = (update.delivery_id, update.log_id)
            recipient_id = stored.get(key, {}).get("recipient_id") or facts.get(key, {}).get("recipient_id")
            recipients.append(encode_recipient(update.delivery_id, update.log_id, update.hits, recipient_id, now_ms,
                                               retention, update.verdicts, context.sent_at.get(key)))
        stats = [{"delivery_id": delivery_id, "stat": stat, "add": deltas}
                 for delivery_id, stat, deltas in stat_updates(aggregates.deliveries)]
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
            "hits_accepted": sum(update.added for update in aggregates.recipients),
            "rejected": {reason: rejected[reason] for reason in core.REASONS if reason in rejected},
            "rejected_total": sum(rejected.values()),
            "duplicates": sum(result.duplicates for _, _, result in parsed) + aggregates.duplicates,
            "over_limit": aggregates.over_limit,
            "recipients_updated": len(recipients),
            "stat_items_updated": len(stats),
            "deliveries": sorted({delta.delivery_id for delta in aggregates.deliveries})[:MAX_LISTED_DELIVERIES],
            "deliveries_touched": len(aggregates.deliveries),
            "backlog": backlog,
            "checkpoint": checkpoint,
        }
        return {
            "run": run, "owner": owner, "created_at": now_ms, "checkpoint": checkpoint,
            "objects": [[hour, key] for hour, key, _ in parsed],
            "recipients": recipients, "stats": stats, "quarantine": quarantine, "statistics": statistics,
        }

    def _delivery_log_facts(self, touched: set[tuple[str, int]], stored: Mapping[tuple[str, int], Mapping[str, Any]]
                            ) -> dict[tuple[str, int], dict[str, Any]]:
        """Recipient id and send time of the touched recipients whose tracking item does not hold them yet."""
        unknown = [key for key in touched
                   if not stored.get(key, {}).get("recipient_id") or stored.get(key, {}).get("sent_at") is None]
        return delivery_log_facts(self.settings.delivery_logs_table, unknown) if unknown else {}

    def _classification(self, hits: Sequence[core.Hit], prior: Mapping[tuple[str, int], Sequence[core.Hit]],
                        stored: Mapping[tuple[str, int], Mapping[str, Any]],
                        facts: Mapping[tuple[str, int], Mapping[str, Any]]) -> classification.Context:
        """What classifying the run's recipients needs: rules, flags of their agents and addresses, send
        times, and the verdicts their stored hits were counted with."""
        sent_at = {key: int(item["sent_at"]) for key, item in stored.items() if item.get("sent_at") is not None}
        for key, found in facts.items():
            if found.get("sent_at") is not None and key not in sent_at:
                sent_at[key] = int(found["sent_at"])
        verdicts: dict[str, int] = {}
        for item in stored.values():
            verdicts.update(decode_verdicts(item))
        every_hit = [*hits, *(hit for kept in prior.values() for hit in kept)]
        return classification.context_for(every_hit, classification_rules(self.settings), sent_at, verdicts)

    # --- applying a run record -----------------------------------------------

    def _apply(self, record: Mapping[str, Any], owner: str, release: bool) -> None:
        """Steps 6-9; safe to repeat any number of times, in whole or in part."""
        run = int(record["run"])
        at_ms = int(record["created_at"])
        expires = at_ms // 1000 + self.settings.tracking_retention_days * DAY_SECONDS
        self._parallel(lambda item: self.tracking.put_recipient(item, run), record["recipients"])
        self._parallel(lambda stat: self.tracking.apply_stat(stat["delivery_id"], stat["stat"], stat["add"], run,
                                                             at_ms, expires), record["stats"])
        for entry in record["quarantine"]:
            if entry["whole_object"]:
                self.logs.copy_to_quarantine(entry["source"])
            else:
                self.logs.put_quarantine(entry["source"], entry["lines"])
        self.state.mark_processed(((hour, key) for hour, key in record["objects"]), run, expires)
        now_ms = self._now_ms()
        lag_seconds = int(record["statistics"].get("lag_seconds") or 0)
        outcome = _succeeded("completed", now_ms, lag_seconds) if release else None
        if not self.state.finish_run(owner, run, record.get("checkpoint"), record["statistics"], now_ms,
                                     release, outcome):
            raise LeaseLost(f"run {run} could not be finished: the lease was lost")

    def _parallel(self, function: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if self.limits.write_concurrency <= 1 or len(items) <= 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.limits.write_concurrency, len(items))) as pool:
            return list(pool.map(function, items))


def classification_rules(settings: Settings) -> classification.Rules:
    """The human/machine rules as the settings have them (classify_*)."""
    enabled = classification.ALL_RULES
    for reason in settings.classify_rules_off:
        enabled &= ~classification.BIT[reason]
    return classification.Rules(enabled, settings.classify_burst_links, settings.classify_burst_window_ms,
                          settings.classify_min_click_after_send_ms)


def stat_updates(deliveries: Iterable[core.DeliveryDelta]) -> list[tuple[str, str, dict[str, int]]]:
    """(delivery id, stats item, deltas) for every counter item a run changes.

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
            "stat_items_updated": 0, "deliveries": [], "deliveries_touched": 0, "backlog": False}


def _with_minimised_ip(hit: core.Hit, mode: str) -> core.Hit:
    """The hit with its IP as the privacy setting allows now.

    Records already carry the IP as the setting allowed when the hit came,
    so most hits comply as they are and are kept, not copied: a run
    handles up to max_hits of them.
    """
    ip = minimise_ip(hit.ip, mode)
    return hit if ip == hit.ip else replace(hit, ip=ip)


def _succeeded(status: str, at_ms: int, lag_seconds: int) -> dict[str, Any]:
    """The state item's record of a run that did its work (completed, or idle: nothing to do)."""
    return {"last_run_at": at_ms, "last_run_status": status, "last_success_at": at_ms, "lag_seconds": lag_seconds}


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
    metrics.emit(metrics.LINES_PROCESSED, statistics.get("lines") or 0)
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
