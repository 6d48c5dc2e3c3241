"""What the deliveries API accepts and answers: pydantic models at the boundary."""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

AttributeValue = Union[str, int, float, bool, None]
_ADDRESS = re.compile(r"^[^@\s<>\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
RESERVED_ATTRIBUTES = frozenset({"unsubscribe_url", "mirror_url"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecipientIn(_Strict):
    id: str = Field(min_length=1, max_length=256, description="your id for this person, used to look up their tracking")
    email: str = Field(min_length=3, max_length=320)
    attributes: dict[str, AttributeValue] = Field(default_factory=dict, description="values for {{name}} placeholders")

    @field_validator("attributes")
    @classmethod
    def _attribute_names(cls, attributes: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
        for name in attributes:
            if not _ATTRIBUTE_NAME.match(name):
                raise ValueError(f"attribute name {name!r} must be letters, digits, _ . - (not starting with a digit)")
            if name in RESERVED_ATTRIBUTES:
                raise ValueError(f"attribute name {name!r} is reserved")
        return attributes


class UrlOverrideIn(_Strict):
    match: str = Field(min_length=1, max_length=2048, description="a link's URL exactly as written, or its label")
    mode: Literal["tracked", "untracked"] = "tracked"
    type: Literal["click", "optout", "mirror"] = "click"
    label: Optional[str] = Field(default=None, max_length=200)


class TrackingIn(_Strict):
    enabled: bool = True
    opens: bool = True
    honeypot: bool = Field(default=False, description="add a hidden link no person sees: a click on it is a "
                                                      "machine's (a link scanner's)")
    urls: list[UrlOverrideIn] = Field(default_factory=list, max_length=500)


class DeliveryIn(_Strict):
    name: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=998)
    from_address: str = Field(min_length=3, max_length=320, description="'news@example.com' or 'News <news@example.com>'")
    html: str = Field(min_length=1)
    text: Optional[str] = None
    recipients: list[RecipientIn] = Field(min_length=1)
    affinity: Optional[str] = Field(default=None, min_length=1, max_length=64)
    validity_days: Optional[int] = Field(default=None, ge=1, le=3650)
    tracking: TrackingIn = Field(default_factory=TrackingIn)

    @field_validator("subject")
    @classmethod
    def _single_line(cls, subject: str) -> str:
        if "\r" in subject or "\n" in subject:
            raise ValueError("subject must be one line")
        return subject

    @field_validator("from_address")
    @classmethod
    def _valid_sender(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("from_address must be one line")
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
