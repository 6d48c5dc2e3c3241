"""Every SES bounce type, subtype and status code maps to Campaign's failure type and reason; every event's meaning.

The expectations are written out here, row by row, rather than read from
chalicelib/mta/bounces.py's table, so a change to the table shows up as a
failing row.
"""

from __future__ import annotations

from typing import Any, Optional

import pytest

from chalicelib.mta import bounces
from chalicelib.mta.reasons import REASON_CODES
from chalicelib.mta.ses_events import Recipient, SesEvent
from infra.local_runtime import ses_events as build

AT = 1_796_000_000.0
MAIL = {"timestamp": build.iso(AT), "messageId": "m-1", "destination": ["ann@example.net"],
        "tags": {"delivery_id": ["0011223344556677"], "log_id": ["3"]}}


def recipient(status: Optional[str] = None, diagnostic: Optional[str] = None) -> Recipient:
    return Recipient.model_validate({"emailAddress": "ann@example.net", "status": status,
                                     "diagnosticCode": diagnostic})


@pytest.mark.parametrize(("bounce_type", "sub_type", "expected"), [
    ("Permanent", "General", ("hard", "unreachable")),  # no status code: refined to nothing more precise
    ("Permanent", "NoEmail", ("hard", "user_unknown")),
    ("Permanent", "Suppressed", ("hard", "quarantined")),
    ("Permanent", "OnAccountSuppressionList", ("hard", "quarantined")),
    ("Transient", "General", ("soft", "unreachable")),
    ("Transient", "MailboxFull", ("soft", "mailbox_full")),
    ("Transient", "MessageTooLarge", ("ignored", "refused")),
    ("Transient", "ContentRejected", ("ignored", "refused")),
    ("Transient", "AttachmentRejected", ("ignored", "refused")),
    ("Undetermined", "Undetermined", ("soft", "unreachable")),
    ("Permanent", "SomethingNew", ("hard", "unreachable")),
    ("Transient", "SomethingNew", ("soft", "unreachable")),
])
def test_every_subtype_without_a_status_code(bounce_type: str, sub_type: str, expected: tuple[str, str]) -> None:
    assert bounces.classify_bounce(bounce_type, sub_type, recipient()) == expected


@pytest.mark.parametrize(("bounce_type", "status", "expected"), [
    ("Permanent", "5.1.1", ("hard", "user_unknown")),
    ("Permanent", "5.1.0", ("hard", "user_unknown")),
    ("Permanent", "5.1.6", ("hard", "user_unknown")),
    ("Permanent", "5.1.2", ("hard", "invalid_domain")),
    ("Permanent", "5.1.10", ("hard", "invalid_domain")),
    ("Permanent", "5.4.4", ("hard", "invalid_domain")),
    ("Permanent", "5.2.1", ("hard", "account_disabled")),
    ("Transient", "4.2.1", ("soft", "account_disabled")),
    ("Permanent", "5.2.2", ("soft", "mailbox_full")),  # mailbox full is soft, as in Campaign
    ("Transient", "4.2.2", ("soft", "mailbox_full")),
    ("Permanent", "5.2.3", ("ignored", "refused")),
    ("Permanent", "5.3.4", ("ignored", "refused")),
    ("Permanent", "5.7.1", ("soft", "refused")),
    ("Transient", "4.7.0", ("soft", "refused")),
    ("Permanent", "5.4.1", ("hard", "unreachable")),
    ("Transient", "4.4.7", ("soft", "unreachable")),
    ("Undetermined", "5.1.1", ("hard", "user_unknown")),
    ("Transient", "5.1.1", ("hard", "user_unknown")),
])
def test_generic_subtypes_are_refined_by_the_status_code(bounce_type: str, status: str,
                                                         expected: tuple[str, str]) -> None:
    sub_type = "Undetermined" if bounce_type == "Undetermined" else "General"
    assert bounces.classify_bounce(bounce_type, sub_type, recipient(status=status)) == expected


@pytest.mark.parametrize(("diagnostic", "expected"), [
    ("smtp; 550 5.1.1 <ann@example.net>: Recipient address rejected: User unknown", ("hard", "user_unknown")),
    ("smtp; 552 5.2.2 Mailbox full", ("soft", "mailbox_full")),
    ("smtp; 554 4.4.7 Message expired: unable to deliver in 840 minutes", ("soft", "unreachable")),
    ("smtp; 550 mailbox is full", ("soft", "mailbox_full")),  # no code: the text decides
    ("smtp; 550 no such user here", ("hard", "user_unknown")),
    ("smtp; 550 go away", ("hard", "unreachable")),
])
def test_the_diagnostic_code_is_read_when_ses_gives_no_status(diagnostic: str, expected: tuple[str, str]) -> None:
    assert bounces.classify_bounce("Permanent", "General", recipient(diagnostic=diagnostic)) == expected


def test_a_subtype_decides_over_the_status_code() -> None:
    assert bounces.classify_bounce("Permanent", "NoEmail", recipient(status="5.7.1")) == ("hard", "user_unknown")
    assert bounces.classify_bounce("Transient", "MailboxFull", recipient(status="4.4.7")) == ("soft", "mailbox_full")


def test_every_reason_has_campaigns_code() -> None:
    assert REASON_CODES == {"user_unknown": 1, "invalid_domain": 2, "unreachable": 3, "account_disabled": 4,
                            "mailbox_full": 5, "not_connected": 6, "address_not_specified": 7, "denylisted": 8,
                            "quarantined": 9, "duplicate": 10, "refused": 20, "error_ignored": 25,
                            "invalid_content": 30}


def event(document: dict[str, Any]) -> SesEvent:
    return SesEvent.model_validate(document)


def test_the_meaning_of_every_event_type() -> None:
    now = int(AT * 1000) + 99_000
    cases = {
        "Send": build.send_event(MAIL),
        "Delivery": build.delivery_event(MAIL, AT + 1),
        "Bounce": build.bounce_event(MAIL, AT + 2, "Permanent", "General", "5.1.1", "smtp; 550 5.1.1 user unknown"),
        "Complaint": build.complaint_event(MAIL, AT + 3),
        "Reject": build.reject_event(MAIL),
        "Rendering Failure": build.rendering_failure_event(MAIL),
        "DeliveryDelay": build.delivery_delay_event(MAIL, AT + 4),
    }
    seen = {}
    for name, document in cases.items():
        outcome = bounces.outcome(event(document), "ann@example.net", now)
        assert outcome is not None and outcome.event == name
        failure = (outcome.failure.type, outcome.failure.reason) if outcome.failure else None
        seen[name] = (outcome.status, failure, outcome.effect, outcome.at_ms)
    assert seen == {
        "Send": ("sent", None, None, int(AT * 1000)),
        "Delivery": ("delivered", None, "clean", int((AT + 1) * 1000)),
        "Bounce": ("failed", ("hard", "user_unknown"), "hard", int((AT + 2) * 1000)),
        "Complaint": ("failed", ("hard", "denylisted"), "complaint", int((AT + 3) * 1000)),
        "Reject": ("failed", ("ignored", "refused"), None, int(AT * 1000)),
        "Rendering Failure": ("failed", ("ignored", "refused"), None, int(AT * 1000)),
        "DeliveryDelay": ("sent", None, None, int((AT + 4) * 1000)),
    }
    delay = bounces.outcome(event(cases["DeliveryDelay"]), "ann@example.net", now)
    assert delay is not None and delay.delay_at == int((AT + 4) * 1000)
    assert delay.values["delay_type"] == "TransientCommunicationFailure"
    bounce = bounces.outcome(event(cases["Bounce"]), "ann@example.net", now)
    assert bounce is not None and bounce.failure is not None
    assert bounce.failure.detail == "smtp; 550 5.1.1 user unknown" and bounce.values["bounce_status"] == "5.1.1"


def test_events_sendtrail_does_not_consume_mean_nothing() -> None:
    opened = {"eventType": "Open", "mail": MAIL, "open": {"timestamp": build.iso(AT)}}
    assert bounces.outcome(event(opened), "ann@example.net", 0) is None


def test_the_bounced_recipient_is_the_messages_address() -> None:
    document = build.bounce_event(MAIL, AT, "Permanent", "General", "5.1.1")
    document["bounce"]["bouncedRecipients"].insert(0, {"emailAddress": "other@example.net", "status": "5.2.2"})
    outcome = bounces.outcome(event(document), "ANN@example.net", 0)
    assert outcome is not None and outcome.failure is not None and outcome.failure.reason == "user_unknown"
