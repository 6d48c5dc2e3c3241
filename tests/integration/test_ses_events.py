"""SES events on moto: the simulator's addresses, duplicates, out-of-order arrivals, races, quarantine, poison.

Events travel as in AWS: published to the configuration set's SNS topic
(infra/local_runtime/ses_events.py), delivered by moto to the SQS queue,
consumed by the ses_events function through its trigger.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Callable

import boto3
import pytest

from chalicelib import metrics
from chalicelib.data.deliveries import DeliveryStore
from chalicelib.mta.events import SesEventsConsumer
from chalicelib.settings import get_settings
from infra.local_runtime import ses_events as build
from infra.local_runtime.ses_outbox import OUTBOX, OutboxMessage
from tests.integration.test_send_jobs import act, counts, create, nonzero, show

SIMULATOR = "simulator.amazonses.com"
DAY = 86_400.0


def sent(api: Any, mta: Any, addresses: list[str]) -> tuple[str, list[OutboxMessage]]:
    """A delivery to `addresses`, sent; its messages (no event published yet)."""
    delivery_id = create(api, addresses)
    act(api, delivery_id, "send", 202)
    before = len(OUTBOX.messages())
    mta.send()
    return delivery_id, OUTBOX.messages()[before:]


def deliver(mta: Any, message: OutboxMessage, *events: dict[str, Any]) -> None:
    """Publish `events` as SES would for `message`, and let the consumer take them."""
    assert mta.publisher.publish(message, list(events)) == len(events)
    mta.triggers["ses_events"].drain()


def log(delivery_id: str, log_id: int) -> dict[str, Any]:
    found = DeliveryStore(get_settings().deliveries_table, get_settings().delivery_logs_table).get_log(
        delivery_id, log_id, consistent=True)
    assert found is not None
    return found


def quarantine(api: Any) -> dict[str, dict[str, Any]]:
    return {item["address"]: item for item in api.get("/api/quarantine").json_body["items"]}


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, str]]]:
    found: list[tuple[str, dict[str, str]]] = []
    monkeypatch.setattr(metrics, "emit", lambda name, *args, **dimensions: found.append((name, dimensions)))
    return found


def test_the_mailbox_simulator_delivered_bounced_complained_and_quarantined(
        api: Any, mta: Any, emitted: list[tuple[str, dict[str, str]]]) -> None:
    addresses = [f"success+ann@{SIMULATOR}", f"success+bob@{SIMULATOR}", f"bounce@{SIMULATOR}",
                 f"complaint@{SIMULATOR}", f"ooto@{SIMULATOR}", f"suppressionlist@{SIMULATOR}"]
    delivery_id = create(api, addresses)
    act(api, delivery_id, "send", 202)
    mta.drain()
    body = show(api, delivery_id)
    assert body["state"] == "finished"
    assert nonzero(body["counts"]) == {
        "processed": 6, "delivered": 3, "failed": 3}
    assert body["failures"]["hard"] == {"total": 3, "reasons": [
        {"reason": "denylisted", "code": 8, "count": 1}, {"reason": "quarantined", "code": 9, "count": 1},
        {"reason": "user_unknown", "code": 1, "count": 1}]}
    [bounced] = api.get(f"/api/deliveries/{delivery_id}/logs",
                        query={"status": "failed", "reason": "user_unknown"}).json_body["items"]
    assert (bounced["email"], bounced["failure_type"], bounced["failure_code"]) == (f"bounce@{SIMULATOR}", "hard", 1)
    assert bounced["failure_detail"] == "smtp; 550 5.1.1 user unknown" and bounced["bounce_status"] == "5.1.1"
    listed = quarantine(api)
    assert {address: (entry["status"], entry["reason"], entry["code"]) for address, entry in listed.items()} == {
        f"bounce@{SIMULATOR}": ("quarantined", "user_unknown", 1),
        f"complaint@{SIMULATOR}": ("denylisted", "denylisted", 8),
        f"suppressionlist@{SIMULATOR}": ("quarantined", "quarantined", 9)}
    assert all(entry["delivery_id"] == delivery_id and entry["since"] for entry in listed.values())
    assert sorted(name for name, _ in emitted if name in (metrics.BOUNCES, metrics.COMPLAINTS)) == [
        metrics.BOUNCES, metrics.BOUNCES, metrics.COMPLAINTS]
    assert {dimensions["type"] for name, dimensions in emitted if name == metrics.BOUNCES} == {"hard"}

    again = create(api, addresses)
    act(api, again, "send", 202)
    mta.drain()
    second = show(api, again)
    assert nonzero(second["counts"]) == {
        "processed": 3, "delivered": 3, "ignored": 3}
    assert second["failures"]["ignored"]["reasons"] == [
        {"reason": "quarantined", "code": 9, "count": 2}, {"reason": "denylisted", "code": 8, "count": 1}]


def test_a_duplicate_event_changes_nothing(api: Any, mta: Any) -> None:
    delivery_id, [message] = sent(api, mta, ["carl@example.net"])
    mail = build.mail_object(message)
    bounce = build.bounce_event(mail, message.accepted_at + 5, "Transient", "MailboxFull", "4.2.2")
    deliver(mta, message, build.send_event(mail), bounce)
    first = (log(delivery_id, 1), counts(api, delivery_id), boto3.client("dynamodb").get_item(
        TableName=get_settings().addresses_table, Key={"address": {"S": "carl@example.net"}})["Item"])
    deliver(mta, message, bounce, build.send_event(mail), bounce)
    assert (log(delivery_id, 1), counts(api, delivery_id), boto3.client("dynamodb").get_item(
        TableName=get_settings().addresses_table, Key={"address": {"S": "carl@example.net"}})["Item"]) == first
    assert first[1] == {"processed": 1, "failed": 1} and first[2]["error_count"] == {"N": "1"}


def test_out_of_order_events_are_resolved_by_precedence(api: Any, mta: Any) -> None:
    delivery_id, messages = sent(api, mta, ["late@example.net", "async@example.net", "complains@example.net"])
    late, asynchronous, complains = messages
    at = late.accepted_at
    mail = build.mail_object(late)
    # a Bounce before the Send and the Delivery: the late Delivery never overrides it
    deliver(mta, late, build.bounce_event(mail, at + 2, "Permanent", "General", "5.1.1"), build.send_event(mail),
            build.delivery_event(mail, at + 1))
    assert (log(delivery_id, 1)["status"], log(delivery_id, 1)["failure_reason"]) == ("failed", "user_unknown")
    # a Delivery, then an asynchronous Bounce: the bounce fails the message
    mail = build.mail_object(asynchronous)
    deliver(mta, asynchronous, build.delivery_event(mail, at + 1))
    assert log(delivery_id, 2)["status"] == "delivered"
    deliver(mta, asynchronous, build.bounce_event(mail, at + 600, "Permanent", "General", "5.2.1"))
    assert (log(delivery_id, 2)["status"], log(delivery_id, 2)["failure_reason"]) == ("failed", "account_disabled")
    # a Delivery, then a Complaint: failed, denylisted; the address too
    mail = build.mail_object(complains)
    deliver(mta, complains, build.delivery_event(mail, at + 1), build.complaint_event(mail, at + 3600),
            build.delivery_event(mail, at + 1))
    assert (log(delivery_id, 3)["status"], log(delivery_id, 3)["failure_reason"]) == ("failed", "denylisted")
    assert counts(api, delivery_id) == {"processed": 3, "failed": 3}
    assert quarantine(api)["complains@example.net"]["status"] == "denylisted"


def test_an_event_that_comes_before_the_worker_records_the_send(api: Any, mta: Any) -> None:
    """SES's events can overtake the worker's own write: both end up recorded, once."""
    consumer = SesEventsConsumer(get_settings())
    topic = "arn:aws:sns:us-east-1:123456789012:sendtrail-local-ses-events"

    def events_at_once(message: OutboxMessage) -> None:  # runs inside SendEmail, before the worker records
        mail = build.mail_object(message)
        for event in (build.send_event(mail), build.delivery_event(mail, message.accepted_at + 1)):
            assert consumer.apply_notification(json.dumps(build.sns_notification(event, topic))).startswith("applied")

    OUTBOX.subscribe(events_at_once)
    delivery_id, messages = sent(api, mta, ["eve@example.net", "fay@example.net"])
    body = show(api, delivery_id)
    assert (body["state"], body["counts"]["delivered"], body["counts"]["sent"]) == ("finished", 2, 0)
    assert body["throughput"]["messages"] == 2 and body["throughput"]["bytes"] == sum(len(m.raw) for m in messages)
    assert [log(delivery_id, index)["message_id"] for index in (1, 2)] == [m.message_id for m in messages]
    assert all(log(delivery_id, index)["sent_at"] for index in (1, 2))


def test_an_event_for_another_message_changes_nothing(api: Any, mta: Any) -> None:
    delivery_id, [message] = sent(api, mta, ["gus@example.net"])
    other = replace(message, message_id="not-the-logs-message")
    deliver(mta, other, build.bounce_event(build.mail_object(other), other.accepted_at, "Permanent", "NoEmail"))
    assert log(delivery_id, 1)["status"] == "sent" and quarantine(api) == {}


def test_a_lost_send_yields_to_what_ses_says(api: Any, mta: Any) -> None:
    delivery_id, [message] = sent(api, mta, ["hal@example.net"])
    store = DeliveryStore(get_settings().deliveries_table, get_settings().delivery_logs_table)
    from chalicelib.data.deliveries import LogTransition

    assert store.transition(delivery_id, [LogTransition(1, "sent", "failed", failure=("ignored", "error_ignored"),
                                                        remove=("message_id",))], 1)
    deliver(mta, message, build.delivery_event(build.mail_object(message), message.accepted_at + 1))
    found = log(delivery_id, 1)
    assert (found["status"], found.get("failure_reason"), found["message_id"]) == ("delivered", None,
                                                                                   message.message_id)
    assert show(api, delivery_id)["failures"]["ignored"]["total"] == 0


def test_a_delivery_delay_is_recorded_once_and_a_delivery_follows(api: Any, mta: Any) -> None:
    delivery_id, [message] = sent(api, mta, ["ida@example.net"])
    mail = build.mail_object(message)
    delay = build.delivery_delay_event(mail, message.accepted_at + 60)
    deliver(mta, message, delay)
    delayed = log(delivery_id, 1)
    assert (delayed["status"], delayed["delay_type"]) == ("sent", "TransientCommunicationFailure")
    deliver(mta, message, delay)
    assert log(delivery_id, 1) == delayed
    deliver(mta, message, build.delivery_event(mail, message.accepted_at + 900))
    assert log(delivery_id, 1)["status"] == "delivered" and counts(api, delivery_id) == {"processed": 1,
                                                                                          "delivered": 1}


@pytest.mark.parametrize("make", [build.reject_event, build.rendering_failure_event])
def test_refused_content_fails_the_message_not_the_address(api: Any, mta: Any,
                                                           make: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    delivery_id, [message] = sent(api, mta, ["jo@example.net"])
    deliver(mta, message, make(build.mail_object(message)))
    found = log(delivery_id, 1)
    assert (found["status"], found["failure_type"], found["failure_reason"]) == ("failed", "ignored", "refused")
    assert quarantine(api) == {} and "Item" not in boto3.client("dynamodb").get_item(
        TableName=get_settings().addresses_table, Key={"address": {"S": "jo@example.net"}})


def test_soft_bounces_on_five_days_quarantine_the_address(api: Any, mta: Any) -> None:
    """Time travel by SES's own timestamps: five mailbox-full bounces a day apart, then the sixth delivery skips."""
    first_at = None
    for day in range(5):
        delivery_id, [message] = sent(api, mta, ["kim@example.net"])
        first_at = first_at or message.accepted_at
        mail = build.mail_object(message)
        deliver(mta, message, build.bounce_event(mail, first_at + day * DAY + 60, "Transient", "General", "4.2.2",
                                                 "smtp; 452 4.2.2 Mailbox full"))
        listed = quarantine(api)
        assert ("kim@example.net" in listed) is (day == 4), day
        assert log(delivery_id, 1)["failure_type"] == "soft"
    entry = quarantine(api)["kim@example.net"]
    assert (entry["status"], entry["reason"], entry["code"], entry["error_count"]) == (
        "quarantined", "mailbox_full", 5, 5)
    assert entry["since"] == int((first_at + 4 * DAY + 60) * 1000)
    sixth = create(api, ["kim@example.net"])
    act(api, sixth, "send", 202)
    mta.drain()
    assert counts(api, sixth) == {"ignored": 1} and log(sixth, 1)["failure_reason"] == "quarantined"


def test_what_is_not_an_ses_event_for_us_and_a_poison_message(api: Any, mta: Any) -> None:
    consumer = SesEventsConsumer(get_settings())
    confirmation = json.dumps({"Type": "SubscriptionConfirmation", "MessageId": "1", "TopicArn": "t",
                               "Message": "You have chosen to subscribe", "SubscribeURL": "https://sns/confirm"})
    assert consumer.apply_notification(confirmation) == "not an event"
    delivery_id, [message] = sent(api, mta, ["lea@example.net"])
    foreign = build.mail_object(replace(message, tags={}))
    assert consumer.apply_notification(json.dumps(build.sns_notification(build.send_event(foreign), "t"))) == \
        "not ours"
    good = build.sns_notification(build.delivery_event(build.mail_object(message), message.accepted_at + 1), "t")
    records = [{"messageId": "good-1", "receiptHandle": "r1", "body": json.dumps(good), "attributes": {},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "q",
                "awsRegion": "us-east-1"},
               {"messageId": "poison-2", "receiptHandle": "r2", "body": "{not json", "attributes": {},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "q",
                "awsRegion": "us-east-1"}]
    assert consumer.handle({"Records": records}, None) == {"batchItemFailures": [{"itemIdentifier": "poison-2"}]}
    assert log(delivery_id, 1)["status"] == "delivered"
