"""What the deliveries API accepts and answers: pydantic models at the boundary."""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Annotated, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from chalicelib.deliveries.mime import BODY_UNSAFE, HEADER_UNSAFE, unsafe_character
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
_ADDRESS = re.compile(r"^[^@\s<>\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
RESERVED_ATTRIBUTES = frozenset({"unsubscribe_url", "mirror_url"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecipientIn(_Strict):
    id: Text = Field(min_length=1, max_length=256, description="your id for this person, used to look up their tracking")
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


class TrackingIn(_Strict):
    enabled: bool = True
    opens: bool = True
    urls: list[UrlOverrideIn] = Field(default_factory=list, max_length=500)


class DeliveryIn(_Strict):
    name: Text = Field(min_length=1, max_length=200)
    subject: Text = Field(min_length=1, max_length=998)
    from_address: Text = Field(min_length=3, max_length=320, description="'news@example.com' or 'News <news@example.com>'")
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
