"""The send worker: one chunk of a delivery per SQS message, sent once, at the affinity's rate.

A chunk is a range of log ids (jobs.py). Processing it:

1. The delivery's state decides: start_pending or in_progress send (the
   first chunk moves start_pending to in_progress and measures the wait,
   DeliveryStartPendingSeconds); stopped cancels the range's prepared logs;
   paused, finished, failed and draft drop the chunk (resuming queues it
   again).
2. The affinity is checked again (settings, and the configuration set in
   SES); a missing one fails the delivery. The SES account says the rate
   (MaxSendRate, or the affinity's lower max_rate, divided among the
   SendConcurrency workers) and whether sending is possible at all (sending
   paused, daily quota used up): if not, the chunk waits on the queue and
   the delivery records why.
3. Prepared logs whose address is quarantined, denylisted or has opted out
   become ignored, with the reason.
4. The rest go in groups of `send_claim_batch`: a group is claimed
   (prepared -> pending, one transaction with the counts), each message is
   rendered and sent, and the group's results are recorded in one
   transaction (pending -> sent with SES's message id and the raw size,
   failed when SES refused it or it could not be rendered or encoded
   (invalid_content: that message alone), prepared again when it was not
   sent), or two when its counters take it over DynamoDB's 100 items.
   Before each group the state is read again, so a pause or a stop takes
   effect within one group.

Exactly once. A log is sent only by the worker whose conditional claim moved
it out of prepared, so a redelivered or duplicated chunk sends nothing
twice. Every log change moves the summary's counters in the same
transaction. When SES's answer is lost (read timeout), the message may have
gone: the log stays pending, never resent; SES's Send event (events.py)
completes it, and a log still pending without one after
`PENDING_TIMEOUT_MS` (the chunk is queued again to look) is failed as
error_ignored. The same happens to the claimed logs of a worker that died.

Throttling. SES answers TooManyRequests (or Throttling, LimitExceeded, 5xx)
when the rate or quota is exceeded anyway: the message is retried after an
exponential backoff with full jitter (pacing.py), counted as SendThrottles.
When the chunk's time budget (`send_chunk_max_seconds`, and the Lambda's
remaining time) runs out, the unsent logs go back to prepared and the chunk
goes back on the queue (after `send_throttled_retry_delay_seconds` if SES
was throttling), so a chunk never fails for being slow.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field

from chalicelib import metrics
from chalicelib.data import mailer, send_queue, throughput
from chalicelib.data.addresses import AddressStore
from chalicelib.data.deliveries import MAX_TRANSACTION_ITEMS, DeliveryStore, LogTransition
from chalicelib.data.domain_stats import counter_update, domain_of, domain_stat, expiry
from chalicelib.data.mailer import SesAnswerLost, SesBlocked, SesNoConfigurationSet, SesRefused, SesThrottled
from chalicelib.data.signing_keys import SigningKeyUses
from chalicelib.deliveries.compose import compose
from chalicelib.deliveries.mime import HEADER_UNSAFE, build_mime, unsafe_character
from chalicelib.deliveries.tracked_links import RecipientLinks
from chalicelib.errors import AffinityNotConfigured
from chalicelib.keyring import DAY_MS, KeyRing, links_valid_until, removable_from
from chalicelib.mta import affinities, states, statuses
from chalicelib.mta.pacing import Backoff, Pacer
from chalicelib.mta.reasons import (
    DENYLISTED,
    ERROR_IGNORED,
    IGNORED,
    INVALID_CONTENT,
    QUARANTINED,
    REFUSED,
    Failure,
)
from chalicelib.mta.recipients import normalise
from chalicelib.retention import expires_at_epoch
from chalicelib.settings import Settings

logger = logging.getLogger("sendtrail.mta.worker")

PENDING_TIMEOUT_MS = 15 * 60 * 1000  # SES's Send event comes within seconds; 15 minutes is ample
BLOCKED_RETRY_DELAY_SECONDS = 900  # SQS's longest delay: sending paused or the daily quota used up
LAMBDA_MARGIN_SECONDS = 15.0  # stop sending this long before the Lambda's timeout
MIN_RATE = 0.1


class ChunkIn(BaseModel):
    """A send work queue message."""

    model_config = ConfigDict(extra="ignore")

    delivery_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    first: int = Field(ge=1)
    last: int = Field(ge=1)


@dataclass
class Runtime:
    """The worker's clocks, sleep and randomness; tests give fakes."""

    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random

    def now_ms(self) -> int:
        return int(self.wall() * 1000)


@dataclass
class _Sent:
    log: dict[str, Any]
    message_id: Optional[str] = None  # accepted by SES
    size: int = 0
    failure: Optional[Failure] = None  # refused by SES
    lost: bool = False  # SES's answer lost: maybe sent


@dataclass
class _GroupResult:
    sent: list[_Sent] = field(default_factory=list)
    unsent: list[dict[str, Any]] = field(default_factory=list)
    stop: Optional[str] = None  # why the chunk stopped early: budget, throttled, blocked, no_configuration_set


@dataclass
class _ChunkRun:
    sent: int = 0
    lost: bool = False
    stop: Optional[str] = None


class _Deadline:
    def __init__(self, runtime: Runtime, seconds: float) -> None:
        self.runtime = runtime
        self.at = runtime.monotonic() + seconds

    def left(self) -> float:
        return self.at - self.runtime.monotonic()


class SendWorker:
    def __init__(self, settings: Settings, store: Optional[DeliveryStore] = None,
                 addresses: Optional[AddressStore] = None, runtime: Optional[Runtime] = None) -> None:
        self.settings = settings
        self.store = store or DeliveryStore(settings.deliveries_table, settings.delivery_logs_table)
        self.addresses = addresses or AddressStore(settings.addresses_table)
        self.runtime = runtime or Runtime()

    # --- the Lambda handler --------------------------------------------------

    def handle(self, event: dict[str, Any], context: Any) -> Mapping[str, Any]:
        """SQS batch in, partial batch response out (Powertools): a failed chunk returns to the queue."""
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

        def record_handler(record: Any) -> None:
            self.process(ChunkIn.model_validate_json(record.body), self._budget(context))

        return process_partial_response(event=event, record_handler=record_handler,
                                        processor=BatchProcessor(event_type=EventType.SQS), context=context)

    def _budget(self, context: Any) -> float:
        budget = self.settings.send_chunk_max_seconds
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if remaining is not None:
            budget = min(budget, remaining() / 1000 - LAMBDA_MARGIN_SECONDS)
        return max(budget, 1.0)

    # --- one chunk -----------------------------------------------------------

    def process(self, chunk: ChunkIn, budget_seconds: float) -> str:
        """Handle one chunk; returns what happened (for logs and tests)."""
        deadline = _Deadline(self.runtime, budget_seconds)
        summary = self.store.get_summary(chunk.delivery_id, consistent=True)
        if summary is None:
            logger.warning("send job for an unknown delivery", extra={"delivery_id": chunk.delivery_id})
            return "unknown delivery"
        state = summary.get("state")
        if state == states.STOPPED:
            return f"canceled {self._cancel(chunk)}"
        if state not in states.SENDING:
            return f"dropped: {state}"
        try:
            affinity = affinities.check(summary.get("affinity"), self.settings)
        except AffinityNotConfigured as error:
            self._fail_delivery(chunk.delivery_id, "affinity_not_configured", str(error))
            return "failed: affinity not configured"
        if state == states.START_PENDING:
            self._leave_start_pending(chunk.delivery_id, summary)
        account = mailer.get_account()
        blocked = _account_block(account)
        if blocked:
            self._record_block(chunk.delivery_id, *blocked)
            send_queue.enqueue(self.settings.send_queue_url, [chunk.model_dump()],
                               delay_seconds=BLOCKED_RETRY_DELAY_SECONDS)
            return f"blocked: {blocked[0]}"
        rate = self._rate(account, affinity.affinity.max_rate)

        logs = self.store.chunk_logs(chunk.delivery_id, chunk.first, chunk.last)
        waiting_for_ses = self._settle_pending(chunk.delivery_id, logs)
        prepared = self._exclude(chunk.delivery_id, [log for log in logs if log["status"] == statuses.PREPARED])
        run = self._send(chunk, summary, affinity.configuration_set, prepared, rate, deadline)
        if run.stop == "no_configuration_set":
            self._fail_delivery(chunk.delivery_id, "affinity_not_configured",
                                f"SES has no configuration set {affinity.configuration_set!r}")
            return "failed: no configuration set"
        if run.stop in ("budget", "throttled", "blocked"):
            delay = {"budget": 0, "throttled": self.settings.send_throttled_retry_delay_seconds,
                     "blocked": BLOCKED_RETRY_DELAY_SECONDS}[run.stop]
            send_queue.enqueue(self.settings.send_queue_url, [chunk.model_dump()], delay_seconds=delay)
            return f"sent {run.sent}, requeued: {run.stop}"
        if waiting_for_ses or run.lost:  # look again once SES's Send events had time to come
            send_queue.enqueue(self.settings.send_queue_url, [chunk.model_dump()],
                               delay_seconds=BLOCKED_RETRY_DELAY_SECONDS)
        self.store.finish_if_done(chunk.delivery_id, self.runtime.now_ms())
        return f"sent {run.sent}" + (f", {run.stop}" if run.stop else "")

    # --- states --------------------------------------------------------------

    def _leave_start_pending(self, delivery_id: str, summary: dict[str, Any]) -> None:
        now = self.runtime.now_ms()
        if self.store.change_state(delivery_id, states.IN_PROGRESS, [states.START_PENDING], now,
                                   values={"last_progress_at": now}, set_once={"started_at": now}):
            waited = max(0, now - int(summary.get("state_since") or now)) / 1000
            metrics.emit(metrics.DELIVERY_START_PENDING, waited, metrics.SECONDS)

    def _fail_delivery(self, delivery_id: str, code: str, message: str) -> None:
        logger.error("delivery failed", extra={"delivery_id": delivery_id, "reason": message})
        self.store.change_state(delivery_id, states.FAILED, states.SENDING, self.runtime.now_ms(),
                                values={"failure": {"code": code, "message": message}})

    # --- the SES account -----------------------------------------------------

    def _rate(self, account: dict[str, Any], affinity_rate: Optional[float]) -> float:
        """This worker's messages per second: the account's (or the affinity's lower) rate, shared."""
        account_rate = float((account.get("SendQuota") or {}).get("MaxSendRate") or 1)
        rate = min(account_rate, affinity_rate) if affinity_rate else account_rate
        return max(MIN_RATE, rate / self.settings.send_concurrency)

    def _record_block(self, delivery_id: str, code: str, message: str) -> None:
        """Say on the delivery why it does not move (cleared by the next message SES accepts)."""
        now = self.runtime.now_ms()
        self.store.transition(delivery_id, [], now, summary_values={
            "blocked": {"code": code, "message": message, "since": now}})

    # --- logs that are not sent ----------------------------------------------

    def _cancel(self, chunk: ChunkIn) -> int:
        logs = [log for log in self.store.chunk_logs(chunk.delivery_id, chunk.first, chunk.last)
                if log["status"] == statuses.PREPARED]
        return self._apply_each(chunk.delivery_id, [
            LogTransition(int(log["log_id"]), statuses.PREPARED, statuses.CANCELED) for log in logs])

    def _settle_pending(self, delivery_id: str, logs: list[dict[str, Any]]) -> bool:
        """Fail pending logs nobody will complete; True while some may still get SES's Send event."""
        now = self.runtime.now_ms()
        stale, waiting = [], False
        for log in logs:
            if log["status"] != statuses.PENDING or log.get("message_id"):
                continue
            if now - int(log.get("pending_since") or 0) >= PENDING_TIMEOUT_MS:
                stale.append(log)
            elif log.get("answer_lost_at"):
                waiting = True
        failure = Failure(IGNORED, ERROR_IGNORED, "SES's answer to the send was lost and no Send event came: "
                                                  "it was probably not sent, and is not sent again")
        self._apply_each(delivery_id, [
            LogTransition(int(log["log_id"]), statuses.PENDING, statuses.FAILED, failure=(failure.type, failure.reason),
                          values={"failure_detail": failure.detail, "failed_at": now})
            for log in stale])
        return waiting

    def _exclude(self, delivery_id: str, logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Make logs to quarantined, denylisted or opted-out addresses ignored; returns the others."""
        if not logs:
            return logs
        # An erased person's suppression is kept under a hash of the address (chalicelib/privacy.py).
        known = self.addresses.get_many((log["email"] for log in logs), self.settings.keyring().suppression_key)
        keep, skipped = [], []
        for log in logs:
            item = known.get(normalise(log["email"])) or {}
            if item.get("quarantine_status") == "denylisted" or item.get("unsubscribed_at"):
                why = "the address complained" if item.get("quarantine_status") else "the address opted out"
                skipped.append((log, Failure(IGNORED, DENYLISTED, f"denylisted: {why}")))
            elif item.get("quarantine_status") == "quarantined":
                skipped.append((log, Failure(IGNORED, QUARANTINED,
                                             f"quarantined ({item.get('quarantine_reason') or 'unknown'})")))
            else:
                keep.append(log)
        self._apply_each(delivery_id, [
            LogTransition(int(log["log_id"]), statuses.PREPARED, statuses.IGNORED_STATUS,
                          failure=(failure.type, failure.reason), values={"failure_detail": failure.detail})
            for log, failure in skipped])
        return keep

    def _apply_each(self, delivery_id: str, transitions: list[LogTransition]) -> int:
        """Apply transitions in transactions of a group; where one lost a race, each alone. Returns how many."""
        applied = 0
        size = self.settings.send_claim_batch
        for start in range(0, len(transitions), size):
            group = transitions[start:start + size]
            if self.store.transition(delivery_id, group, self.runtime.now_ms(),
                                     summary_values={"last_progress_at": self.runtime.now_ms()}):
                applied += len(group)
                continue
            applied += sum(self.store.transition(delivery_id, [change], self.runtime.now_ms()) for change in group)
        return applied

    # --- sending -------------------------------------------------------------

    def _send(self, chunk: ChunkIn, summary: dict[str, Any], configuration_set: str,
              prepared: list[dict[str, Any]], rate: float, deadline: _Deadline) -> _ChunkRun:
        run = _ChunkRun()
        if not prepared:
            return run
        content = self.store.get_content(chunk.delivery_id) or {}
        keyring = self.settings.keyring()
        self._record_signing_key(keyring, summary)
        pacer = Pacer(rate, clock=self.runtime.monotonic, sleep=self.runtime.sleep)
        size = self.settings.send_claim_batch
        for start in range(0, len(prepared), size):
            if deadline.left() <= 0:
                run.stop = "budget"
                return run
            if start:
                state = (self.store.get_summary(chunk.delivery_id, consistent=True) or {}).get("state")
                if state not in states.SENDING:
                    run.stop = f"interrupted: {state}"  # paused: resuming queues it again; stopped: so did the stop
                    return run
            claimed = self._claim(chunk.delivery_id, prepared[start:start + size])
            result = self._send_group(chunk.delivery_id, summary, content, keyring, configuration_set, claimed,
                                      pacer, deadline)
            self._record(chunk.delivery_id, result)
            run.sent += sum(1 for item in result.sent if item.message_id)
            run.lost = run.lost or any(item.lost for item in result.sent)
            if result.stop:
                run.stop = result.stop
                return run
        return run

    def _record_signing_key(self, keyring: KeyRing, summary: dict[str, Any]) -> None:
        """Note until when the links this chunk signs are valid, before signing: the key must stay that long.

        One conditional write per chunk at most, none when this container
        recorded the same date for the key already (a UTC midnight).
        """
        now = self.runtime.now_ms()
        links_expire = int(summary.get("start_requested_at") or now) + int(
            summary.get("validity_days") or self.settings.default_validity_days) * DAY_MS
        until = links_valid_until(links_expire, now, self.settings.delivery_log_retention_days)
        SigningKeyUses(self.settings.deliveries_table).record(
            keyring.active_key_id, until, removable_from(until, self.settings.workflow_lookback_hours))

    def _claim(self, delivery_id: str, logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """prepared -> pending; only the logs this worker moved are its to send.

        A log is kept `delivery_log_retention_days` from its sending (its
        unsubscribe link works as long), not from the delivery's creation.
        """
        now = self.runtime.now_ms()
        expires = expires_at_epoch(now, self.settings.delivery_log_retention_days)

        def claim(log: dict[str, Any]) -> LogTransition:
            return LogTransition(int(log["log_id"]), statuses.PREPARED, statuses.PENDING,
                                 values={"pending_since": now, "expires_at_epoch": expires})

        if self.store.transition(delivery_id, [claim(log) for log in logs], now):
            return logs
        return [log for log in logs if self.store.transition(delivery_id, [claim(log)], now)]

    def _send_group(self, delivery_id: str, summary: dict[str, Any], content: dict[str, Any], keyring: Any,
                    configuration_set: str, logs: list[dict[str, Any]], pacer: Pacer,
                    deadline: _Deadline) -> _GroupResult:
        result = _GroupResult()
        for index, log in enumerate(logs):
            if result.stop:
                result.unsent.extend(logs[index:])
                break
            try:
                raw = self._render(delivery_id, summary, content, keyring, log)
            except ValueError as error:  # this message only (UnicodeError included): the rest of the group goes
                logger.warning("a message could not be built; it fails alone",
                               extra={"delivery_id": delivery_id, "log_id": log["log_id"], "error": str(error)})
                result.sent.append(_Sent(log, failure=Failure(
                    IGNORED, INVALID_CONTENT, f"the message could not be rendered or encoded: {error}"[:500])))
                continue
            outcome = self._send_one(delivery_id, summary, configuration_set, log, raw, pacer, deadline)
            if isinstance(outcome, str):
                result.stop = outcome
                result.unsent.append(log)
            else:
                result.sent.append(outcome)
        return result

    def _render(self, delivery_id: str, summary: dict[str, Any], content: dict[str, Any], keyring: Any,
                log: dict[str, Any]) -> bytes:
        where = unsafe_character(log["email"], HEADER_UNSAFE)
        if where:  # stored before addresses were normalised: it would reach To: and SES's destination as is
            raise ValueError(f"the recipient's address holds a line break or control character ({where})")
        links = RecipientLinks(summary["base_url"], keyring, delivery_id, int(log["log_id"]))
        message = compose(content, log, links)
        return build_mime(content["from_address"], log["email"], message.subject, message.html, message.text,
                          message.headers)

    def _send_one(self, delivery_id: str, summary: dict[str, Any], configuration_set: str, log: dict[str, Any],
                  raw: bytes, pacer: Pacer, deadline: _Deadline) -> _Sent | str:
        """SES's answer for one message, or why the chunk must stop (budget, throttled, blocked, ...)."""
        backoff = Backoff(self.settings.send_backoff_base_seconds, self.settings.send_backoff_max_seconds,
                          sleep=self.runtime.sleep, random=self.runtime.random)
        tags = {"delivery_id": delivery_id, "log_id": str(log["log_id"])}
        while True:
            if deadline.left() <= 0:
                return "throttled" if backoff.attempt else "budget"
            pacer.wait()
            try:
                message_id = mailer.send_raw(summary["from_address"], log["email"], raw, configuration_set, tags)
                return _Sent(log, message_id=message_id, size=len(raw))
            except SesThrottled as error:
                if error.throttling:
                    metrics.emit(metrics.SEND_THROTTLES)
                delay = backoff.next_delay()
                logger.info("SES throttled; backing off", extra={"delivery_id": delivery_id, "code": error.code,
                                                                "delay_s": round(delay, 3)})
                if delay >= deadline.left():
                    return "throttled"
                self.runtime.sleep(delay)
            except SesBlocked as error:
                self._record_block(delivery_id, "ses_sending_paused", f"SES refused to send: {error}")
                return "blocked"
            except SesNoConfigurationSet:
                return "no_configuration_set"
            except SesRefused as error:
                return _Sent(log, failure=Failure(IGNORED, REFUSED, f"refused by SES: {error}"[:500]))
            except SesAnswerLost:
                logger.warning("SES's answer was lost; the message is not sent again",
                               extra={"delivery_id": delivery_id, "log_id": log["log_id"]})
                return _Sent(log, lost=True)

    def _record(self, delivery_id: str, result: _GroupResult) -> None:
        """The group's outcome in as few transactions as fit it; where an SES event got to a log first, log by log."""
        now = self.runtime.now_ms()
        changes: list[tuple[LogTransition, int, str]] = []  # and the bytes SES accepted, to this address
        for item in result.sent:
            log_id = int(item.log["log_id"])
            if item.message_id:
                changes.append((LogTransition(
                    log_id, statuses.PENDING, statuses.SENT, condition="attribute_not_exists(sent_at)",
                    values={"message_id": item.message_id, "sent_at": now, "size": item.size}), item.size,
                    item.log.get("email", "")))
            elif item.failure:
                changes.append((LogTransition(log_id, statuses.PENDING, statuses.FAILED,
                                              failure=(item.failure.type, item.failure.reason),
                                              values={"failure_detail": item.failure.detail, "failed_at": now}), 0,
                                ""))
            elif item.lost:
                changes.append((LogTransition(log_id, statuses.PENDING, statuses.PENDING,
                                              values={"answer_lost_at": now}), 0, ""))
        for log in result.unsent:
            changes.append((LogTransition(int(log["log_id"]), statuses.PENDING, statuses.PREPARED,
                                          remove=("pending_since",)), 0, ""))
        recorded = sum(self._record_group(delivery_id, group, now)
                       for group in self._transaction_groups(changes))
        self._count_sent(recorded)

    def _transaction_groups(self, changes: list[tuple[LogTransition, int, str]]
                            ) -> Iterator[list[tuple[LogTransition, int, str]]]:
        """The changes in consecutive groups that each fit one transaction with their counters.

        A group's transaction holds its logs, the summary and the acceptance
        counters (one per recipient domain, and the hour's): a claim batch of
        98 with one domain is 101 items, over DynamoDB's 100, so it is
        recorded in two transactions instead of 98 one-log ones.
        """
        group: list[tuple[LogTransition, int, str]] = []
        domains: set[str] = set()  # of the group's accepted messages
        for change in changes:
            step, _, email = change
            added = {domain_of(email)} if step.to_status == statuses.SENT else set()
            if group and len(group) + 2 + acceptance_item_count(domains | added) > MAX_TRANSACTION_ITEMS:
                yield group
                group, domains = [], set()
            group.append(change)
            domains |= added
        if group:
            yield group

    def _record_group(self, delivery_id: str, changes: list[tuple[LogTransition, int, str]], now: int) -> int:
        """One transaction for the group; where an SES event got to a log first, log by log. Returns the
        messages recorded as accepted by SES."""
        accepted = [(size, email) for change, size, email in changes if change.to_status == statuses.SENT]
        progress = {"last_progress_at": now, "last_sent_at": now, "blocked": None} if accepted else {
            "last_progress_at": now}
        if self.store.transition(
                delivery_id, [change for change, _, _ in changes], now, summary_values=progress,
                summary_add=self._accepted(size for size, _ in accepted),
                summary_set_once={"first_sent_at": now} if accepted else None,
                extra_items=self._acceptance_items(delivery_id, accepted, now)):
            return len(accepted)
        recorded = 0
        for change, size, email in changes:
            accepted_here = change.to_status == statuses.SENT
            if self.store.transition(delivery_id, [change], now, summary_values={"last_progress_at": now},
                                     summary_add=self._accepted([size] if accepted_here else []),
                                     summary_set_once={"first_sent_at": now} if accepted_here else None,
                                     extra_items=self._acceptance_items(delivery_id, [(size, email)], now)
                                     if accepted_here else ()):
                recorded += accepted_here
            elif accepted_here:
                recorded += self._record_accept_only(delivery_id, change, size, email, now)
        return recorded

    def _acceptance_items(self, delivery_id: str, accepted: list[tuple[int, str]], now: int) -> list[dict[str, Any]]:
        """The counters SES's acceptance moves besides the delivery's, written in the same transaction:
        sent per recipient domain (data/domain_stats.py) and the hour's messages and bytes (data/throughput.py);
        acceptance_item_count says how many without making them."""
        if not accepted:
            return []
        table, expires = self.settings.tracking_stats_table, expiry(now, self.settings.tracking_retention_days)
        per_domain: dict[str, int] = {}
        for _, email in accepted:
            per_domain[domain_of(email)] = per_domain.get(domain_of(email), 0) + 1
        items = [counter_update(table, delivery_id, domain_stat(domain), {"sent": count}, expires)
                 for domain, count in sorted(per_domain.items())]
        items.append(throughput.hour_update(table, now, len(accepted), sum(size for size, _ in accepted), expires))
        return items

    def _record_accept_only(self, delivery_id: str, change: LogTransition, size: int, email: str, now: int) -> bool:
        """An SES event moved the log before us: keep its status, record SES's acceptance once.

        The log is read again with the chunk's own Query (a range of one id).
        """
        log = next(iter(self.store.chunk_logs(delivery_id, change.log_id, change.log_id)), {})
        status = log.get("status")
        if status in (None, statuses.PREPARED, statuses.PENDING) or log.get("sent_at"):
            return False
        values = {"sent_at": now, "size": size}
        if not log.get("message_id"):
            values["message_id"] = change.values["message_id"]
        return self.store.transition(delivery_id, [LogTransition(
            change.log_id, status, status, values=values, condition="attribute_not_exists(sent_at)",
            failure=statuses.failure_of(log), previous_failure=statuses.failure_of(log))], now,
            summary_values={"last_sent_at": now}, summary_add=self._accepted([size]),
            summary_set_once={"first_sent_at": now},
            extra_items=self._acceptance_items(delivery_id, [(size, email)], now))

    @staticmethod
    def _accepted(sizes: Iterable[int]) -> dict[str, int]:
        sizes = list(sizes)
        return {"messages_sent": len(sizes), "bytes_sent": sum(sizes)} if sizes else {}

    @staticmethod
    def _count_sent(count: int) -> None:
        if count:
            metrics.emit(metrics.MESSAGES_SENT, count)


def acceptance_item_count(domains: set[str]) -> int:
    """How many counter items SendWorker._acceptance_items writes for messages accepted to `domains`: one
    per recipient domain and the hour's, none when no message was accepted."""
    return len(domains) + 1 if domains else 0


def _account_block(account: dict[str, Any]) -> Optional[tuple[str, str]]:
    """Why the SES account cannot send now (code, message), or None."""
    if account.get("SendingEnabled") is False:
        return "ses_sending_paused", "SES sending is paused for the account"
    quota = account.get("SendQuota") or {}
    maximum, sent = float(quota.get("Max24HourSend", -1)), float(quota.get("SentLast24Hours") or 0)
    if maximum >= 0 and sent >= maximum:
        return "ses_daily_quota", f"the SES daily quota is used up ({sent:g} of {maximum:g} in 24 h)"
    return None


def handle(event: dict[str, Any], context: Any) -> Mapping[str, Any]:
    """The send_worker Lambda (app.py)."""
    from chalicelib.settings import get_settings

    return SendWorker(get_settings()).handle(event, context)
