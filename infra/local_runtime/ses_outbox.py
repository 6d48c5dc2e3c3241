"""What SES was asked to send, as SES's event publishing would see it.

moto stores a sent raw message but drops its configuration set and tags,
which is what SES uses to publish configuration-set events. This tap watches
SES v2 SendEmail calls at the botocore level (the way moto's own in-process
mock hooks in), from whichever process makes them, and keeps each accepted
message with its message id, configuration set and tags. The local outbox
(/local/outbox) lists them; the local SES event emulation reads them. Lambda
code is unchanged: it calls SES like it does in AWS.
"""

from __future__ import annotations

import base64
import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from infra.local_runtime import botocore_hooks


@dataclass(frozen=True)
class OutboxMessage:
    message_id: str
    from_address: str
    to: list[str]
    raw: bytes
    configuration_set: str | None
    tags: dict[str, str] = field(default_factory=dict)
    accepted_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """The outbox entry: subject, html and text parts, headers as name -> value."""
        message = email.message_from_bytes(self.raw, policy=email.policy.default)
        html = text = None
        for part in message.walk():
            if part.get_content_maintype() == "multipart":
                continue
            if part.get_content_type() == "text/html" and html is None:
                html = part.get_content()
            elif part.get_content_type() == "text/plain" and text is None:
                text = part.get_content()
        return {
            "message_id": self.message_id,
            "from": self.from_address,
            "to": self.to,
            "subject": str(message.get("Subject", "")),
            "html": html,
            "text": text,
            "headers": {name: str(value) for name, value in message.items()},
            "configuration_set": self.configuration_set,
            "tags": self.tags,
        }


class SesOutbox:
    def __init__(self) -> None:
        self._messages: list[OutboxMessage] = []
        self._lock = threading.Lock()
        self._listeners: list[Any] = []

    def add(self, message: OutboxMessage) -> None:
        with self._lock:
            self._messages.append(message)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(message)

    def messages(self) -> list[OutboxMessage]:
        with self._lock:
            return list(self._messages)

    def subscribe(self, listener: Any) -> None:
        """Call `listener(message)` for every message accepted from now on."""
        with self._lock:
            self._listeners.append(listener)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._listeners.clear()


OUTBOX = SesOutbox()
_PARAMS_KEY = "sendtrail_send_email_params"


def _remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context[_PARAMS_KEY] = params


def _record_sent(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    params = context.get(_PARAMS_KEY)
    if not params or "MessageId" not in parsed:
        return
    raw = params.get("Content", {}).get("Raw", {}).get("Data", b"")
    if isinstance(raw, str):  # the caller passed base64 text
        raw = base64.b64decode(raw)
    destination = params.get("Destination", {})
    OUTBOX.add(OutboxMessage(
        message_id=parsed["MessageId"],
        from_address=params.get("FromEmailAddress", ""),
        to=list(destination.get("ToAddresses", [])) + list(destination.get("CcAddresses", [])),
        raw=bytes(raw),
        configuration_set=params.get("ConfigurationSetName"),
        tags={tag["Name"]: tag["Value"] for tag in params.get("EmailTags", [])},
    ))


_HOOKS = [
    ("provide-client-params.sesv2.SendEmail", _remember_params),
    ("after-call.sesv2.SendEmail", _record_sent),
]


def install() -> None:
    """Watch SES v2 SendEmail in every boto3 client created from now on."""
    botocore_hooks.install(_HOOKS)


def uninstall() -> None:
    botocore_hooks.uninstall(_HOOKS)
