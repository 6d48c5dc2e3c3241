"""GET /api/status over moto: every component OK on a healthy stack, and each injected failure reported."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest

from chalicelib import status
from chalicelib.clock import now_ms
from chalicelib.data.tracking import STATE_KEY
from chalicelib.settings import get_settings
from infra.local_runtime import environment
from tests.conftest import KEYRING_V1

COMPONENTS = ["hit_endpoints", "signing_keys", "hit_stream", "hit_fallback", "redirection_logs", "tracking_workflow", "ses",
              "send_work_queue", "send_work_dlq", "ses_events_queue", "ses_events_dlq"]


def components(api: Any, expected: list[str] = COMPONENTS) -> dict[str, dict[str, Any]]:
    response = api.get("/api/status")
    assert response.status_code == 200, response.body
    body = response.json_body
    assert [item["component"] for item in body["components"]] == expected
    assert body["status"] == max((item["status"] for item in body["components"]), key=status.SEVERITY.__getitem__)
    return {item["component"]: item for item in body["components"]}


def run_the_workflow(api: Any) -> None:
    assert api.post("/api/workflow/run").json_body["status"] in ("idle", "completed")


def set_workflow_state(**values: Any) -> None:
    names = {f"#{name}": name for name in values}
    boto3.client("dynamodb").update_item(
        TableName=get_settings().workflow_table, Key=STATE_KEY,
        UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in values),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":{name}": ({"N": str(value)} if isinstance(value, int) else {"S": value})
                                   for name, value in values.items()})


def test_a_healthy_stack_is_ok_in_every_component(api: Any) -> None:
    run_the_workflow(api)
    found = components(api)
    assert {name: item["status"] for name, item in found.items()} == dict.fromkeys(COMPONENTS, "OK"), found
    assert found["hit_endpoints"]["details"]["redirection_status"].startswith("<redir status='OK'")
    assert found["hit_endpoints"]["details"]["url"] == "https://t.example.com/r/test"
    assert "sendtrail-local-hits ACTIVE, 1 open shard(s), accepts writes" in found["hit_stream"]["reason"]
    assert found["redirection_logs"]["reason"].startswith("sendtrail-local-redirection-logs ACTIVE, from sendtrail")
    assert found["tracking_workflow"]["reason"].startswith("last success ")
    assert found["ses"]["details"]["sending_enabled"] is True
    assert found["send_work_queue"]["reason"] == found["ses_events_queue"]["reason"] == "0 waiting, 0 in flight"
    assert found["send_work_dlq"]["reason"] == found["ses_events_dlq"]["reason"] == "empty"
    assert found["ses_events_dlq"]["details"]["queue_url"].endswith("/sendtrail-local-ses-events-dlq")


def test_the_status_needs_the_api_token(client: Any) -> None:
    assert client.get("/api/status").status_code == 401


def test_a_deleted_hit_stream_fails(api: Any) -> None:
    run_the_workflow(api)
    boto3.client("kinesis").delete_stream(StreamName=get_settings().hit_stream)
    found = components(api)
    assert found["hit_stream"]["status"] == "FAIL"
    assert found["hit_stream"]["reason"] == ("the hit stream sendtrail-local-hits does not exist: every hit goes to "
                                             "the fallback objects")


def test_a_deleted_firehose_delivery_stream_fails(api: Any) -> None:
    run_the_workflow(api)
    boto3.client("firehose").delete_delivery_stream(DeliveryStreamName=get_settings().redirection_log_delivery_stream)
    found = components(api)
    assert found["redirection_logs"]["status"] == "FAIL"
    assert "does not exist: hits stay in Kinesis" in found["redirection_logs"]["reason"]
    assert found["hit_stream"]["status"] == "OK"


def put_hit_metrics(**sums: int) -> None:
    """The hit path's counts of the last minutes, as CloudWatch holds them (the handlers' EMF)."""
    boto3.client("cloudwatch").put_metric_data(Namespace="sendtrail", MetricData=[
        {"MetricName": name, "Dimensions": [{"Name": "stage", "Value": "local"}], "Value": value, "Unit": "Count"}
        for name, value in sums.items()])


def test_the_fallback_is_ok_when_no_hit_takes_it(api: Any) -> None:
    found = components(api)["hit_fallback"]
    assert found["status"] == "OK", found
    assert found["reason"].startswith("no hit took the fallback in the last 15 min; fallback stream "
                                      "sendtrail-local-redirection-fallback ACTIVE"), found
    assert found["details"]["window_minutes"] == 15


def test_hits_taking_the_fallback_warn_and_a_failing_fallback_fails(api: Any) -> None:
    put_hit_metrics(HitStreamPutFailures=12, FallbackStreamWrites=12)
    found = components(api)["hit_fallback"]
    assert found["status"] == "WARN", found
    assert found["reason"].startswith("12 hit(s) took the fallback in the last 15 min (Kinesis puts failed): "
                                      "the fallback stream took 12"), found
    put_hit_metrics(HitStreamPutFailures=3, FallbackStreamPutFailures=3, FallbackWrites=3)
    found = components(api)["hit_fallback"]
    assert found["status"] == "FAIL", found
    assert "the fallback stream refused 3: written as 3 object(s) of their own" in found["reason"], found
    assert found["details"]["sums"] == {"HitStreamPutFailures": 15, "FallbackStreamWrites": 12,
                                        "FallbackStreamPutFailures": 3, "FallbackWrites": 3, "HitsUnrecorded": 0}
    put_hit_metrics(HitsUnrecorded=1)
    assert "1 hit(s) recorded nowhere" in components(api)["hit_fallback"]["reason"]


def test_a_deleted_fallback_stream_warns_while_kinesis_takes_every_hit(api: Any) -> None:
    boto3.client("firehose").delete_delivery_stream(DeliveryStreamName=get_settings().redirection_log_fallback_stream)
    found = components(api)["hit_fallback"]
    assert found["status"] == "WARN", found
    assert "does not exist: a hit Kinesis refuses becomes an S3 object of its own" in found["reason"], found


def test_paused_ses_sending_fails(api: Any) -> None:
    run_the_workflow(api)
    boto3.client("sesv2").put_account_sending_attributes(SendingEnabled=False)
    found = components(api)
    assert found["ses"]["status"] == "FAIL"
    assert found["ses"]["reason"] == "sending is disabled for the account: SES sends nothing"
    boto3.client("sesv2").put_account_sending_attributes(SendingEnabled=True)
    assert components(api)["ses"]["status"] == "OK"


def test_a_workflow_that_never_ran_fails(api: Any) -> None:
    found = components(api)
    assert found["tracking_workflow"]["status"] == "FAIL"
    assert found["tracking_workflow"]["reason"] == "the tracking workflow has never run successfully"


def test_a_stale_workflow_state_is_stalled(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.api import status as status_route

    run_the_workflow(api)
    now = int(time.time() * 1000)
    monkeypatch.setattr(status_route, "now_ms", lambda: now)  # the check's "now", however slow the machine
    set_workflow_state(last_success_at=now - 3_700_000, last_run_at=now - 120_000, last_run_status="failed",
                       last_error="WorkflowError: pending run 7: its record cannot be read")
    found = components(api)["tracking_workflow"]
    assert found["status"] == "FAIL"
    assert found["reason"].startswith("stalled: no successful run for 61 min 40 s (more than 3 schedule periods); "
                                      "last run 2 min 0 s ago: failed (WorkflowError: pending run 7")


def test_a_failing_run_is_recorded_and_reported(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.tracking import workflow

    run_the_workflow(api)

    def broken(self: Any, checkpoint: Any) -> Any:
        raise RuntimeError("S3 listing refused")

    monkeypatch.setattr(workflow.TrackingWorkflow, "_plan", broken)
    assert api.post("/api/workflow/run").status_code == 500
    found = components(api)["tracking_workflow"]
    assert found["status"] == "WARN"
    assert found["reason"].startswith("the last run failed: RuntimeError: S3 listing refused; last success ")
    monkeypatch.undo()
    run_the_workflow(api)
    found = components(api)["tracking_workflow"]
    assert found["status"] == "OK" and found["details"]["last_error"] is None


def test_a_workflow_backlog_warns(api: Any) -> None:
    run_the_workflow(api)
    set_workflow_state(lag_seconds=900)
    found = components(api)["tracking_workflow"]
    assert (found["status"], found["reason"]) == (
        "WARN", "backlog: the oldest unprocessed redirection log is 15 min 0 s old")


def test_broken_signing_keys_and_url_tables_fail_the_hit_endpoints(api: Any) -> None:
    run_the_workflow(api)
    environment.apply({"SENDTRAIL_SIGNING_KEYS": '{"active": 2, "keys": {}}'})
    found = components(api)["hit_endpoints"]
    assert (found["status"], found["reason"]) == ("FAIL", "links cannot be verified: active signing key 2 is not in "
                                                          "the ring")
    environment.apply({"SENDTRAIL_SIGNING_KEYS_PARAMETER": "/sendtrail/local/missing"},
                      remove=("SENDTRAIL_SIGNING_KEYS",))
    found = components(api)["hit_endpoints"]
    assert found["status"] == "FAIL" and found["reason"].startswith(
        "links cannot be verified: the key ring cannot be read (")
    environment.apply({"SENDTRAIL_SIGNING_KEYS": KEYRING_V1}, remove=("SENDTRAIL_SIGNING_KEYS_PARAMETER",))
    boto3.client("dynamodb").delete_table(TableName=get_settings().deliveries_table)
    found = components(api)["hit_endpoints"]
    assert found["status"] == "FAIL"
    assert found["reason"].startswith("URL tables unreadable (sendtrail-local-deliveries): ResourceNotFoundException")


def test_a_check_that_raises_or_hangs_reports_why_and_the_others_still_answer(resources: Any) -> None:
    def raises(context: status.StatusContext) -> status.ComponentStatus:
        raise ValueError("surprise")

    def hangs(context: status.StatusContext) -> status.ComponentStatus:
        time.sleep(1)
        return status.ComponentStatus("slow", "OK", "late")

    checks = [status.Check("broken", raises), status.Check("slow", hangs),
              status.Check("fine", lambda context: status.ComponentStatus("fine", "OK", "fine"))]
    report = status.report(status.StatusContext(get_settings(), now_ms()), checks, timeout_seconds=0.3)
    assert report["status"] == "FAIL"
    assert [(item["component"], item["status"], item["reason"]) for item in report["components"]] == [
        ("broken", "FAIL", "could not be checked: ValueError: surprise"),
        ("slow", "FAIL", "no answer within 0.3 s"),
        ("fine", "OK", "fine"),
    ]


def send_messages(queue_url: str, count: int, delay_seconds: int = 0) -> None:
    sqs = boto3.client("sqs")
    for start in range(0, count, 10):
        sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(number), "MessageBody": "{}", "DelaySeconds": delay_seconds}
            for number in range(start, min(count, start + 10))])


def test_messages_left_in_the_dead_letter_queues_are_reported_with_what_they_mean(api: Any) -> None:
    run_the_workflow(api)
    settings = get_settings()
    send_messages(settings.send_dead_letter_queue_url, 2)
    send_messages(settings.ses_events_dead_letter_queue_url, 1)
    body = api.get("/api/status").json_body
    found = {item["component"]: item for item in body["components"]}
    assert body["status"] == "FAIL"
    assert (found["send_work_dlq"]["status"], found["send_work_dlq"]["details"]["messages"]) == ("FAIL", 2)
    assert found["send_work_dlq"]["reason"].startswith(
        "2 send job(s) failed every retry: their recipients are not sent and the delivery shows as stalled. Fix the "
        "cause (the send worker's log), then redrive them to the send work queue")
    assert found["ses_events_dlq"]["status"] == "WARN"  # sending goes on; the logs miss events
    assert found["ses_events_dlq"]["reason"].startswith(
        "1 SES event(s) failed every retry: delivery logs, bounces and quarantine miss them.")
    assert found["send_work_queue"]["status"] == found["ses_events_queue"]["status"] == "OK"


def test_a_deep_ses_events_queue_warns_then_fails_and_held_back_send_jobs_show(api: Any) -> None:
    run_the_workflow(api)
    environment.apply({"SENDTRAIL_SES_EVENTS_QUEUE_WARN_AT": "3", "SENDTRAIL_SES_EVENTS_QUEUE_FAIL_AT": "5"})
    settings = get_settings()
    send_messages(settings.ses_events_queue_url, 3)
    send_messages(settings.send_queue_url, 3)
    send_messages(settings.send_queue_url, 1, delay_seconds=900)  # a chunk held back while SES is paused
    found = components(api)
    assert (found["ses_events_queue"]["status"], found["ses_events_queue"]["reason"]) == (
        "WARN", "3 messages waiting (WARN from 3)")
    assert (found["send_work_queue"]["status"], found["send_work_queue"]["reason"]) == (
        "OK", "3 waiting, 0 in flight, 1 delayed")  # a large delivery queues many chunks: no fault
    send_messages(settings.ses_events_queue_url, 2)
    assert (components(api)["ses_events_queue"]["status"], get_settings().ses_events_queue_fail_at) == ("FAIL", 5)


def test_deleted_or_unconfigured_queues_fail_or_warn_saying_why(api: Any) -> None:
    run_the_workflow(api)
    settings = get_settings()
    sqs = boto3.client("sqs")
    for url in (settings.send_queue_url, settings.ses_events_queue_url, settings.ses_events_dead_letter_queue_url):
        sqs.delete_queue(QueueUrl=url)
    found = components(api)
    assert {name: item["status"] for name, item in found.items() if "queue" in name or "dlq" in name} == {
        "send_work_queue": "FAIL", "send_work_dlq": "OK", "ses_events_queue": "FAIL", "ses_events_dlq": "FAIL"}
    assert found["send_work_queue"]["reason"] == ("the queue sendtrail-local-send-work does not exist: send jobs "
                                                  "cannot be queued: sending a delivery fails")
    assert found["ses_events_queue"]["reason"] == (
        "the queue sendtrail-local-ses-events does not exist: SES events reach no delivery log: deliveries, bounces "
        "and complaints go unrecorded")
    assert found["ses_events_dlq"]["reason"].startswith("the queue sendtrail-local-ses-events-dlq does not exist")
    context = status.StatusContext(get_settings(), now_ms())
    unconfigured = [status.queue_backlog("q", lambda settings: None, if_missing="-", warn_at=lambda settings: 1),
                    status.dead_letter_queue("dlq", lambda settings: "", held_means="-", if_missing="-")]
    assert [(item["status"], item["reason"]) for item in status.report(context, unconfigured)["components"]] == [
        ("WARN", "no queue configured"), ("WARN", "no queue configured")]


@pytest.mark.parametrize(("account", "expected"), [
    ({"SendingEnabled": True, "EnforcementStatus": "HEALTHY", "ProductionAccessEnabled": True,
      "SendQuota": {"Max24HourSend": 50000, "SentLast24Hours": 100, "MaxSendRate": 14}},
     ("OK", "sending enabled; 0.2 % of the 24-hour quota used; up to 14 messages/s")),
    ({"SendingEnabled": True, "EnforcementStatus": "HEALTHY", "ProductionAccessEnabled": True,
      "SendQuota": {"Max24HourSend": 50000, "SentLast24Hours": 45000, "MaxSendRate": 14}},
     ("WARN", "90 % of the 24-hour quota used (45000 of 50000)")),
    ({"SendingEnabled": True, "EnforcementStatus": "HEALTHY", "ProductionAccessEnabled": True,
      "SendQuota": {"Max24HourSend": 200, "SentLast24Hours": 200, "MaxSendRate": 1}},
     ("FAIL", "the 24-hour quota is used up (200 of 200)")),
    ({"SendingEnabled": True, "EnforcementStatus": "PROBATION", "ProductionAccessEnabled": False,
      "SendQuota": {"Max24HourSend": 200, "SentLast24Hours": 0, "MaxSendRate": 1}},
     ("WARN", "enforcement status PROBATION (bounces or complaints too high); sandbox: only verified addresses "
              "receive mail")),
    ({"SendingEnabled": True, "EnforcementStatus": "SHUTDOWN", "SendQuota": {}},
     ("FAIL", "SES has shut sending down for the account (enforcement SHUTDOWN)")),
])
def test_ses_account_assessment(account: dict[str, Any], expected: tuple[str, str]) -> None:
    judged = status.assess_ses(account)
    assert (judged.status, judged.reason) == expected
