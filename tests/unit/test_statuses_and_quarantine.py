"""Status precedence (duplicates, out-of-order events) and the quarantine rules, with time travel."""

from __future__ import annotations

import itertools
from typing import Any, Optional

import pytest

from chalicelib.mta import quarantine, statuses
from chalicelib.mta.quarantine import DAY_MS, AddressState
from chalicelib.mta.reasons import Failure
from chalicelib.mta.statuses import Outcome

T0 = 1_796_000_000_000

SEND = Outcome("Send", "sent", T0)
DELIVERY = Outcome("Delivery", "delivered", T0 + 1000, effect="clean")
HARD_BOUNCE = Outcome("Bounce", "failed", T0 + 2000, failure=Failure("hard", "user_unknown"), effect="hard")
SOFT_BOUNCE = Outcome("Bounce", "failed", T0 + 2000, failure=Failure("soft", "mailbox_full"), effect="soft")
COMPLAINT = Outcome("Complaint", "failed", T0 + 3000, failure=Failure("hard", "denylisted"), effect="complaint")
REJECT = Outcome("Reject", "failed", T0, failure=Failure("ignored", "refused"))
DELAY = Outcome("DeliveryDelay", "sent", T0 + 500, delay_at=T0 + 500)


def apply(log: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    """What the consumer writes when an outcome applies (chalicelib/mta/events.py), in memory."""
    if not statuses.applies(log, outcome):
        return log
    following = {**log, "status": outcome.status, "message_id": "m-1"}
    if outcome.failure:
        following.update(failure_type=outcome.failure.type, failure_reason=outcome.failure.reason)
    if outcome.delay_at:
        following["delayed_at"] = outcome.delay_at
    return following


@pytest.mark.parametrize(("log", "outcome", "applies"), [
    ({"status": "pending"}, SEND, True),
    ({"status": "pending"}, DELIVERY, True),  # the event came before the worker recorded the send
    ({"status": "prepared"}, HARD_BOUNCE, True),
    ({"status": "sent"}, SEND, False),  # a duplicate
    ({"status": "sent"}, DELIVERY, True),
    ({"status": "delivered"}, DELIVERY, False),
    ({"status": "delivered"}, SEND, False),
    ({"status": "delivered"}, HARD_BOUNCE, True),  # an asynchronous bounce fails a delivered message
    ({"status": "delivered"}, COMPLAINT, True),
    ({"status": "failed", "failure_type": "hard", "failure_reason": "user_unknown"}, DELIVERY, False),
    ({"status": "failed", "failure_type": "hard", "failure_reason": "user_unknown"}, HARD_BOUNCE, False),
    ({"status": "failed", "failure_type": "hard", "failure_reason": "user_unknown"}, COMPLAINT, True),
    ({"status": "failed", "failure_type": "soft", "failure_reason": "mailbox_full"}, HARD_BOUNCE, True),
    ({"status": "failed", "failure_type": "hard", "failure_reason": "user_unknown"}, SOFT_BOUNCE, False),
    ({"status": "failed", "failure_type": "ignored", "failure_reason": "refused"}, SOFT_BOUNCE, True),
    ({"status": "failed", "failure_type": "hard", "failure_reason": "denylisted"}, HARD_BOUNCE, False),
    ({"status": "sent"}, DELAY, True),
    ({"status": "sent", "delayed_at": T0 + 500}, DELAY, False),  # the same delay again
    ({"status": "sent", "delayed_at": T0 + 900}, DELAY, False),  # an older delay
    ({"status": "delivered"}, DELAY, False),
    ({"status": "ignored"}, DELIVERY, False),
    ({"status": "canceled"}, HARD_BOUNCE, False),
    ({"status": "failed", "failure_type": "ignored", "failure_reason": "error_ignored"}, SEND, True),  # lost send
    ({"status": "failed", "failure_type": "ignored", "failure_reason": "error_ignored", "message_id": "m"},
     SEND, False),
])
def test_precedence(log: dict[str, Any], outcome: Outcome, applies: bool) -> None:
    assert statuses.applies(log, outcome) is applies


@pytest.mark.parametrize(("events", "final"), [
    ((SEND, DELIVERY, HARD_BOUNCE), ("failed", "hard", "user_unknown")),
    ((SEND, DELIVERY, COMPLAINT), ("failed", "hard", "denylisted")),
    ((SEND, DELAY, DELIVERY), ("delivered", None, None)),
    ((SEND, SOFT_BOUNCE, HARD_BOUNCE), ("failed", "hard", "user_unknown")),
    ((SEND, REJECT), ("failed", "ignored", "refused")),
])
def test_every_arrival_order_ends_in_the_same_state(events: tuple[Outcome, ...],
                                                    final: tuple[str, Optional[str], Optional[str]]) -> None:
    for order in itertools.permutations(events):
        log: dict[str, Any] = {"status": "pending"}
        for outcome in order + order:  # and each one delivered twice
            log = apply(log, outcome)
        assert (log["status"], log.get("failure_type"), log.get("failure_reason")) == final, order


# --- quarantine --------------------------------------------------------------

def soft(state: AddressState, at: int) -> AddressState:
    return quarantine.on_soft_error(state, "mailbox_full", at, "d1") or state


def test_a_hard_error_quarantines_at_once() -> None:
    state = quarantine.on_hard_error(AddressState(), "user_unknown", T0, "d1")
    assert state is not None
    assert (state.status, state.reason, state.since, state.error_count, state.delivery_id) == (
        "quarantined", "user_unknown", T0, 1, "d1")
    assert quarantine.on_hard_error(state, "invalid_domain", T0 + DAY_MS, "d2") is None  # already quarantined


def test_five_soft_errors_a_day_apart_quarantine_the_fifth_day() -> None:
    state = AddressState()
    for day in range(4):
        state = soft(state, T0 + day * DAY_MS)
        assert (state.status, state.error_count) == ("valid", day + 1)
    state = soft(state, T0 + 4 * DAY_MS)
    assert (state.status, state.reason, state.error_count, state.since) == (
        "quarantined", "mailbox_full", 5, T0 + 4 * DAY_MS)


def test_soft_errors_less_than_a_day_apart_count_once() -> None:
    state = AddressState()
    for hour in range(0, 24 * 5, 6):  # every 6 hours for 5 days: 20 errors
        state = soft(state, T0 + hour * 3_600_000)
        if hour < 96:
            assert state.status == "valid" and state.error_count == hour // 24 + 1, hour
    # counted: hours 0, 24, 48, 72 and 96, the fifth
    assert (state.status, state.error_count, state.since) == ("quarantined", 5, T0 + 96 * 3_600_000)
    early = soft(soft(AddressState(), T0), T0 + DAY_MS - 1)
    assert (early.error_count, early.last_counted_at, early.last_error_at) == (1, T0, T0 + DAY_MS - 1)


def test_ten_days_without_error_start_the_count_again() -> None:
    state = AddressState()
    for day in range(4):
        state = soft(state, T0 + day * DAY_MS)
    assert state.error_count == 4
    assert state.error_count_at(T0 + 3 * DAY_MS + 10 * DAY_MS - 1) == 4
    assert state.error_count_at(T0 + 3 * DAY_MS + 10 * DAY_MS) == 0  # what the list shows after 10 days
    later = soft(state, T0 + 3 * DAY_MS + 10 * DAY_MS)
    assert (later.status, later.error_count) == ("valid", 1)
    for day in range(1, 4):
        later = soft(later, T0 + 13 * DAY_MS + day * DAY_MS)
    assert (later.status, later.error_count) == ("valid", 4)


def test_a_clean_send_resets_the_count_unless_an_error_came_after_it() -> None:
    state = soft(soft(AddressState(), T0), T0 + DAY_MS)
    assert quarantine.on_clean_send(state, T0 + DAY_MS - 5) is None  # delivered before the last error
    cleaned = quarantine.on_clean_send(state, T0 + DAY_MS + 5)
    assert cleaned is not None and (cleaned.error_count, cleaned.status) == (0, "valid")
    assert quarantine.on_clean_send(cleaned, T0 + 2 * DAY_MS) is None  # nothing to reset: no write
    again = soft(cleaned, T0 + DAY_MS + 10)  # counts at once after a reset
    assert again.error_count == 1


def test_a_complaint_denylists_whatever_the_address_was() -> None:
    quarantined = quarantine.on_hard_error(AddressState(), "user_unknown", T0, "d1")
    assert quarantined is not None
    denylisted = quarantine.on_complaint(quarantined, T0 + 5, "d2")
    assert denylisted is not None
    assert (denylisted.status, denylisted.reason, denylisted.since, denylisted.delivery_id) == (
        "denylisted", "denylisted", T0 + 5, "d2")
    assert quarantine.on_complaint(denylisted, T0 + 9, "d3") is None
    assert quarantine.on_hard_error(denylisted, "user_unknown", T0 + 9, "d3") is None
    assert quarantine.on_soft_error(denylisted, "mailbox_full", T0 + 9, "d3") is None
    assert quarantine.on_clean_send(denylisted, T0 + 9) is None


def test_the_stored_item_round_trips() -> None:
    item = {"quarantine_status": "quarantined", "quarantine_reason": "user_unknown", "quarantine_since": T0,
            "quarantine_delivery": "d1", "error_count": 2, "last_error_at": T0, "last_counted_error_at": T0,
            "version": 7}
    assert AddressState.from_item(item) == AddressState("quarantined", "user_unknown", T0, 2, T0, T0, "d1", 7)
    assert AddressState.from_item(None) == AddressState()
