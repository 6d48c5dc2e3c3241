"""Send jobs on moto: every state transition, affinities, throttling, lost answers, pauses, 5,000 recipients.

The send worker runs from the send work queue through the same trigger as
the local stack (tests/mta_harness.py); SES errors are injected at the
botocore level, before moto.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError

from chalicelib import metrics
from chalicelib.data.deliveries import DeliveryStore
from chalicelib.mta.worker import ChunkIn, SendWorker
from chalicelib.settings import get_settings
from infra.local_runtime import environment, ses_account
from infra.local_runtime.ses_events import mail_object, send_event, sns_notification
from infra.local_runtime.ses_outbox import OUTBOX
from tests.mta_harness import FakeRuntime, SesFaults, worker_trigger
from tests.tracking_harness import tap

HTML = '<p>Hi {{name}} <a href="https://shop.example.com/x">shop</a> <a href="{{unsubscribe_url}}">stop</a></p>'


def create(api: Any, emails: list[str], **changes: Any) -> str:
    body = {"name": "job", "subject": "Hello {{name}}", "from_address": "news@example.com", "html": HTML,
            "recipients": [{"id": f"r{index}", "email": email, "attributes": {"name": f"n{index}"}}
                           for index, email in enumerate(emails, start=1)], **changes}
    response = api.post("/api/deliveries", body=body)
    assert response.status_code == 201, response.body
    return response.json_body["id"]


def emails(count: int, domain: str = "example.net") -> list[str]:
    return [f"person{index}@{domain}" for index in range(1, count + 1)]


def show(api: Any, delivery_id: str) -> dict[str, Any]:
    response = api.get(f"/api/deliveries/{delivery_id}")
    assert response.status_code == 200, response.body
    return response.json_body


def act(api: Any, delivery_id: str, action: str, status: int = 200) -> dict[str, Any]:
    response = api.post(f"/api/deliveries/{delivery_id}/{action}")
    assert response.status_code == status, (action, response.body)
    return response.json_body


def nonzero(values: dict[str, int]) -> dict[str, int]:
    return {name: value for name, value in values.items() if value}


def counts(api: Any, delivery_id: str) -> dict[str, int]:
    return nonzero(show(api, delivery_id)["counts"])


def sent_to() -> Counter:
    return Counter(address for message in OUTBOX.messages() for address in message.to)


@pytest.fixture
def small_chunks(resources: Any) -> None:
    """Chunks of 2 recipients, claimed 2 at a time, so a few recipients make a multi-chunk job."""
    environment.apply({"SENDTRAIL_SEND_CHUNK_SIZE": "2", "SENDTRAIL_SEND_CLAIM_BATCH": "2"})


# --- states --------------------------------------------------------------------------

def test_draft_to_start_pending_to_in_progress_to_finished(api: Any, mta: Any, small_chunks: None) -> None:
    delivery_id = create(api, emails(5))
    assert show(api, delivery_id)["state"] == "draft"
    started = act(api, delivery_id, "send", 202)
    assert (started["state"], started["counts"]["prepared"], started["stalled"]) == ("start_pending", 5, False)
    assert started["start_requested_at"] and "started_at" not in started
    assert mta.triggers["send_worker"].step() == 1  # the first chunk
    running = show(api, delivery_id)
    assert (running["state"], running["counts"]["sent"], running["counts"]["prepared"]) == ("in_progress", 2, 3)
    assert running["started_at"] >= running["start_requested_at"]
    assert running["throughput"]["messages"] == 2 and running["throughput"]["bits_per_second"] > 0
    mta.send()
    done = show(api, delivery_id)
    assert done["state"] == "finished" and done["finished_at"] >= done["started_at"]
    assert counts(api, delivery_id) == {"processed": 5, "sent": 5}
    assert sent_to() == Counter(emails(5))
    listed = api.get("/api/deliveries", query={"state": "finished"}).json_body["items"]
    assert [item["id"] for item in listed] == [delivery_id]
    assert api.get("/api/deliveries", query={"state": "in_progress"}).json_body["items"] == []


def test_pause_and_resume_before_and_while_sending(api: Any, mta: Any, small_chunks: None) -> None:
    delivery_id = create(api, emails(5))
    act(api, delivery_id, "send", 202)
    assert act(api, delivery_id, "pause")["state"] == "paused"  # start_pending -> paused
    mta.send()  # the chunks are dropped
    assert OUTBOX.messages() == [] and counts(api, delivery_id)["prepared"] == 5
    assert act(api, delivery_id, "resume")["state"] == "start_pending"  # paused -> start_pending
    mta.triggers["send_worker"].step()
    assert show(api, delivery_id)["state"] == "in_progress"
    assert act(api, delivery_id, "pause")["state"] == "paused"  # in_progress -> paused
    mta.send()
    assert counts(api, delivery_id) == {"processed": 5, "prepared": 3, "sent": 2}
    act(api, delivery_id, "resume")
    mta.send()
    assert show(api, delivery_id)["state"] == "finished"
    assert sent_to() == Counter(emails(5))  # every recipient once, although chunks were queued twice


def test_a_pause_takes_effect_within_one_group(api: Any, mta: Any, resources: Any) -> None:
    environment.apply({"SENDTRAIL_SEND_CLAIM_BATCH": "2"})
    delivery_id = create(api, emails(10))
    act(api, delivery_id, "send", 202)
    store = DeliveryStore(get_settings().deliveries_table, get_settings().delivery_logs_table)

    def pause_after_the_third(message: Any) -> None:
        if len(OUTBOX.messages()) == 3:
            store.change_state(delivery_id, "paused", ["in_progress"], 1)

    OUTBOX.subscribe(pause_after_the_third)
    mta.send()
    assert show(api, delivery_id)["state"] == "paused"
    assert counts(api, delivery_id) == {"processed": 10, "prepared": 6, "sent": 4}  # the group of 3 and 4 finished
    act(api, delivery_id, "resume")
    mta.send()
    assert sent_to() == Counter(emails(10))


@pytest.mark.parametrize("when", ["start_pending", "in_progress", "paused"])
def test_stopping_cancels_what_was_not_sent(api: Any, mta: Any, small_chunks: None, when: str) -> None:
    delivery_id = create(api, emails(5))
    act(api, delivery_id, "send", 202)
    if when != "start_pending":
        mta.triggers["send_worker"].step()
    if when == "paused":
        act(api, delivery_id, "pause")
    stopped = act(api, delivery_id, "stop")
    assert stopped["state"] == "stopped" and stopped["stopped_at"]
    mta.send()
    sent = 0 if when == "start_pending" else 2
    expected = {"processed": sent, "sent": sent, "canceled": 5 - sent}
    assert counts(api, delivery_id) == nonzero(expected)
    assert len(OUTBOX.messages()) == sent
    assert show(api, delivery_id)["state"] == "stopped"


def test_impossible_moves_are_409s_that_say_why(api: Any, mta: Any) -> None:
    draft = create(api, emails(1))
    for action in ("pause", "resume", "stop"):
        body = act(api, draft, action, 409)
        assert body["error"] == "conflict" and f"delivery {draft} is draft" in body["message"]
    act(api, draft, "send", 202)
    assert "is start_pending: only a delivery in draft can be sent" in act(api, draft, "send", 409)["message"]
    assert "only a delivery in paused can be resumed" in act(api, draft, "resume", 409)["message"]
    mta.send()
    for action in ("send", "pause", "resume", "stop"):
        assert "is finished, which is final" in act(api, draft, action, 409)["message"]
    assert act(api, "0011223344556677", "pause", 404)["error"] == "not_found"
    assert act(api, "not-a-delivery", "stop", 404)["error"] == "not_found"


# --- affinities ----------------------------------------------------------------------

def test_an_affinity_that_is_not_configured_is_refused_naming_it(api: Any, mta: Any, resources: Any) -> None:
    response = api.post("/api/deliveries", body={
        "name": "x", "subject": "s", "from_address": "news@example.com", "html": "<p>x</p>",
        "affinity": "transactional", "recipients": [{"id": "a", "email": "a@example.net"}]})
    assert response.status_code == 400
    [field] = response.json_body["fields"]
    assert field["field"] == "affinity" and "'transactional' is not configured" in field["message"]
    assert "configured affinities: default" in field["message"]

    delivery_id = create(api, emails(1))
    boto3.client("sesv2").delete_configuration_set(ConfigurationSetName="sendtrail-local-default")
    refused = act(api, delivery_id, "send", 409)
    assert refused["error"] == "affinity_not_configured"
    assert "affinity 'default'" in refused["message"]
    assert "'sendtrail-local-default' does not exist" in refused["message"]
    assert show(api, delivery_id)["state"] == "draft"


@pytest.mark.parametrize("when", ["start_pending", "in_progress"])
def test_a_configuration_set_gone_while_sending_fails_the_delivery(api: Any, mta: Any, small_chunks: None,
                                                                   when: str) -> None:
    delivery_id = create(api, emails(4))
    act(api, delivery_id, "send", 202)
    if when == "in_progress":
        mta.triggers["send_worker"].step()
    assert show(api, delivery_id)["state"] == when
    boto3.client("sesv2").delete_configuration_set(ConfigurationSetName="sendtrail-local-default")
    reason = show(api, delivery_id)["reason"]
    assert reason["code"] == "affinity_not_configured"  # said while it is meant to be sending
    mta.send()
    failed = show(api, delivery_id)
    assert failed["state"] == "failed" and failed["failure"]["code"] == "affinity_not_configured"
    sent = 2 if when == "in_progress" else 0
    assert len(OUTBOX.messages()) == sent
    assert counts(api, delivery_id) == nonzero({"processed": 4, "sent": sent, "prepared": 4 - sent})


def test_an_affinitys_dedicated_pool_must_be_its_configuration_sets(api: Any, resources: Any) -> None:
    environment.apply({"SENDTRAIL_AFFINITIES": '{"default": {"configuration_set": "sendtrail-local-default", '
                                               '"ip_pool": "marketing"}}'})
    response = api.post("/api/deliveries", body={
        "name": "x", "subject": "s", "from_address": "news@example.com", "html": "<p>x</p>",
        "recipients": [{"id": "a", "email": "a@example.net"}]})
    assert response.status_code == 400
    assert "not the dedicated IP pool 'marketing'" in response.json_body["fields"][0]["message"]


# --- throttling, budgets, lost answers -------------------------------------------------

def test_throttling_backs_off_with_jitter_and_sends_each_message_once(api: Any, mta: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    emitted: list[str] = []
    monkeypatch.setattr(metrics, "emit", lambda name, *args, **kwargs: emitted.append(name))
    delivery_id = create(api, emails(3))
    act(api, delivery_id, "send", 202)
    runtime = FakeRuntime()
    plan = ["TooManyRequestsException", "TooManyRequestsException", "Throttling", None,
            "LimitExceededException", None, "InternalFailure", None]
    with SesFaults(plan) as faults:
        worker_trigger(mta, SendWorker(get_settings(), runtime=runtime)).drain()
    assert faults.injected == 5
    assert sent_to() == Counter(emails(3))
    pacing = 1 / (1000 / 2)  # the local account's 1,000/s shared by SendConcurrency=2 workers
    backoffs = [round(sleep, 6) for sleep in runtime.sleeps if round(sleep, 6) != round(pacing, 6)]
    assert backoffs == [0.25, 0.5, 1.0, 0.25, 0.25]  # full jitter at its ceiling (random = 1): doubling per message
    assert emitted.count(metrics.SEND_THROTTLES) == 4  # the 5xx is retried too, but it is not throttling
    assert counts(api, delivery_id) == {"processed": 3, "sent": 3}


def test_when_throttling_outlasts_the_budget_the_chunk_goes_back_on_the_queue(api: Any, mta: Any,
                                                                              resources: Any) -> None:
    environment.apply({"SENDTRAIL_SEND_CHUNK_MAX_SECONDS": "30", "SENDTRAIL_SEND_THROTTLED_RETRY_DELAY_SECONDS": "0"})
    delivery_id = create(api, emails(4))
    act(api, delivery_id, "send", 202)
    runtime = FakeRuntime()
    with SesFaults([None, "TooManyRequestsException"], forever=True):
        worker_trigger(mta, SendWorker(get_settings(), runtime=runtime)).step()
    assert sum(runtime.sleeps) <= 30 and len(OUTBOX.messages()) == 1
    assert counts(api, delivery_id) == {"processed": 4, "prepared": 3, "sent": 1}  # nothing left pending
    assert show(api, delivery_id)["state"] == "in_progress"
    mta.send()  # the chunk came back; SES takes messages again
    assert sent_to() == Counter(emails(4)) and show(api, delivery_id)["state"] == "finished"


def test_a_lost_answer_is_never_sent_again(api: Any, mta: Any, resources: Any) -> None:
    delivery_id = create(api, emails(3))
    act(api, delivery_id, "send", 202)
    lost = ReadTimeoutError(endpoint_url="https://email.us-east-1.amazonaws.com")
    with SesFaults([None, lost, lost]):
        mta.send()
    assert counts(api, delivery_id) == {"processed": 3, "sent": 1, "pending": 2}
    assert show(api, delivery_id)["state"] == "in_progress"
    # SES did send the second one: its Send event says so.
    store = DeliveryStore(get_settings().deliveries_table, get_settings().delivery_logs_table)
    second = store.get_log(delivery_id, 2)
    assert second is not None and second["answer_lost_at"]
    message = OUTBOX.messages()[0]
    from dataclasses import replace

    mail = mail_object(replace(message, message_id="ses-2", to=[second["email"]],
                               tags={"delivery_id": delivery_id, "log_id": "2"}))
    from chalicelib.mta.events import SesEventsConsumer

    consumer = SesEventsConsumer(get_settings())
    body = sns_notification(send_event(mail), "arn:aws:sns:us-east-1:123456789012:sendtrail-local-ses-events")
    import json

    assert consumer.apply_notification(json.dumps(body)) == "applied: Send"
    # Nothing came for the third: 15 minutes later its chunk (queued again, delayed) settles it.
    runtime = FakeRuntime(now=time.time() + 16 * 60)
    SendWorker(get_settings(), runtime=runtime).process(ChunkIn(delivery_id=delivery_id, first=1, last=3), 60)
    third = store.get_log(delivery_id, 3)
    assert third is not None and (third["status"], third["failure_reason"]) == ("failed", "error_ignored")
    assert counts(api, delivery_id) == {"processed": 3, "sent": 2, "failed": 1}
    assert show(api, delivery_id)["state"] == "finished"
    assert len(OUTBOX.messages()) == 1  # nothing was sent twice


def test_ses_sending_paused_holds_the_job_and_says_why(api: Any, mta: Any) -> None:
    delivery_id = create(api, emails(2))
    act(api, delivery_id, "send", 202)
    ses_account.ACCOUNT.sending_enabled = False
    mta.send()
    held = show(api, delivery_id)
    assert (held["state"], held["stalled"], held["reason"]["code"]) == ("in_progress", True, "ses_sending_paused")
    assert OUTBOX.messages() == [] and held["counts"]["prepared"] == 2
    ses_account.ACCOUNT.sending_enabled = True
    ses_account.ACCOUNT.max_24_hour_send = 0
    assert show(api, delivery_id)["reason"]["code"] == "ses_daily_quota"


def test_a_job_nobody_takes_is_reported_stalled_since_it_was_queued(api: Any, mta: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.api import deliveries as deliveries_api

    delivery_id = create(api, emails(1))
    queued = act(api, delivery_id, "send", 202)
    assert queued["stalled"] is False and queued["reason"] is None
    later = queued["state_since"] + get_settings().send_stall_seconds * 1000
    monkeypatch.setattr(deliveries_api, "_now_ms", lambda: later)
    stalled = show(api, delivery_id)
    assert stalled["stalled"] is True
    assert stalled["reason"]["code"] == "job_stalled" and stalled["reason"]["since"] == queued["state_since"]
    assert "no send worker has taken it" in stalled["reason"]["message"]
    store = DeliveryStore(get_settings().deliveries_table, get_settings().delivery_logs_table)
    oldest = store.oldest_in_state("start_pending")
    assert oldest is not None and (oldest["delivery_id"], oldest["state_since"]) == (delivery_id, queued["state_since"])
    mta.send()
    assert store.oldest_in_state("start_pending") is None


def test_the_delivery_monitor_measures_what_waits_sends_and_stalled_every_minute(
        api: Any, mta: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import app as app_module
    from chalicelib.mta import gauges
    from infra.local_runtime.triggers import ScheduledTrigger

    emitted: list[tuple[str, float, str, dict[str, str]]] = []
    monkeypatch.setattr(metrics, "emit", lambda name, value=1, unit=metrics.COUNT, **dimensions: emitted.append(
        (name, value, unit, dimensions)))
    monitor = ScheduledTrigger("delivery_monitor", app_module.delivery_monitor)  # as EventBridge invokes it

    def measure(at_ms: int | None = None) -> dict[str, Any]:
        emitted.clear()
        if at_ms is not None:
            monkeypatch.setattr(gauges, "_now_ms", lambda: at_ms)
        measured = monitor.step()
        assert emitted == [
            (metrics.OLDEST_START_PENDING, measured["oldest_start_pending_seconds"], metrics.SECONDS, {}),
            (metrics.DELIVERIES_SENDING, measured["sending"], metrics.COUNT, {}),
            (metrics.DELIVERIES_STALLED, measured["stalled"], metrics.COUNT, {})]
        return measured

    assert measure() == {"oldest_start_pending_seconds": 0, "sending": 0, "stalled": 0}  # emitted as 0, not left out
    first, second, paused = create(api, emails(1)), create(api, emails(1)), create(api, emails(1))
    queued_at = act(api, first, "send", 202)["state_since"]
    act(api, second, "send", 202)
    act(api, paused, "send", 202)
    act(api, paused, "pause")  # not meant to send: not counted
    assert measure(queued_at + 120_000) == {"oldest_start_pending_seconds": 120.0, "sending": 2, "stalled": 0}
    stall_ms = get_settings().send_stall_seconds * 1000
    assert measure(queued_at + stall_ms + 1_000) == {"oldest_start_pending_seconds": stall_ms / 1000 + 1,
                                                     "sending": 2, "stalled": 2}  # no worker took them
    ses_account.ACCOUNT.sending_enabled = False
    mta.send()  # taken, but held back: in_progress, no message sent
    ses_account.ACCOUNT.sending_enabled = True
    started = show(api, first)
    assert (started["state"], started["counts"]["sent"]) == ("in_progress", 0)
    assert measure(started["started_at"] + 60_000) == {"oldest_start_pending_seconds": 0, "sending": 2, "stalled": 0}
    assert measure(started["started_at"] + stall_ms + 1_000)["stalled"] == 2


# --- excluded recipients, exact counts at scale ------------------------------------------

@pytest.mark.parametrize("domains", [1, 40])
def test_a_full_claim_batch_is_recorded_in_two_transactions_not_log_by_log(api: Any, mta: Any, resources: Any,
                                                                            domains: int) -> None:
    """98 sent logs, the summary and 2 counters are 101 items, over DynamoDB's 100: split in two, not 98 writes.
    To 40 domains, a counter each: 58 logs fit the first transaction, 40 the second."""
    environment.apply({"SENDTRAIL_SEND_CLAIM_BATCH": "98"})
    delivery_id = create(api, [f"person{index}@d{index % domains}.example.net" for index in range(1, 99)])
    act(api, delivery_id, "send", 202)
    with tap() as observed:
        assert mta.send() == 1
    assert counts(api, delivery_id) == {"processed": 98, "sent": 98}
    assert observed.calls[("dynamodb", "TransactWriteItems")] == 3  # the claim, then the results in two


def test_five_thousand_recipients_in_chunks_with_exact_counts(api: Any, mta: Any, resources: Any) -> None:
    environment.apply({"SENDTRAIL_SEND_CLAIM_BATCH": "98"})
    recipients = emails(5000)
    recipients[100:110] = ["not an address"] * 10  # invalid: ignored at creation
    recipients[200:220] = recipients[300:320]  # duplicates: the later ones are ignored
    dynamodb, table = boto3.client("dynamodb"), get_settings().addresses_table
    for address in recipients[1000:1030]:
        dynamodb.put_item(TableName=table, Item={"address": {"S": address}, "quarantine_status": {"S": "quarantined"},
                                                 "quarantine_reason": {"S": "user_unknown"}})
    for address in recipients[2000:2005]:
        dynamodb.put_item(TableName=table, Item={"address": {"S": address}, "unsubscribed_at": {"N": "1"}})
    delivery_id = create(api, recipients)
    started = time.monotonic()
    act(api, delivery_id, "send", 202)
    queue = get_settings().send_queue_url
    assert int(boto3.client("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=[
        "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"]) == 10  # 500 a chunk
    boto3.client("sqs").send_message(QueueUrl=queue, MessageBody=f'{{"delivery_id": "{delivery_id}", "first": 501, '
                                                                 f'"last": 1000}}')  # a duplicated chunk
    assert mta.send() == 11
    elapsed = time.monotonic() - started
    final = show(api, delivery_id)
    assert final["state"] == "finished"
    assert nonzero(final["counts"]) == {
        "processed": 4935, "sent": 4935, "ignored": 65}
    assert final["failures"]["ignored"] == {"total": 65, "reasons": [
        {"reason": "quarantined", "code": 9, "count": 30}, {"reason": "duplicate", "code": 10, "count": 20},
        {"reason": "address_not_specified", "code": 7, "count": 10}, {"reason": "denylisted", "code": 8, "count": 5}]}
    messages = OUTBOX.messages()
    assert len(messages) == 4935 and len({message.tags["log_id"] for message in messages}) == 4935
    assert final["throughput"]["messages"] == 4935
    print(f"5,000 recipients: sent in {elapsed:.1f} s")
