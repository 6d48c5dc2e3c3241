"""The SES events consumer: SNS -> SQS -> here; every event keeps one delivery log true.

Each SQS record is an SNS notification whose Message is one SES event
(ses_events.py). The event names its message's delivery log by the tags the
send worker put on the message (delivery_id, log_id), so one GetItem finds
it. The event applies when the log accepts it (statuses.py: precedence,
duplicates); its meaning comes from the mapping table (bounces.py); its
effect on the address from the quarantine rules (quarantine.py). The log,
the delivery's counters and the address change in one transaction,
conditioned on what was read, so an event is applied once and completely,
or not at all and retried (another event for the same log or address got
there first).

SES's message id is checked against the log's: an event for another message
(a log can hold only the id of the message sent for it) changes nothing. An
event can arrive before the worker recorded the message id (the worker
records a group's results after sending it): the event then records the id
itself, and the worker, finding the log already moved, only adds its
acceptance (worker.py). Records are processed with Powertools' batch
processor: a record that fails returns to the queue alone, and after five
attempts goes to the dead-letter queue.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping, Optional

from chalicelib import metrics
from chalicelib.data import domain_stats
from chalicelib.data.addresses import AddressStore
from chalicelib.data.deliveries import DeliveryStore, LogTransition
from chalicelib.mta import bounces, quarantine, statuses
from chalicelib.mta.reasons import HARD, SOFT
from chalicelib.mta.recipients import normalise
from chalicelib.mta.ses_events import SesEvent, parse_notification
from chalicelib.settings import Settings

logger = logging.getLogger("sendtrail.mta.events")
ATTEMPTS = 6
FAILURE_FIELDS = ("failure_type", "failure_reason", "failure_detail")


class EventConflict(RuntimeError):
    """The event kept racing with other writes to its log or address: it goes back to the queue."""


class SesEventsConsumer:
    def __init__(self, settings: Settings, store: Optional[DeliveryStore] = None,
                 addresses: Optional[AddressStore] = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store or DeliveryStore(settings.deliveries_table, settings.delivery_logs_table)
        self.addresses = addresses or AddressStore(settings.addresses_table)
        self.clock = clock

    def handle(self, event: dict[str, Any], context: Any) -> Mapping[str, Any]:
        """SQS batch in, partial batch response out (Powertools)."""
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

        return process_partial_response(event=event, record_handler=lambda record: self.apply_notification(
            record.body), processor=BatchProcessor(event_type=EventType.SQS), context=context)

    def apply_notification(self, body: str) -> str:
        """Apply the SES event in one SNS notification; returns what happened (for logs and tests)."""
        event = parse_notification(body)
        if event is None:
            return "not an event"
        return self.apply(event)

    def apply(self, event: SesEvent) -> str:
        delivery_id, raw_log_id = event.mail.tag("delivery_id"), event.mail.tag("log_id")
        if not delivery_id or not (raw_log_id or "").isdigit():
            logger.info("SES event for a message sendtrail did not send", extra={"ses_message_id":
                                                                                event.mail.message_id})
            return "not ours"
        log_id = int(raw_log_id)  # type: ignore[arg-type]
        for _ in range(ATTEMPTS):
            log = self.store.get_log(delivery_id, log_id, consistent=True)
            if log is None:
                return "unknown log"
            if log.get("message_id") and log["message_id"] != event.mail.message_id:
                logger.warning("SES event for another message than the log's", extra={
                    "delivery_id": delivery_id, "log_id": log_id, "ses_message_id": event.mail.message_id})
                return "another message"
            now = int(self.clock() * 1000)
            outcome = bounces.outcome(event, log.get("email"), now)
            if outcome is None:
                return f"not consumed: {event.event_type}"
            if not statuses.applies(log, outcome):
                return "no change"
            if self._apply(delivery_id, log, event, outcome, now):
                self._measure(outcome)
                if log.get("status") in (statuses.PREPARED, statuses.PENDING):
                    self.store.finish_if_done(delivery_id, now)
                return f"applied: {outcome.event}"
        raise EventConflict(f"{event.event_type} for delivery {delivery_id} log {log_id} kept conflicting")

    def _apply(self, delivery_id: str, log: dict[str, Any], event: SesEvent, outcome: statuses.Outcome,
               now: int) -> bool:
        previous = statuses.failure_of(log)
        values = dict(outcome.values)
        remove: tuple[str, ...] = ()
        failure = None
        if outcome.failure is not None:
            failure = (outcome.failure.type, outcome.failure.reason)
            values["failure_detail"] = outcome.failure.detail
        elif previous:  # a lost send that SES says went out after all (statuses.py)
            remove = FAILURE_FIELDS
        if not log.get("message_id"):
            values["message_id"] = event.mail.message_id
        change = LogTransition(
            int(log["log_id"]), log.get("status", statuses.PREPARED), outcome.status, values=values, failure=failure,
            previous_failure=previous, remove=remove,
            condition="attribute_not_exists(message_id) OR message_id = :message_id",
            condition_values={":message_id": event.mail.message_id})
        extra = self._address_change(delivery_id, log, outcome)
        deltas = domain_stats.outcome_deltas(change.from_status, previous, change.to_status, failure)
        if deltas:  # the log's domain counts move with the delivery's counts, in the same transaction
            extra.append(domain_stats.counter_update(
                self.settings.tracking_stats_table, delivery_id,
                domain_stats.domain_stat(domain_stats.domain_of(log.get("email"))), deltas,
                domain_stats.expiry(now, self.settings.tracking_retention_days)))
        return self.store.transition(delivery_id, [change], now, summary_values={"last_event_at": now},
                                     extra_items=extra)

    def _address_change(self, delivery_id: str, log: dict[str, Any], outcome: statuses.Outcome) -> list[dict[str, Any]]:
        if not outcome.effect or not log.get("email"):
            return []
        address = normalise(log["email"])
        state = quarantine.AddressState.from_item(self.addresses.get(address, consistent=True))
        reason = outcome.failure.reason if outcome.failure else None
        following = quarantine.apply_effect(state, outcome.effect, reason, outcome.at_ms, delivery_id)
        if following is None:
            return []
        fields = {
            "quarantine_status": following.status if following.excluded else None,
            "quarantine_reason": following.reason if following.excluded else None,
            "quarantine_since": following.since if following.excluded else None,
            "quarantine_delivery": following.delivery_id if following.excluded else None,
            "error_count": following.error_count,
            "last_error_at": following.last_error_at,
            "last_counted_error_at": following.last_counted_at,
            "last_error_reason": reason if outcome.effect in ("hard", "soft") else None,
        }
        if outcome.effect not in ("hard", "soft"):
            del fields["last_error_reason"]
        return [self.addresses.quarantine_update(address, fields, state.version)]

    @staticmethod
    def _measure(outcome: statuses.Outcome) -> None:
        if outcome.event == "Bounce" and outcome.failure and outcome.failure.type in (HARD, SOFT):
            metrics.emit(metrics.BOUNCES, type=outcome.failure.type)
        elif outcome.event == "Complaint":
            metrics.emit(metrics.COMPLAINTS)


def handle(event: dict[str, Any], context: Any) -> Mapping[str, Any]:
    """The ses_events Lambda (app.py)."""
    from chalicelib.settings import get_settings

    return SesEventsConsumer(get_settings()).handle(event, context)
