"""The raw MIME message handed to SES (raw, so our own headers go out as written)."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from typing import Mapping


def build_mime(from_address: str, to_address: str, subject: str, html: str, text: str | None,
               headers: Mapping[str, str]) -> bytes:
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
    return message.as_bytes()
