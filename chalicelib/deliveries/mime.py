"""The raw MIME message handed to SES (raw, so our own headers go out as written).

What a message can carry is decided here, once: `HEADER_UNSAFE` are the
characters no header line can hold (every line break str.splitlines knows,
which the email package refuses in a header, other C0/C1 controls, and lone
surrogates, which are not UTF-8); `BODY_UNSAFE` those no body part can hold
(line breaks are fine there: they become CRLF). Validation at creation and
the subject's rendering use the same two sets.
"""

from __future__ import annotations

import re
from email.errors import MessageError
from email.message import EmailMessage
from email.policy import SMTP
from typing import Mapping

HEADER_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
BODY_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def unsafe_character(text: str, unsafe: re.Pattern[str]) -> str | None:
    """Where `text` holds a character of `unsafe` ("U+000B at position 3"), or None."""
    found = unsafe.search(text)
    if found is None:
        return None
    return f"U+{ord(found.group(0)):04X} at position {found.start()}"


def build_mime(from_address: str, to_address: str, subject: str, html: str, text: str | None,
               headers: Mapping[str, str]) -> bytes:
    """The message as bytes; ValueError (UnicodeError included) when a part cannot be encoded."""
    try:
        return _message(from_address, to_address, subject, html, text, headers).as_bytes()
    except MessageError as error:  # the email package's own errors: one kind of failure for callers
        raise ValueError(f"the message cannot be encoded: {error}") from error


def _message(from_address: str, to_address: str, subject: str, html: str, text: str | None,
             headers: Mapping[str, str]) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = from_address
    message["To"] = to_address
    message["Subject"] = subject
    for name, value in headers.items():
        message[name] = value
    if text is not None:
        message.set_content(text)
        message.add_alternative(html, subtype="html")
    else:
        message.set_content(html, subtype="html")
    return message
