"""A delivery log's status, and the precedence that resolves duplicate and out-of-order SES events.

Statuses (Campaign's, shared/reference/tracking-domain.md):

    prepared   created, waiting to be sent
    pending    claimed by a send worker: SES is being (or was just) asked to send it
    sent       SES accepted it (the log has SES's message id)
    delivered  the receiving server took it ("taken into account by the service provider")
    failed     bounced, complained about, refused, or not buildable (failure_type, failure_reason)
    ignored    never sent: quarantined, denylisted, duplicate or invalid address
    canceled   never sent: the delivery was stopped first

SES publishes events at least once and in no guaranteed order. A log moves
only forward, by this precedence:

    prepared < pending < sent < delivered < failed

so a duplicate changes nothing, a late Send or Delivery never overrides a
Bounce or a Complaint, and a Bounce that arrives after the Delivery (an
asynchronous bounce) does fail the message. Between two failures the
stronger one wins: complaint (denylisted) > hard > soft > ignored. A
DeliveryDelay is no status of its own: it proves SES accepted the message
(pending -> sent) and records the latest delay on a sent log.

Ignored and canceled logs were never sent: events cannot concern them and
change nothing. One exception to "forward only": a log failed as
`error_ignored` because the worker lost SES's answer and no Send event came
(worker.py) yields to any later SES evidence of that message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from chalicelib.mta.reasons import DENYLISTED, ERROR_IGNORED, HARD, IGNORED, SOFT, Failure

PREPARED = "prepared"
PENDING = "pending"
SENT = "sent"
DELIVERED = "delivered"
FAILED = "failed"
IGNORED_STATUS = "ignored"
CANCELED = "canceled"

STATUSES = (PREPARED, PENDING, SENT, DELIVERED, FAILED, IGNORED_STATUS, CANCELED)
NEVER_SENT = frozenset({IGNORED_STATUS, CANCELED})
RANK = {PREPARED: 0, PENDING: 1, SENT: 2, DELIVERED: 3, FAILED: 4}
FAILURE_RANK = {IGNORED: 0, SOFT: 1, HARD: 2}
COMPLAINT_RANK = 3  # a complaint (failed, denylisted) outranks every other failure


@dataclass(frozen=True)
class Outcome:
    """What one SES event says about its message.

    `status` is where the log should go; `failure` goes with `failed`;
    `values` are attributes to record on the log (timestamps, SMTP answers,
    diagnostic codes); `effect` is what it means for the address
    (quarantine.py): "hard", "soft", "complaint", "clean" or None;
    `delay_at` marks a DeliveryDelay, recorded on a sent log when newer.
    """

    event: str
    status: str
    at_ms: int
    failure: Optional[Failure] = None
    values: Mapping[str, Any] = field(default_factory=dict)
    effect: Optional[str] = None
    delay_at: Optional[int] = None


def failure_rank(failure_type: Optional[str], failure_reason: Optional[str]) -> int:
    if failure_reason == DENYLISTED and failure_type == HARD:
        return COMPLAINT_RANK
    return FAILURE_RANK.get(failure_type or IGNORED, 0)


def failure_of(log: Mapping[str, Any]) -> Optional[tuple[str, str]]:
    """A log's (failure type, reason), or None."""
    if log.get("failure_type") and log.get("failure_reason"):
        return log["failure_type"], log["failure_reason"]
    return None


def _lost_send(log: Mapping[str, Any]) -> bool:
    return (log.get("status") == FAILED and log.get("failure_reason") == ERROR_IGNORED
            and not log.get("message_id"))


def applies(log: Mapping[str, Any], outcome: Outcome) -> bool:
    """Whether `outcome` changes `log` (False: a duplicate, or overridden by what the log already says)."""
    status = log.get("status", PREPARED)
    if status in NEVER_SENT:
        return False
    if _lost_send(log):
        return True
    current, target = RANK[status], RANK[outcome.status]
    if target != current:
        return target > current
    if status == FAILED:
        # bandit B101 (assert): it narrows the type; a failed outcome always carries its failure.
        assert outcome.failure is not None  # nosec B101
        return (failure_rank(outcome.failure.type, outcome.failure.reason)
                > failure_rank(log.get("failure_type"), log.get("failure_reason")))
    if outcome.delay_at is not None and status == SENT:
        return outcome.delay_at > int(log.get("delayed_at") or 0)
    return False
