"""SES event publishing's messages, as they reach us: an SNS notification whose Message is SES's event.

The shapes are SES's (docs: "Contents of event data that Amazon SES
publishes to Amazon SNS"): `eventType` (Send, Delivery, Bounce, Complaint,
Reject, DeliveryDelay, Rendering Failure, and Open, Click, Subscription,
which sendtrail does not subscribe to), `mail` (messageId, timestamp,
destination, and the message's tags as lists: sendtrail's delivery_id and
log_id, set by chalicelib/data/mailer.py, beside SES's own ses:* tags), and
one object named after the event type. Unknown fields are ignored: SES adds
fields over time.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _SesModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class SnsEnvelope(_SesModel):
    type: str = Field(alias="Type")
    message_id: str = Field(default="", alias="MessageId")
    topic_arn: str = Field(default="", alias="TopicArn")
    message: str = Field(alias="Message")


class Mail(_SesModel):
    message_id: str = Field(alias="messageId")
    timestamp: Optional[str] = None
    destination: list[str] = Field(default_factory=list)
    tags: dict[str, list[str]] = Field(default_factory=dict)

    def tag(self, name: str) -> Optional[str]:
        values = self.tags.get(name) or []
        return values[0] if values else None


class Recipient(_SesModel):
    email_address: str = Field(alias="emailAddress")
    action: Optional[str] = None
    status: Optional[str] = None
    diagnostic_code: Optional[str] = Field(default=None, alias="diagnosticCode")


class Bounce(_SesModel):
    bounce_type: str = Field(alias="bounceType")
    bounce_sub_type: str = Field(default="", alias="bounceSubType")
    bounced_recipients: list[Recipient] = Field(default_factory=list, alias="bouncedRecipients")
    timestamp: Optional[str] = None
    feedback_id: Optional[str] = Field(default=None, alias="feedbackId")
    reporting_mta: Optional[str] = Field(default=None, alias="reportingMTA")


class Complaint(_SesModel):
    complained_recipients: list[Recipient] = Field(default_factory=list, alias="complainedRecipients")
    timestamp: Optional[str] = None
    feedback_type: Optional[str] = Field(default=None, alias="complaintFeedbackType")
    sub_type: Optional[str] = Field(default=None, alias="complaintSubType")
    user_agent: Optional[str] = Field(default=None, alias="userAgent")


class Delivery(_SesModel):
    timestamp: Optional[str] = None
    processing_time_millis: Optional[int] = Field(default=None, alias="processingTimeMillis")
    recipients: list[str] = Field(default_factory=list)
    smtp_response: Optional[str] = Field(default=None, alias="smtpResponse")
    reporting_mta: Optional[str] = Field(default=None, alias="reportingMTA")


class DeliveryDelay(_SesModel):
    timestamp: Optional[str] = None
    delay_type: Optional[str] = Field(default=None, alias="delayType")
    expiration_time: Optional[str] = Field(default=None, alias="expirationTime")
    delayed_recipients: list[Recipient] = Field(default_factory=list, alias="delayedRecipients")


class Reject(_SesModel):
    reason: str = ""


class RenderingFailure(_SesModel):
    error_message: str = Field(default="", alias="errorMessage")
    template_name: Optional[str] = Field(default=None, alias="templateName")


class SesEvent(_SesModel):
    event_type: str = Field(alias="eventType")
    mail: Mail
    bounce: Optional[Bounce] = None
    complaint: Optional[Complaint] = None
    delivery: Optional[Delivery] = None
    send: Optional[dict[str, Any]] = None
    reject: Optional[Reject] = None
    failure: Optional[RenderingFailure] = None
    delivery_delay: Optional[DeliveryDelay] = Field(default=None, alias="deliveryDelay")


class NotAnSesEvent(ValueError):
    """The message is not an SES event notification (malformed, or not from SES)."""


def parse_notification(body: str) -> Optional[SesEvent]:
    """The SES event inside an SQS message body (an SNS envelope); None for SNS's own messages.

    SNS sends a SubscriptionConfirmation (and UnsubscribeConfirmation) down
    the same queue: those are not events. Identity notifications (the older
    SES feedback) say `notificationType`; they are read the same way.
    """
    try:
        envelope = SnsEnvelope.model_validate_json(body)
    except ValidationError as error:
        raise NotAnSesEvent(f"not an SNS notification: {error.errors()[0]['msg']}") from None
    if envelope.type != "Notification":
        return None
    try:
        document = json.loads(envelope.message)
    except ValueError:
        raise NotAnSesEvent("the notification's Message is not JSON") from None
    if isinstance(document, dict) and "eventType" not in document and "notificationType" in document:
        document["eventType"] = document["notificationType"]
    try:
        return SesEvent.model_validate(document)
    except ValidationError as error:
        raise NotAnSesEvent(f"not an SES event: {error.errors()[0]['loc']} {error.errors()[0]['msg']}") from None


def timestamp_ms(value: Optional[str]) -> Optional[int]:
    """SES's ISO 8601 timestamps ('2026-11-22T12:00:01.123Z') in epoch milliseconds."""
    if not value:
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None
