"""Quarantine: which addresses later deliveries skip, by Campaign's rules.

    hard error       the address is quarantined at once (reason: the error's)
    soft error       counts one error; errors less than a day after the last
                     counted one count once; at 5 the address is quarantined
    10 days without  the count starts again from zero
      any error
    clean send       (a Delivery newer than the last error) resets the count
    complaint        the address is denylisted (reason denylisted), whatever it was

Quarantined and denylisted addresses stay so (nothing sent to them can clear
them); the denylist outranks quarantine. Every decision is taken at the
event's own time (SES's timestamp), not at the time it is processed, so
events processed late or out of order count as they happened; `now` (an
injectable clock) only decides what an error count reads as today.

The functions are pure: an AddressState in, the next one out (or None when
nothing changes, so a duplicate writes nothing).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Optional

from chalicelib.mta.reasons import DENYLISTED

DAY_MS = 86_400_000
SOFT_ERRORS_TO_QUARANTINE = 5
SOFT_ERROR_SPACING_MS = DAY_MS
RESET_AFTER_MS = 10 * DAY_MS

VALID = "valid"
QUARANTINED = "quarantined"
DENYLISTED_STATUS = "denylisted"
EXCLUDED = frozenset({QUARANTINED, DENYLISTED_STATUS})

Clock = Callable[[], float]


def now_ms(clock: Clock = time.time) -> int:
    return int(clock() * 1000)


@dataclass(frozen=True)
class AddressState:
    status: str = VALID
    reason: Optional[str] = None
    since: Optional[int] = None  # when it was quarantined or denylisted
    error_count: int = 0
    last_error_at: Optional[int] = None  # the latest error, counted or not
    last_counted_at: Optional[int] = None  # the latest error that counted
    delivery_id: Optional[str] = None  # the delivery whose message caused the quarantine
    version: int = 0  # optimistic concurrency: the stored item's version

    @classmethod
    def from_item(cls, item: Optional[Mapping[str, Any]]) -> "AddressState":
        if not item:
            return cls()
        return cls(
            status=item.get("quarantine_status") or VALID,
            reason=item.get("quarantine_reason"),
            since=item.get("quarantine_since"),
            error_count=int(item.get("error_count") or 0),
            last_error_at=item.get("last_error_at"),
            last_counted_at=item.get("last_counted_error_at"),
            delivery_id=item.get("quarantine_delivery"),
            version=int(item.get("version") or 0),
        )

    @property
    def excluded(self) -> bool:
        return self.status in EXCLUDED

    def error_count_at(self, at_ms: int) -> int:
        """The soft-error count as it stands at `at_ms` (zero after 10 days without error)."""
        if self.last_error_at is not None and at_ms - self.last_error_at >= RESET_AFTER_MS:
            return 0
        return self.error_count


def on_hard_error(state: AddressState, reason: str, at_ms: int, delivery_id: str) -> Optional[AddressState]:
    if state.excluded:
        return None
    return replace(state, status=QUARANTINED, reason=reason, since=at_ms, delivery_id=delivery_id,
                   error_count=state.error_count_at(at_ms) + 1, last_error_at=_latest(state.last_error_at, at_ms),
                   last_counted_at=_latest(state.last_counted_at, at_ms))


def on_soft_error(state: AddressState, reason: str, at_ms: int, delivery_id: str) -> Optional[AddressState]:
    if state.excluded:
        return None
    count, last_counted = state.error_count_at(at_ms), state.last_counted_at
    if count == 0:
        last_counted = None
    counts = last_counted is None or at_ms - last_counted >= SOFT_ERROR_SPACING_MS
    if counts:
        count, last_counted = count + 1, at_ms
    following = replace(state, error_count=count, last_counted_at=last_counted,
                        last_error_at=_latest(state.last_error_at, at_ms))
    if count >= SOFT_ERRORS_TO_QUARANTINE:
        return replace(following, status=QUARANTINED, reason=reason, since=at_ms, delivery_id=delivery_id)
    return following if following != state else None


def on_complaint(state: AddressState, at_ms: int, delivery_id: str) -> Optional[AddressState]:
    if state.status == DENYLISTED_STATUS:
        return None
    return replace(state, status=DENYLISTED_STATUS, reason=DENYLISTED, since=at_ms, delivery_id=delivery_id)


def on_clean_send(state: AddressState, at_ms: int) -> Optional[AddressState]:
    """A delivered message resets the soft-error count, unless an error came after it."""
    if state.excluded or state.error_count == 0:
        return None
    if state.last_error_at is not None and at_ms <= state.last_error_at:
        return None
    return replace(state, error_count=0, last_counted_at=None)


def apply_effect(state: AddressState, effect: Optional[str], reason: Optional[str], at_ms: int,
                 delivery_id: str) -> Optional[AddressState]:
    """The next state for an SES outcome's effect ("hard", "soft", "complaint", "clean"); None: unchanged."""
    if effect == "hard":
        return on_hard_error(state, reason or "", at_ms, delivery_id)
    if effect == "soft":
        return on_soft_error(state, reason or "", at_ms, delivery_id)
    if effect == "complaint":
        return on_complaint(state, at_ms, delivery_id)
    if effect == "clean":
        return on_clean_send(state, at_ms)
    return None


def _latest(previous: Optional[int], at_ms: int) -> int:
    return at_ms if previous is None else max(previous, at_ms)
