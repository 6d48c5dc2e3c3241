"""SES event publishing, emulated: the events SES's mailbox simulator produces, into the same SNS topic.

moto stores a configuration set's event destinations but never publishes an
event. This emulation does what SES would: for every message SES accepted
(the outbox tap, ses_outbox.py) that names a configuration set, it reads the
set's event destinations back from moto (SES v1 DescribeConfigurationSet),
and publishes to each enabled SNS destination the events of the types it
matches, in SES's own JSON shapes, so the ses_events Lambda runs the same
code locally as in AWS (SNS -> SQS -> the SqsTrigger worker).

What happens to a message follows the mailbox simulator
(success@, bounce@, complaint@, ooto@ and suppressionlist@
simulator.amazonses.com, with +labels allowed: bounce+anything@...):

    success          Send, Delivery
    bounce           Send, Bounce Permanent/General, 5.1.1 user unknown
    complaint        Send, Delivery, Complaint (abuse)
    ooto             Send, Delivery (an out-of-office answer is not a bounce)
    suppressionlist  Send, Bounce Permanent/OnAccountSuppressionList
    anything else    Send, Delivery (the local stack delivers everything)

The builders are public: tests make any other event (every bounce subtype,
duplicates, out-of-order arrivals) with the same shapes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional

import boto3

from infra.local_runtime.provision import ACCOUNT_ID
from infra.local_runtime.ses_outbox import OUTBOX, OutboxMessage

if TYPE_CHECKING:
    from infra.local_runtime.stack import LocalStack, Worker

logger = logging.getLogger("sendtrail.local.ses_events")
SIMULATOR_DOMAIN = "simulator.amazonses.com"
PUBLISH_INTERVAL_SECONDS = 0.2
# MatchingEventTypes (configuration set) -> eventType (the published event)
EVENT_TYPES = {"send": "Send", "delivery": "Delivery", "bounce": "Bounce", "complaint": "Complaint",
               "reject": "Reject", "deliveryDelay": "DeliveryDelay", "renderingFailure": "Rendering Failure"}
SUPPRESSED_DIAGNOSTIC = ("Amazon SES did not send the message to this address because it is on the suppression "
                         "list for your account. For more information about removing addresses from the "
                         "suppression list, see the Amazon SES Developer Guide.")


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def mail_object(message: OutboxMessage, at: Optional[float] = None) -> dict[str, Any]:
    """SES's `mail` object for a sent message: ids, destination, headers, and the tags as lists."""
    at = message.accepted_at if at is None else at
    sender = message.from_address.rsplit("<", 1)[-1].rstrip(">")
    domain = sender.rsplit("@", 1)[-1]
    tags = {"ses:operation": ["SendEmail"], "ses:source-ip": ["127.0.0.1"], "ses:from-domain": [domain],
            "ses:caller-identity": ["sendtrail-local"]}
    if message.configuration_set:
        tags["ses:configuration-set"] = [message.configuration_set]
    tags.update({name: [value] for name, value in message.tags.items()})
    details = message.to_dict()
    return {
        "timestamp": iso(at),
        "source": message.from_address,
        "sourceArn": f"arn:aws:ses:us-east-1:{ACCOUNT_ID}:identity/{domain}",
        "sendingAccountId": ACCOUNT_ID,
        "messageId": message.message_id,
        "destination": list(message.to),
        "headersTruncated": False,
        "headers": [{"name": name, "value": value} for name, value in details["headers"].items()],
        "commonHeaders": {"from": [message.from_address], "to": list(message.to),
                          "messageId": message.message_id, "subject": details["subject"]},
        "tags": tags,
    }


def send_event(mail: dict[str, Any]) -> dict[str, Any]:
    return {"eventType": "Send", "mail": mail, "send": {}}


def delivery_event(mail: dict[str, Any], at: float) -> dict[str, Any]:
    return {"eventType": "Delivery", "mail": mail, "delivery": {
        "timestamp": iso(at), "processingTimeMillis": 412, "recipients": list(mail["destination"]),
        "smtpResponse": "250 2.6.0 Message received", "reportingMTA": "a8-70.smtp-out.amazonses.com"}}


def bounce_event(mail: dict[str, Any], at: float, bounce_type: str, sub_type: str, status: Optional[str] = None,
                 diagnostic: Optional[str] = None) -> dict[str, Any]:
    recipient: dict[str, Any] = {"emailAddress": mail["destination"][0], "action": "failed"}
    if status:
        recipient["status"] = status
    if diagnostic:
        recipient["diagnosticCode"] = diagnostic
    return {"eventType": "Bounce", "mail": mail, "bounce": {
        "bounceType": bounce_type, "bounceSubType": sub_type, "bouncedRecipients": [recipient],
        "timestamp": iso(at), "feedbackId": f"{uuid.uuid4()}-000000", "reportingMTA": "dns; amazonses.com"}}


def complaint_event(mail: dict[str, Any], at: float, feedback_type: str = "abuse") -> dict[str, Any]:
    return {"eventType": "Complaint", "mail": mail, "complaint": {
        "complainedRecipients": [{"emailAddress": mail["destination"][0]}], "timestamp": iso(at),
        "feedbackId": f"{uuid.uuid4()}-000000", "userAgent": "Amazon SES Mailbox Simulator",
        "complaintFeedbackType": feedback_type, "arrivalDate": iso(at)}}


def reject_event(mail: dict[str, Any], reason: str = "Bad content") -> dict[str, Any]:
    return {"eventType": "Reject", "mail": mail, "reject": {"reason": reason}}


def rendering_failure_event(mail: dict[str, Any], message: str = "Attribute 'name' is not present") -> dict[str, Any]:
    return {"eventType": "Rendering Failure", "mail": mail, "failure": {"errorMessage": message,
                                                                       "templateName": "none"}}


def delivery_delay_event(mail: dict[str, Any], at: float, delay_type: str = "TransientCommunicationFailure",
                         status: str = "4.4.1",
                         diagnostic: str = "smtp; 421 4.4.1 Unable to connect") -> dict[str, Any]:
    return {"eventType": "DeliveryDelay", "mail": mail, "deliveryDelay": {
        "timestamp": iso(at), "delayType": delay_type, "expirationTime": iso(at + 86_400),
        "delayedRecipients": [{"emailAddress": mail["destination"][0], "status": status,
                               "diagnosticCode": diagnostic}], "reportingMTA": "a8-70.smtp-out.amazonses.com"}}


def sns_notification(event: dict[str, Any], topic_arn: str) -> dict[str, Any]:
    """The SNS envelope an SQS subscriber (not raw) receives around an event."""
    return {"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": topic_arn,
            "Subject": "Amazon SES Email Event Notification", "Message": json.dumps(event),
            "Timestamp": iso(time.time()), "SignatureVersion": "1", "Signature": "local",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/local.pem",
            "UnsubscribeURL": f"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&TopicArn={topic_arn}"}


def simulated_events(message: OutboxMessage) -> list[dict[str, Any]]:
    """The events SES's mailbox simulator publishes for `message`, in order."""
    mail = mail_object(message)
    at = message.accepted_at
    local, _, domain = (message.to[0] if message.to else "").lower().rpartition("@")
    behaviour = local.split("+", 1)[0] if domain == SIMULATOR_DOMAIN else "success"
    events = [send_event(mail)]
    if behaviour == "bounce":
        events.append(bounce_event(mail, at + 0.5, "Permanent", "General", "5.1.1",
                                   "smtp; 550 5.1.1 user unknown"))
    elif behaviour == "suppressionlist":
        events.append(bounce_event(mail, at + 0.1, "Permanent", "OnAccountSuppressionList", "5.1.1",
                                   SUPPRESSED_DIAGNOSTIC))
    elif behaviour == "complaint":
        events += [delivery_event(mail, at + 0.4), complaint_event(mail, at + 1.0)]
    else:  # success, ooto, and every other address
        events.append(delivery_event(mail, at + 0.4))
    return events


class SesEventPublisher:
    """Publishes the simulator's events for every message the outbox records, once."""

    def __init__(self) -> None:
        self._waiting: deque[OutboxMessage] = deque()
        self._lock = threading.Lock()
        OUTBOX.subscribe(self._waiting.append)

    def step(self) -> int:
        """Publish the events of the messages accepted since the last step; returns how many events."""
        published = 0
        with self._lock:
            while self._waiting:
                message = self._waiting.popleft()
                published += self.publish(message, simulated_events(message))
        return published

    def publish(self, message: OutboxMessage, events: list[dict[str, Any]]) -> int:
        """Publish `events` of `message` as SES would: to its configuration set's matching SNS destinations."""
        if not message.configuration_set:
            return 0
        published = 0
        for destination in _destinations(message.configuration_set):
            wanted = {EVENT_TYPES[kind] for kind in destination.get("MatchingEventTypes", []) if kind in EVENT_TYPES}
            for event in events:
                if event["eventType"] in wanted:
                    boto3.client("sns").publish(TopicArn=destination["SNSDestination"]["TopicARN"],
                                                Subject="Amazon SES Email Event Notification",
                                                Message=json.dumps(event))
                    published += 1
        return published


def _destinations(configuration_set: str) -> list[dict[str, Any]]:
    """The set's enabled SNS event destinations, as moto stored them (none when the set does not exist)."""
    ses = boto3.client("ses")
    try:
        described = ses.describe_configuration_set(ConfigurationSetName=configuration_set,
                                                   ConfigurationSetAttributeNames=["eventDestinations"])
    except ses.exceptions.ConfigurationSetDoesNotExistException:
        return []
    return [destination for destination in described.get("EventDestinations", [])
            if destination and destination.get("Enabled") and destination.get("SNSDestination")]


def workers(stack: "LocalStack") -> "list[Worker]":
    from infra.local_runtime.stack import Worker

    return [Worker("ses-events", SesEventPublisher().step, PUBLISH_INTERVAL_SECONDS)]
