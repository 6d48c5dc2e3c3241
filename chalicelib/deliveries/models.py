"""What the deliveries API accepts and answers: pydantic models at the boundary."""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import TYPE_CHECKING, Annotated, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from chalicelib.api.models import PagedExportQuery, QueryParameters
from chalicelib.deliveries.mime import BODY_UNSAFE, HEADER_UNSAFE, unsafe_character
from chalicelib.mta import states, statuses
from chalicelib.mta.reasons import REASON_CODES
from chalicelib.mta.recipients import stored_form

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _utf8(value: str) -> str:
    """Refuse a lone surrogate (JSON lets "\\ud800" through): no message, and no DynamoDB item, can hold it."""
    where = unsafe_character(value, _SURROGATE)
    if where:
        raise ValueError(f"not valid Unicode text: a lone surrogate ({where})")
    return value


Text = Annotated[str, AfterValidator(_utf8)]
AttributeValue = Union[str, int, float, bool, None]  # str values: checked in RecipientIn._attributes
_ADDRESS = re.compile(r"^[^@\s<>\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
RESERVED_ATTRIBUTES = frozenset({"unsubscribe_url", "mirror_url"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecipientIn(_Strict):
    id: Text = Field(min_length=1, max_length=256,
                     description="your id for this person, used to look up their tracking")
    email: Text = Field(min_length=3, max_length=320)
    attributes: dict[str, AttributeValue] = Field(default_factory=dict, description="values for {{name}} placeholders")

    @field_validator("email")
    @classmethod
    def _stored_form(cls, email: str) -> str:
        """Stored as it will be sent (no surrounding whitespace, domain lower-cased); checked at preparation."""
        return stored_form(email)

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, attributes: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
        for name, value in attributes.items():
            if not _ATTRIBUTE_NAME.match(name):
                raise ValueError(f"attribute name {name!r} must be letters, digits, _ . - (not starting with a digit)")
            if name in RESERVED_ATTRIBUTES:
                raise ValueError(f"attribute name {name!r} is reserved")
            where = unsafe_character(value, BODY_UNSAFE) if isinstance(value, str) else None
            if where:
                raise ValueError(f"attribute {name!r} holds a control character or a lone surrogate that no "
                                 f"message can carry ({where})")
        return attributes


class UrlOverrideIn(_Strict):
    match: Text = Field(min_length=1, max_length=2048, description="a link's URL exactly as written, or its label")
    mode: Literal["tracked", "untracked"] = "tracked"
    type: Literal["click", "optout", "mirror"] = "click"
    label: Optional[Text] = Field(default=None, max_length=200)
    category: Optional[Text] = Field(default=None, max_length=100,
                                     description="a classification of yours (e.g. Products, Social) the URL report "
                                                 "can group by")


class TrackingIn(_Strict):
    enabled: bool = True
    opens: bool = True
    honeypot: bool = Field(default=False, description="add a hidden link no person sees: a click on it is a "
                                                      "machine's (a link scanner's)")
    urls: list[UrlOverrideIn] = Field(default_factory=list, max_length=500)
    forward_query_params: bool = Field(
        default=False, description="add the parameters a click arrives with (other than sendtrail's own `p`) "
                                   "to the target URL; parameters the target already has keep its value")


class DeliveryIn(_Strict):
    name: Text = Field(min_length=1, max_length=200)
    subject: Text = Field(min_length=1, max_length=998)
    from_address: Text = Field(min_length=3, max_length=320,
                               description="'news@example.com' or 'News <news@example.com>'")
    html: Text = Field(min_length=1)
    text: Optional[Text] = None
    recipients: list[RecipientIn] = Field(min_length=1)
    affinity: Optional[Text] = Field(default=None, min_length=1, max_length=64)
    validity_days: Optional[int] = Field(default=None, ge=1, le=3650)
    tracking: TrackingIn = Field(default_factory=TrackingIn)

    @field_validator("subject")
    @classmethod
    def _single_line(cls, subject: str) -> str:
        where = unsafe_character(subject, HEADER_UNSAFE)
        if where:
            raise ValueError(f"subject must be one line of text without control characters ({where})")
        return subject

    @field_validator("from_address")
    @classmethod
    def _valid_sender(cls, value: str) -> str:
        where = unsafe_character(value, HEADER_UNSAFE)
        if where:
            raise ValueError(f"from_address must be one line of text without control characters ({where})")
        _, address = parseaddr(value)
        if not _ADDRESS.match(address):
            raise ValueError("from_address must be an email address, optionally with a display name")
        return value

    def repeated_recipient_index(self) -> int | None:
        """The index of the first recipient whose id an earlier one already has."""
        seen: set[str] = set()
        for index, recipient in enumerate(self.recipients):
            if recipient.id in seen:
                return index
            seen.add(recipient.id)
        return None

    @property
    def sender_address(self) -> str:
        return parseaddr(self.from_address)[1]


class DeliveryCreated(BaseModel):
    id: str


# --- answers ------------------------------------------------------------------
# Optional fields a delivery has only once something happened (started_at, ...)
# are left out of the JSON until then, as they were before the API was typed.

def _unset(value: object) -> bool:
    return value is None


Millis = Optional[int]
# Literals built from the one list of each (a tuple subscript is Literal's own flattening); mypy cannot
# follow that, and sees the strings they are.
if TYPE_CHECKING:
    DeliveryState = str
    LogStatus = str
    FailureReason = str
else:
    DeliveryState = Literal[states.STATES]
    LogStatus = Literal[statuses.STATUSES]
    FailureReason = Literal[tuple(REASON_CODES)]


class TrackingSettings(BaseModel):
    enabled: bool = True
    opens: bool = True


class JobFailure(BaseModel):
    code: str
    message: str


class DeliveryCounts(BaseModel):
    """Delivery logs per status; `processed` as the indicators count it (all but ignored and canceled)."""

    processed: int
    prepared: int
    pending: int
    sent: int
    delivered: int
    failed: int
    ignored: int
    canceled: int


class DeliverySummary(BaseModel):
    """A delivery in a list: what it is, where its job stands, its counts."""

    id: str = Field(description="16 hex digits")
    name: Optional[str] = Field(default=None, exclude_if=_unset)
    subject: Optional[str] = Field(default=None, exclude_if=_unset)
    from_address: Optional[str] = Field(default=None, exclude_if=_unset)
    affinity: Optional[str] = Field(default=None, exclude_if=_unset)
    configuration_set: Optional[str] = Field(default=None, exclude_if=_unset)
    validity_days: Optional[int] = Field(default=None, exclude_if=_unset)
    tracking: Optional[TrackingSettings] = Field(default=None, exclude_if=_unset)
    state: Optional[DeliveryState] = Field(default=None, exclude_if=_unset)
    state_since: Millis = Field(default=None, exclude_if=_unset, description="epoch milliseconds")
    recipients: Optional[int] = Field(default=None, exclude_if=_unset)
    created_at: Millis = Field(default=None, exclude_if=_unset)
    start_requested_at: Millis = Field(default=None, exclude_if=_unset)
    started_at: Millis = Field(default=None, exclude_if=_unset)
    paused_at: Millis = Field(default=None, exclude_if=_unset)
    resumed_at: Millis = Field(default=None, exclude_if=_unset)
    stopped_at: Millis = Field(default=None, exclude_if=_unset)
    finished_at: Millis = Field(default=None, exclude_if=_unset)
    failure: Optional[JobFailure] = Field(default=None, exclude_if=_unset, description="why the job failed")
    counts: DeliveryCounts


class ReasonCount(BaseModel):
    reason: str
    code: Optional[int] = Field(description="Campaign's failure reason code")
    count: int


class FailureGroup(BaseModel):
    total: int
    reasons: list[ReasonCount]


class DeliveryFailures(BaseModel):
    hard: FailureGroup
    soft: FailureGroup
    ignored: FailureGroup


class DeliveryThroughput(BaseModel):
    """Messages SES accepted per hour and bits per second, from the first accepted message to the last (or now)."""

    messages: int
    bytes: int
    messages_per_hour: float
    bits_per_second: float
    seconds: float


class StallReason(BaseModel):
    code: Literal["affinity_not_configured", "ses_sending_paused", "ses_daily_quota", "job_stalled"]
    message: str
    since: int


class DeliveryView(DeliverySummary):
    """One delivery: its summary, failures by type and reason, throughput, and why it is stalled if it is."""

    failures: DeliveryFailures
    throughput: DeliveryThroughput
    stalled: bool
    reason: Optional[StallReason] = Field(description="null unless stalled")


class DeliveryList(BaseModel):
    items: list[DeliverySummary]
    next: Optional[str] = Field(description="pass as ?next= for the following page; null on the last")


class DeliveryLog(BaseModel):
    """One recipient's message in a delivery; fields appear once they are known."""

    log_id: int
    recipient_id: Optional[str] = Field(description="null once the recipient was erased (DELETE /api/recipients/{id})")
    email: Optional[str] = Field(description="null once the recipient was erased")
    status: LogStatus
    erased_at: Millis = Field(default=None, exclude_if=_unset, description="when the recipient was erased")
    failure_type: Optional[Literal["hard", "soft", "ignored"]] = Field(default=None, exclude_if=_unset)
    failure_reason: Optional[str] = Field(default=None, exclude_if=_unset)
    failure_code: Optional[int] = Field(default=None, exclude_if=_unset, description="Campaign's reason code")
    failure_detail: Optional[str] = Field(default=None, exclude_if=_unset)
    message_id: Optional[str] = Field(default=None, exclude_if=_unset, description="SES's message id")
    size: Optional[int] = Field(default=None, exclude_if=_unset, description="the raw message's bytes")
    updated_at: Millis = Field(default=None, exclude_if=_unset)
    sent_at: Millis = Field(default=None, exclude_if=_unset)
    delivered_at: Millis = Field(default=None, exclude_if=_unset)
    failed_at: Millis = Field(default=None, exclude_if=_unset)
    delayed_at: Millis = Field(default=None, exclude_if=_unset)
    delay_type: Optional[str] = Field(default=None, exclude_if=_unset)
    bounce_type: Optional[str] = Field(default=None, exclude_if=_unset)
    bounce_sub_type: Optional[str] = Field(default=None, exclude_if=_unset)
    bounce_status: Optional[str] = Field(default=None, exclude_if=_unset)
    smtp_response: Optional[str] = Field(default=None, exclude_if=_unset)
    complaint_feedback_type: Optional[str] = Field(default=None, exclude_if=_unset)


class DeliveryLogs(BaseModel):
    delivery_id: str
    items: list[DeliveryLog]
    next: Optional[str] = Field(description="pass as ?next= for the following page; null on the last")


# --- queries --------------------------------------------------------------------

class DeliveryListQuery(QueryParameters):
    limit: int = Field(default=50, ge=1, le=200, description="deliveries per page")
    state: Optional[DeliveryState] = Field(default=None, description="only the deliveries in this state, "
                                                                      "latest to enter it first")
    next: Optional[str] = Field(default=None, description="the `next` of the previous page")


class DeliveryLogsQuery(PagedExportQuery):
    status: Optional[LogStatus] = Field(default=None, description="only the logs with this status (an index)")
    reason: Optional[FailureReason] = Field(
        default=None, description="only the logs failed or ignored for this reason")
