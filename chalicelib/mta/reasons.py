"""Failure types and reasons, with Campaign's codes (shared/reference/tracking-domain.md).

A failed or ignored delivery log carries a failure type and a reason:

    type     what it does to the address
    hard     quarantines it at once (a complaint denylists it)
    soft     counts one error; five, at least a day apart, quarantine it
    ignored  nothing: the failure says nothing about the address (the
             message was refused for its content, or never sent because the
             address was already excluded, or was a duplicate)

Reasons are named in the API and stored by name; `REASON_CODES` gives the
code a Campaign user knows them by. One reason is sendtrail's own, with a
code Campaign does not use: `invalid_content` (30), a message that could not
be rendered or encoded (Campaign stops such a delivery at its analysis;
sendtrail refuses it at creation, and a message that slips through anyway,
e.g. stored before a rule existed, fails alone instead of holding up the
rest of its chunk).
"""

from __future__ import annotations

from dataclasses import dataclass

HARD, SOFT, IGNORED = "hard", "soft", "ignored"
FAILURE_TYPES = (HARD, SOFT, IGNORED)

USER_UNKNOWN = "user_unknown"
INVALID_DOMAIN = "invalid_domain"
UNREACHABLE = "unreachable"
ACCOUNT_DISABLED = "account_disabled"
MAILBOX_FULL = "mailbox_full"
NOT_CONNECTED = "not_connected"
ADDRESS_NOT_SPECIFIED = "address_not_specified"
DENYLISTED = "denylisted"
QUARANTINED = "quarantined"
DUPLICATE = "duplicate"
REFUSED = "refused"
ERROR_IGNORED = "error_ignored"
INVALID_CONTENT = "invalid_content"

REASON_CODES = {
    USER_UNKNOWN: 1,
    INVALID_DOMAIN: 2,
    UNREACHABLE: 3,
    ACCOUNT_DISABLED: 4,
    MAILBOX_FULL: 5,
    NOT_CONNECTED: 6,
    ADDRESS_NOT_SPECIFIED: 7,
    DENYLISTED: 8,
    QUARANTINED: 9,
    DUPLICATE: 10,
    REFUSED: 20,
    ERROR_IGNORED: 25,
    INVALID_CONTENT: 30,
}


@dataclass(frozen=True)
class Failure:
    """Why a message failed or was ignored: its type, its reason, and what SES or we said."""

    type: str
    reason: str
    detail: str = ""

    @property
    def code(self) -> int:
        return REASON_CODES[self.reason]

    def __post_init__(self) -> None:
        if self.type not in FAILURE_TYPES:
            raise ValueError(f"unknown failure type {self.type!r}")
        if self.reason not in REASON_CODES:
            raise ValueError(f"unknown failure reason {self.reason!r}")
