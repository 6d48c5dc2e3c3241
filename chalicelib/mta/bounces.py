"""What each SES event means for its delivery log: the one mapping table.

Bounces. SES gives a bounce type and subtype, and for each recipient the
enhanced status code (RFC 3463, `status`) and the receiving server's answer
(`diagnosticCode`). The subtype decides, except where SES's subtype is
generic (Permanent/General, Transient/General, Undetermined), where the
status code (or, failing one, the diagnostic code's text) refines it:

    bounce type / subtype                 failure type  reason (code)
    Permanent / General                   refined; no code: hard, unreachable (3)
    Permanent / NoEmail                   hard          user_unknown (1)
    Permanent / Suppressed                hard          quarantined (9)   SES's global suppression list
    Permanent / OnAccountSuppressionList  hard          quarantined (9)   the account's suppression list
    Transient / General                   refined; no code: soft, unreachable (3)
    Transient / MailboxFull               soft          mailbox_full (5)
    Transient / MessageTooLarge           ignored       refused (20)      the message, not the address
    Transient / ContentRejected           ignored       refused (20)      the content, not the address
    Transient / AttachmentRejected        ignored       refused (20)      the attachment, not the address
    Undetermined / Undetermined           refined; no code: soft, unreachable (3)
    any other subtype                     Permanent: hard, unreachable; otherwise soft, unreachable

    enhanced status code (refinement)     failure type  reason
    5.1.1  bad destination mailbox        hard          user_unknown (1)
    5.1.0  other address status           hard          user_unknown (1)
    5.1.6  mailbox has moved              hard          user_unknown (1)
    5.1.2  bad destination system         hard          invalid_domain (2)
    5.1.10 null MX (RFC 7505)             hard          invalid_domain (2)
    5.4.4  unable to route                hard          invalid_domain (2)
    5.2.1  mailbox disabled               hard          account_disabled (4)
    4.2.1  mailbox disabled (for now)     soft          account_disabled (4)
    5.2.2 / 4.2.2  mailbox full           soft          mailbox_full (5)   always soft, as in Campaign
    5.2.3 / 5.3.4  message too large      ignored       refused (20)
    5.7.x / 4.7.x  refused by policy      soft          refused (20)       counts, never quarantines at once
    other 5.x.x                           hard          unreachable (3)
    other 4.x.x                           soft          unreachable (3)
    no code, text "mailbox full", "quota" soft          mailbox_full (5)
    no code, text "user unknown", "no such user", "does not exist"
                                          hard          user_unknown (1)

Other events:

    Send            sent (SES accepted the message; records its message id)
    Delivery        delivered; a clean send for the address (resets its soft errors)
    Complaint       failed, hard, denylisted (8): how Campaign counts complaints; denylists the address
    Reject          failed, ignored, refused (20): SES refused the content (virus)
    Rendering Failure  failed, ignored, refused (20): the message could not be rendered
    DeliveryDelay   sent (SES accepted it); the delay is recorded on the log, no failure
"""

from __future__ import annotations

import re
from typing import Any, Optional

from chalicelib.mta import statuses
from chalicelib.mta.reasons import (
    ACCOUNT_DISABLED,
    DENYLISTED,
    HARD,
    IGNORED,
    INVALID_DOMAIN,
    MAILBOX_FULL,
    QUARANTINED,
    REFUSED,
    SOFT,
    UNREACHABLE,
    USER_UNKNOWN,
    Failure,
)
from chalicelib.mta.ses_events import Recipient, SesEvent, timestamp_ms
from chalicelib.mta.statuses import Outcome

PERMANENT, TRANSIENT, UNDETERMINED = "Permanent", "Transient", "Undetermined"

# (bounce type, subtype) -> (failure type, reason); None: refined by the status code.
SUBTYPES: dict[tuple[str, str], Optional[tuple[str, str]]] = {
    (PERMANENT, "General"): None,
    (PERMANENT, "NoEmail"): (HARD, USER_UNKNOWN),
    (PERMANENT, "Suppressed"): (HARD, QUARANTINED),
    (PERMANENT, "OnAccountSuppressionList"): (HARD, QUARANTINED),
    (TRANSIENT, "General"): None,
    (TRANSIENT, "MailboxFull"): (SOFT, MAILBOX_FULL),
    (TRANSIENT, "MessageTooLarge"): (IGNORED, REFUSED),
    (TRANSIENT, "ContentRejected"): (IGNORED, REFUSED),
    (TRANSIENT, "AttachmentRejected"): (IGNORED, REFUSED),
    (UNDETERMINED, "Undetermined"): None,
}

# Enhanced status codes, most specific first: (prefix, failure type, reason). "5.7." matches 5.7.x.
STATUS_CODES: tuple[tuple[str, str, str], ...] = (
    ("5.1.1", HARD, USER_UNKNOWN),
    ("5.1.0", HARD, USER_UNKNOWN),
    ("5.1.6", HARD, USER_UNKNOWN),
    ("5.1.2", HARD, INVALID_DOMAIN),
    ("5.1.10", HARD, INVALID_DOMAIN),
    ("5.4.4", HARD, INVALID_DOMAIN),
    ("5.2.1", HARD, ACCOUNT_DISABLED),
    ("4.2.1", SOFT, ACCOUNT_DISABLED),
    ("5.2.2", SOFT, MAILBOX_FULL),
    ("4.2.2", SOFT, MAILBOX_FULL),
    ("5.2.3", IGNORED, REFUSED),
    ("5.3.4", IGNORED, REFUSED),
    ("5.7.", SOFT, REFUSED),
    ("4.7.", SOFT, REFUSED),
    ("5.", HARD, UNREACHABLE),
    ("4.", SOFT, UNREACHABLE),
)

TEXT_HINTS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"mailbox (is )?full|over quota|quota exceeded|insufficient storage", re.I), SOFT, MAILBOX_FULL),
    (re.compile(r"user unknown|unknown user|no such (user|recipient|mailbox)|does not exist|"
                r"recipient address rejected", re.I), HARD, USER_UNKNOWN),
)

_ENHANCED_CODE = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


def enhanced_status_code(recipient: Optional[Recipient]) -> Optional[str]:
    """The recipient's RFC 3463 code: SES's `status`, or the first one in the diagnostic code."""
    if recipient is None:
        return None
    for text in (recipient.status, recipient.diagnostic_code):
        match = _ENHANCED_CODE.search(text or "")
        if match:
            return match.group(1)
    return None


def _by_status_code(code: str) -> tuple[str, str]:
    for prefix, failure_type, reason in STATUS_CODES:
        if code == prefix or (prefix.endswith(".") and code.startswith(prefix)):
            return failure_type, reason
    return (HARD, UNREACHABLE) if code.startswith("5.") else (SOFT, UNREACHABLE)


def classify_bounce(bounce_type: str, sub_type: str, recipient: Optional[Recipient]) -> tuple[str, str]:
    """(failure type, reason) of one bounced recipient, by the table above."""
    fixed = SUBTYPES.get((bounce_type, sub_type), "unknown")
    if fixed == "unknown":
        return (HARD, UNREACHABLE) if bounce_type == PERMANENT else (SOFT, UNREACHABLE)
    if fixed is not None:
        return fixed  # type: ignore[return-value]
    code = enhanced_status_code(recipient)
    if code:
        return _by_status_code(code)
    text = (recipient.diagnostic_code if recipient else "") or ""
    for pattern, failure_type, reason in TEXT_HINTS:
        if pattern.search(text):
            return failure_type, reason
    return (HARD, UNREACHABLE) if bounce_type == PERMANENT else (SOFT, UNREACHABLE)


def _recipient(recipients: list[Recipient], address: Optional[str]) -> Optional[Recipient]:
    """The recipient the event names for this message's address (one recipient per message)."""
    wanted = (address or "").strip().lower()
    for recipient in recipients:
        if recipient.email_address.strip().lower() == wanted:
            return recipient
    return recipients[0] if recipients else None


def _effect(failure: Failure) -> Optional[str]:
    return {HARD: "hard", SOFT: "soft"}.get(failure.type)


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value not in (None, "")}


def outcome(event: SesEvent, address: Optional[str], now_ms: int) -> Optional[Outcome]:
    """What `event` means for the log of the message sent to `address`; None for events sendtrail ignores."""
    mail_at = timestamp_ms(event.mail.timestamp) or now_ms
    kind = event.event_type
    if kind == "Send":
        return Outcome(kind, statuses.SENT, mail_at)
    if kind == "Delivery" and event.delivery is not None:
        at = timestamp_ms(event.delivery.timestamp) or now_ms
        return Outcome(kind, statuses.DELIVERED, at, effect="clean", values=_compact({
            "delivered_at": at, "smtp_response": event.delivery.smtp_response,
            "reporting_mta": event.delivery.reporting_mta}))
    if kind == "Bounce" and event.bounce is not None:
        bounce = event.bounce
        at = timestamp_ms(bounce.timestamp) or now_ms
        recipient = _recipient(bounce.bounced_recipients, address)
        failure_type, reason = classify_bounce(bounce.bounce_type, bounce.bounce_sub_type, recipient)
        detail = (recipient.diagnostic_code if recipient else None) or f"{bounce.bounce_type}/{bounce.bounce_sub_type}"
        failure = Failure(failure_type, reason, detail[:500])
        return Outcome(kind, statuses.FAILED, at, failure=failure, effect=_effect(failure), values=_compact({
            "failed_at": at, "bounce_type": bounce.bounce_type, "bounce_sub_type": bounce.bounce_sub_type,
            "bounce_status": enhanced_status_code(recipient), "reporting_mta": bounce.reporting_mta}))
    if kind == "Complaint" and event.complaint is not None:
        at = timestamp_ms(event.complaint.timestamp) or now_ms
        feedback = event.complaint.feedback_type or event.complaint.sub_type or "unspecified"
        return Outcome(kind, statuses.FAILED, at, failure=Failure(HARD, DENYLISTED, f"complaint: {feedback}"),
                       effect="complaint", values=_compact({"failed_at": at, "complaint_feedback_type": feedback}))
    if kind == "Reject":
        reason = event.reject.reason if event.reject else ""
        return Outcome(kind, statuses.FAILED, mail_at, failure=Failure(IGNORED, REFUSED, f"rejected by SES: {reason}"),
                       values={"failed_at": mail_at})
    if kind == "Rendering Failure":
        message = event.failure.error_message if event.failure else ""
        return Outcome(kind, statuses.FAILED, mail_at,
                       failure=Failure(IGNORED, REFUSED, f"rendering failure: {message}"[:500]),
                       values={"failed_at": mail_at})
    if kind == "DeliveryDelay" and event.delivery_delay is not None:
        delay = event.delivery_delay
        at = timestamp_ms(delay.timestamp) or now_ms
        recipient = _recipient(delay.delayed_recipients, address)
        return Outcome(kind, statuses.SENT, at, delay_at=at, values=_compact({
            "delayed_at": at, "delay_type": delay.delay_type,
            "delay_detail": (recipient.diagnostic_code if recipient else None)}))
    return None
