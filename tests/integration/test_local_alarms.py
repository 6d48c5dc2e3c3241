"""Alarms on the local runtime: the handlers' EMF into moto, the template's alarms evaluated, alerts on the topic.

The clock is a fake one that the metrics' timestamps and the evaluation
share: minutes pass in milliseconds.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timezone
from typing import Any, Iterator

import boto3
import pytest

import app as app_module
from chalicelib import metrics, tokens
from chalicelib.data.redirection_logs import hour_partition
from chalicelib.data.tracking import TrackingStore, WorkflowStateStore
from chalicelib.settings import get_settings
from infra.local_runtime import ses_account
from infra.local_runtime.alarms import (
    AlarmDefinition,
    EmfCapture,
    LocalAlarms,
    QueueMetrics,
    alarm_definitions,
    emf_datums,
    evaluate_expression,
)
from infra.local_runtime.lambda_metrics import LambdaMetrics, Throttled
from infra.local_runtime.ses_events import simulated_events
from infra.local_runtime.ses_outbox import OUTBOX
from infra.local_runtime.triggers import ScheduledTrigger
from tests.integration.test_hit_endpoints import make_delivery, token
from tests.integration.test_send_jobs import act, create, emails
from tests.tracking_harness import FakeClock, put_log, put_processed_objects
from tests.tracking_logs import record

MINUTE = 60

STALL_OBJECTS = int(os.environ.get("WORKFLOW_STALL_OBJECTS", "6000"))  # the 60,000 in make load-tests


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A clock 5 s into a minute, shared by the metrics' timestamps and the evaluation."""
    fake = FakeClock((int(datetime.now(tz=timezone.utc).timestamp()) // MINUTE) * MINUTE + 5)
    monkeypatch.setattr(metrics, "clock", fake)
    return fake


@pytest.fixture
def capture(resources: Any) -> Iterator[EmfCapture]:
    metrics.discard()
    capture = EmfCapture().install()
    yield capture
    capture.uninstall()


@pytest.fixture
def alerts(resources: Any) -> Any:
    """An SQS queue subscribed to the alert topic: every alert CloudWatch would send, as SNS delivers it."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="alert-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=resources.refs["AlertTopic"], Protocol="sqs", Endpoint=arn)

    kept: list[tuple[dict[str, Any], dict[str, Any]]] = []  # other alarms' alerts, for their own call

    def received(alarm_name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """The alerts about `alarm_name` that arrived since the last call asking for it."""
        while True:
            batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                break
            for item in batch:
                envelope = json.loads(item["Body"])
                kept.append((envelope, json.loads(envelope["Message"])))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=item["ReceiptHandle"])
        found = [(envelope, message) for envelope, message in kept if message["AlarmName"] == alarm_name]
        kept[:] = [(envelope, message) for envelope, message in kept if message["AlarmName"] != alarm_name]
        return found

    return received


@pytest.fixture
def lambdas(resources: Any, clock: FakeClock) -> Iterator[LambdaMetrics]:
    """AWS/Lambda's metrics of the functions invoked locally, on the fake clock."""
    recorder = LambdaMetrics.for_stack(resources, clock=clock).install()
    yield recorder
    recorder.uninstall()


def state(alarm_name: str) -> str:
    [alarm] = boto3.client("cloudwatch").describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"]
    return alarm["StateValue"]


def test_a_stopped_workflow_goes_to_alarm_and_an_alert_arrives(
        resources: Any, clock: FakeClock, capture: EmfCapture, alerts: Any) -> None:
    stalled = resources.refs["TrackingWorkflowStalledAlarm"]
    alarms = LocalAlarms(resources, clock=clock, capture=capture)
    workflow = ScheduledTrigger("tracking_workflow", app_module.tracking_workflow)  # as EventBridge invokes it
    assert state(stalled) == "INSUFFICIENT_DATA"

    for _ in range(4):  # the schedule runs the workflow every minute
        workflow.step()
        clock.advance(MINUTE)
        alarms.step()
    assert state(stalled) == "OK"
    [(_, recovered)] = alerts(stalled)
    assert (recovered["OldStateValue"], recovered["NewStateValue"]) == ("INSUFFICIENT_DATA", "OK")

    minutes_without = 0
    while state(stalled) == "OK":  # the workflow stops
        clock.advance(MINUTE)
        alarms.step()
        minutes_without += 1
        assert minutes_without <= 3, "3 periods without a successful run and still OK"
    assert minutes_without == 3  # the last run's period, then 3 empty ones
    [(envelope, alert)] = alerts(stalled)
    assert envelope["Type"] == "Notification" and envelope["TopicArn"] == resources.refs["AlertTopic"]
    assert envelope["Subject"] == f'ALARM: "{stalled}" in US East (N. Virginia)'
    assert alert["NewStateValue"] == "ALARM" and alert["OldStateValue"] == "OK"
    assert alert["NewStateReason"] == ("Threshold Crossed: no datapoints were received for 3 periods and 3 missing "
                                       "datapoints were treated as [Breaching].")
    assert alert["AlarmArn"].endswith(f":alarm:{stalled}") and alert["AWSAccountId"] == "123456789012"
    assert alert["Trigger"] == {
        "MetricName": "WorkflowSuccesses", "Namespace": "sendtrail", "StatisticType": "Statistic",
        "Statistic": "SUM", "Unit": None, "Dimensions": [{"value": "local", "name": "stage"}], "Period": 60,
        "EvaluationPeriods": 3, "DatapointsToAlarm": 3, "ComparisonOperator": "LessThanThreshold",
        "Threshold": 1.0, "TreatMissingData": "breaching", "EvaluateLowSampleCountPercentile": ""}
    assert alert["AlarmActions"] == [resources.refs["AlertTopic"]]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", alert["StateChangeTime"])

    workflow.step()  # running again: OK with the next evaluation
    clock.advance(MINUTE)
    alarms.step()
    assert state(stalled) == "OK"
    [(_, back)] = alerts(stalled)
    assert back["NewStateValue"] == "OK" and back["NewStateReason"].startswith(
        "Threshold Crossed: 1 out of the last 1 datapoint [1 (")


def test_new_objects_behind_60000_processed_ones_are_tracked_and_a_stopped_workflow_alarms(
        resources: Any, clock: FakeClock, capture: EmfCapture, alerts: Any) -> None:
    """Issue 13: with 50,000 processed objects between the checkpoint and new objects, every run said idle.

    A day of Kinesis throttling at one hit a second leaves 3,600 fallback
    objects an hour; here 16 hours of them (60,000), all processed, lie
    after the checkpoint, then new objects: the next runs track them. Then
    the workflow stops while objects wait: the stalled alarm fires.
    `make test` keeps the proportion at a tenth of the size (WORKFLOW_STALL_OBJECTS=6,000 past a run's listing
    limit of 5 pages instead of 50); `make load-tests` runs the 60,000.
    """
    from infra.local_runtime import environment

    environment.apply({"SENDTRAIL_WORKFLOW_MAX_LIST_PAGES": str(max(1, STALL_OBJECTS * 50 // 60_000))})
    environment.forget_cached_configuration()
    settings = get_settings()
    stalled = resources.refs["TrackingWorkflowStalledAlarm"]
    alarms = LocalAlarms(resources, clock=clock, capture=capture,
                         definitions=only(resources, "TrackingWorkflowStalledAlarm", "TrackingBacklogAlarm"))
    now_ms = int(time.time() * 1000)
    hours = [hour_partition(now_ms - (16 - index) * 3_600_000) for index in range(16)]
    for hour in hours:
        put_processed_objects(hour, STALL_OBJECTS // 16)
    boto3.client("dynamodb").put_item(TableName=settings.workflow_table, Item={  # as main's last run left it
        "pk": {"S": "state"}, "sk": {"S": "tracking-workflow"}, "checkpoint": {"S": hours[0]}, "run_seq": {"N": "7"}})
    delivery_id = "00112233445566ff"
    for log_id, at_ms in ((1, now_ms - 3_600_000), (2, now_ms)):  # Firehose's names sort after fallback-...
        put_log(f"sendtrail-local-redirection-logs-1-{log_id}",
                [record(kind="click", delivery_id=delivery_id, log_id=log_id, url_id=4, ts=at_ms)], at_ms)
    workflow = ScheduledTrigger("tracking_workflow", app_module.tracking_workflow)
    for _ in range(4):
        workflow.step()
        clock.advance(MINUTE)
        alarms.step()
    tracked = TrackingStore.of(settings).indicators(delivery_id)
    assert tracked is not None and (tracked["clicks_total"], tracked["clicks_unique"]) == (2, 2)
    assert state(stalled) == "OK"
    position = WorkflowStateStore(settings.workflow_table).get_state()
    assert position["cursor"].endswith("/sendtrail-local-redirection-logs-1-2")
    assert (position["backlog_objects"], position["lag_seconds"]) == (0, 0)

    put_log("sendtrail-local-redirection-logs-1-3",  # the workflow stops; a new object waits
            [record(kind="click", delivery_id=delivery_id, log_id=3, url_id=4, ts=now_ms)], now_ms)
    minutes_without = 0
    while state(stalled) == "OK":
        clock.advance(MINUTE)
        alarms.step()
        minutes_without += 1
        assert minutes_without <= 3, "3 periods without a successful run while an object waits, and still OK"
    [(_, alert)] = [item for item in alerts(stalled) if item[1]["NewStateValue"] == "ALARM"]
    assert alert["NewStateReason"].startswith("Threshold Crossed: no datapoints were received for 3 periods")


def test_failing_stream_puts_raise_the_hit_errors_alarm(
        client: Any, resources: Any, clock: FakeClock, capture: EmfCapture, alerts: Any) -> None:
    errors = resources.refs["HitErrorsAlarm"]
    alarms = LocalAlarms(resources, clock=clock, capture=capture)
    make_delivery()
    click = token(tokens.KIND_CLICK, 4)
    assert client.get(f"/r/{click}").status_code == 302
    boto3.client("kinesis").delete_stream(StreamName=get_settings().hit_stream)
    for _ in range(4):
        assert client.get(f"/r/{click}").status_code == 302  # answered: kept in the redirection logs
    clock.advance(5 * MINUTE)
    alarms.step()
    assert state(errors) == "OK"  # 4 failed puts in 5 minutes: under the threshold of 5
    for _ in range(5):
        client.get(f"/r/{click}")
    clock.advance(5 * MINUTE)
    alarms.step()
    assert state(errors) == "ALARM"
    [(_, alert)] = [item for item in alerts(errors) if item[1]["NewStateValue"] == "ALARM"]
    assert alert["NewStateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoint [5 (")
    assert "greater than or equal to the threshold (5)" in alert["NewStateReason"]
    assert [query["Id"] for query in alert["Trigger"]["Metrics"]] == ["errors", "put_failures", "unrecorded",
                                                                       "server_errors"]


def test_failing_fallback_stream_puts_raise_the_fallback_alarm(
        client: Any, resources: Any, clock: FakeClock, capture: EmfCapture, alerts: Any) -> None:
    """Kinesis down takes the fallback (hit errors); the fallback stream failing too is its own alarm, at once."""
    fallback = resources.refs["HitFallbackFailuresAlarm"]
    alarms = LocalAlarms(resources, clock=clock, capture=capture)
    make_delivery()
    click = token(tokens.KIND_CLICK, 4)
    boto3.client("kinesis").delete_stream(StreamName=get_settings().hit_stream)
    assert client.get(f"/r/{click}").status_code == 302  # into the fallback stream: no fallback failure
    clock.advance(5 * MINUTE)
    alarms.step()
    assert state(fallback) == "OK"
    boto3.client("firehose").delete_delivery_stream(DeliveryStreamName=get_settings().redirection_log_fallback_stream)
    assert client.get(f"/r/{click}").status_code == 302  # its own redirection-log object: kept, but the batching
    clock.advance(5 * MINUTE)                             # path is broken
    alarms.step()
    assert state(fallback) == "ALARM"
    [(_, alert)] = [item for item in alerts(fallback) if item[1]["NewStateValue"] == "ALARM"]
    assert alert["Trigger"]["MetricName"] == metrics.FALLBACK_STREAM_PUT_FAILURES


def test_emf_lines_become_one_datum_per_value_metric_and_dimension_set() -> None:
    line = json.dumps({"_aws": {"Timestamp": 1_796_000_000_000, "CloudWatchMetrics": [{
        "Namespace": "sendtrail", "Dimensions": [["stage"], ["stage", "reason"]],
        "Metrics": [{"Name": "HitsRejected", "Unit": "Count"}]}]},
        "stage": "dev", "reason": "expired", "HitsRejected": [1.0, 1.0]})
    datums = emf_datums(line)
    assert [(namespace, datum["Dimensions"], datum["Value"]) for namespace, datum in datums] == [
        ("sendtrail", [{"Name": "stage", "Value": "dev"}], 1.0),
        ("sendtrail", [{"Name": "stage", "Value": "dev"}], 1.0),
        ("sendtrail", [{"Name": "stage", "Value": "dev"}, {"Name": "reason", "Value": "expired"}], 1.0),
        ("sendtrail", [{"Name": "stage", "Value": "dev"}, {"Name": "reason", "Value": "expired"}], 1.0)]
    assert datums[0][1]["Timestamp"] == datetime.fromtimestamp(1_796_000_000, tz=timezone.utc)
    assert emf_datums('{"level": "INFO", "message": "an ordinary log line"}') == []


@pytest.mark.parametrize(("expression", "values", "expected"), [
    ("FILL(a, 0) + FILL(b, 0)", {"a": None, "b": 2.0}, 2.0),
    ("a + b", {"a": None, "b": 2.0}, None),
    ("IF(FILL(sent, 0) >= 100, 100 * FILL(hard, 0) / sent, 0)", {"sent": 200.0, "hard": 11.0}, 5.5),
    ("IF(FILL(sent, 0) >= 100, 100 * FILL(hard, 0) / sent, 0)", {"sent": 40.0, "hard": 11.0}, 0.0),
    ("IF(FILL(sent, 0) >= 100, 100 * FILL(hard, 0) / sent, 0)", {"sent": None, "hard": None}, 0.0),
    ("a / b", {"a": 1.0, "b": 0.0}, None),
    ("IF(FILL(sending, 0) > 0, FILL(sent, 0) / 5, 60)", {"sent": 50.0, "sending": 1.0}, 10.0),
    ("IF(FILL(sending, 0) > 0, FILL(sent, 0) / 5, 60)", {"sent": 5.0, "sending": None}, 60.0),
])
def test_metric_math(expression: str, values: dict[str, float | None], expected: float | None) -> None:
    assert evaluate_expression(expression, values) == expected


def test_unsupported_metric_math_is_refused_not_guessed() -> None:
    with pytest.raises(NotImplementedError):
        evaluate_expression("ANOMALY_DETECTION_BAND(m, 2)", {"m": 1.0})


@pytest.mark.parametrize(("treat", "points", "expected"), [
    ("missing", {}, "INSUFFICIENT_DATA"),
    ("notBreaching", {}, "OK"),
    ("breaching", {}, "ALARM"),
    ("breaching", {0: 5.0}, "OK"),  # the 2 missing periods breach, the third does not: 2 of the 3 needed
    ("missing", {0: 0.0, 1: 0.0}, "OK"),
    ("missing", {0: 0.0, 1: 0.0, 2: 0.0}, "ALARM"),
    ("notBreaching", {2: 0.0}, "OK"),
])
def test_missing_data_and_m_out_of_n(resources: Any, clock: FakeClock, treat: str, points: dict[int, float],
                                     expected: str) -> None:
    """A custom alarm (3 of 3 one-minute periods below 1) over data put straight into moto."""
    name = f"custom-{treat}"
    properties = {"AlarmName": name, "Namespace": "custom", "MetricName": "Beat",
                  "Dimensions": [{"Name": "stage", "Value": "local"}], "Statistic": "Sum", "Period": 60,
                  "EvaluationPeriods": 3, "DatapointsToAlarm": 3, "Threshold": 1, "TreatMissingData": treat,
                  "ComparisonOperator": "LessThanThreshold"}
    boto3.client("cloudwatch").put_metric_alarm(**properties)
    alarms = LocalAlarms(resources, clock=clock, started=clock.now - 10 * MINUTE,
                         definitions=[AlarmDefinition("Custom", properties)])
    first = (int(clock.now) // MINUTE - 3) * MINUTE  # the first of the last 3 whole minutes
    data = [{"MetricName": "Beat", "Dimensions": [{"Name": "stage", "Value": "local"}], "Value": value,
             "Timestamp": datetime.fromtimestamp(first + index * MINUTE + 1, tz=timezone.utc)}
            for index, value in points.items()]
    if data:
        boto3.client("cloudwatch").put_metric_data(Namespace="custom", MetricData=data)
    alarms.step()
    assert state(name) == expected


def test_a_new_alarm_waits_for_its_evaluation_periods(resources: Any, clock: FakeClock) -> None:
    stalled = resources.refs["TrackingWorkflowStalledAlarm"]
    alarms = LocalAlarms(resources, clock=clock)
    for _ in range(2):
        clock.advance(MINUTE)
        alarms.step()
        assert state(stalled) == "INSUFFICIENT_DATA"
    clock.advance(2 * MINUTE)
    alarms.step()
    assert state(stalled) == "ALARM"  # no run at all, missing data breaching


# --- the MTA's alarms, over what its functions really emit ------------------------------

HOUR = 3600
SIMULATOR = "simulator.amazonses.com"
MTA_ALARMS = ("DeliveryStuckInStartPendingAlarm", "HardBounceRateAlarm", "ComplaintRateAlarm",
              "SendingThroughputLowAlarm")


def only(resources: Any, *logical_ids: str) -> list[AlarmDefinition]:
    """These alarms of the template (evaluating fewer keeps a test that steps many minutes fast)."""
    names = {resources.refs[logical] for logical in logical_ids}
    return [definition for definition in alarm_definitions(resources) if definition.name in names]


@pytest.fixture
def monitor(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> ScheduledTrigger:
    """The delivery monitor as EventBridge invokes it, on the fake clock."""
    from chalicelib.mta import gauges

    monkeypatch.setattr(gauges, "_now_ms", lambda: int(clock() * 1000))
    return ScheduledTrigger("delivery_monitor", app_module.delivery_monitor)


def minutes(count: int, monitor: ScheduledTrigger, clock: FakeClock) -> None:
    for _ in range(count):
        monitor.step()
        clock.advance(MINUTE)


def test_bounces_and_complaints_as_the_mta_emits_them_raise_the_rate_alarms(
        api: Any, mta: Any, resources: Any, clock: FakeClock, capture: EmfCapture, alerts: Any,
        monitor: ScheduledTrigger) -> None:
    """The send worker, the SES events consumer and the delivery monitor emit; each MTA alarm watches exactly that."""
    alarms = LocalAlarms(resources, clock=clock, capture=capture)
    addresses = ([f"success+{number}@{SIMULATOR}" for number in range(93)]
                 + [f"bounce+{number}@{SIMULATOR}" for number in range(6)] + [f"complaint@{SIMULATOR}"])
    delivery_id = create(api, addresses)
    act(api, delivery_id, "send", 202)
    monitor.step()  # OldestStartPendingSeconds, DeliveriesSending, DeliveriesStalled
    mta.send()  # MessagesSent, DeliveryStartPendingSeconds
    for message in OUTBOX.messages():  # SES's simulator events of the messages that bounced or drew a complaint
        if not message.to[0].startswith("success+"):  # (the deliveries' events move no metric an alarm watches)
            mta.publisher.publish(message, simulated_events(message))
    mta.triggers["ses_events"].drain()  # Bounces{type}, Complaints
    clock.advance(HOUR)
    alarms.step()

    published = {(metric["MetricName"], frozenset((item["Name"], item["Value"]) for item in metric["Dimensions"]))
                 for metric in boto3.client("cloudwatch").list_metrics(Namespace=metrics.NAMESPACE)["Metrics"]}
    for definition in only(resources, *MTA_ALARMS):
        for query in definition.queries:
            if "MetricStat" in query:
                metric = query["MetricStat"]["Metric"]
                watched = (metric["MetricName"], frozenset((item["Name"], item["Value"])
                                                           for item in metric["Dimensions"]))
                assert watched in published, (definition.name, watched)

    hard, complaints = resources.refs["HardBounceRateAlarm"], resources.refs["ComplaintRateAlarm"]
    assert state(hard) == state(complaints) == "ALARM"
    [(envelope, alert)] = alerts(hard)
    assert envelope["Subject"] == f'ALARM: "{hard}" in US East (N. Virginia)'
    assert alert["NewStateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoint [6 (")
    assert "greater than the threshold (5)" in alert["NewStateReason"]  # 6 hard bounces of 100 sent: 6 %
    [bounces] = [query for query in alert["Trigger"]["Metrics"] if query["Id"] == "hard"]
    assert bounces["MetricStat"]["Metric"]["Dimensions"] == [{"value": "local", "name": "stage"},
                                                             {"value": "hard", "name": "type"}]
    [(_, alert)] = alerts(complaints)
    assert alert["NewStateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoint [1 (")
    assert "greater than the threshold (0.1)" in alert["NewStateReason"]  # 1 complaint of 100 sent: 1 %


def test_a_delivery_no_worker_takes_raises_the_start_pending_alarm_until_one_does(
        api: Any, mta: Any, resources: Any, clock: FakeClock, capture: EmfCapture, alerts: Any,
        monitor: ScheduledTrigger) -> None:
    stuck = resources.refs["DeliveryStuckInStartPendingAlarm"]
    delivery_id = create(api, emails(1))
    clock.now = act(api, delivery_id, "send", 202)["state_since"] / 1000  # the monitor's first minute
    alarms = LocalAlarms(resources, clock=clock, capture=capture,
                         definitions=only(resources, "DeliveryStuckInStartPendingAlarm"))
    waited = 0
    while state(stuck) != "ALARM":  # no send worker runs
        minutes(1, monitor, clock)
        alarms.step()
        waited += 1
        assert waited <= 17, "a delivery 16 minutes in start pending, and no alarm"
    assert waited == 17  # the sample 16 minutes in is the first over 15 minutes
    [(_, alert)] = [item for item in alerts(stuck) if item[1]["NewStateValue"] == "ALARM"]
    assert alert["NewStateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoint [960 (")
    mta.send()  # a worker takes it
    minutes(1, monitor, clock)
    alarms.step()
    assert state(stuck) == "OK"
    [(_, back)] = alerts(stuck)
    assert back["NewStateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoint [0 (")


def test_a_delivery_monitor_that_stops_reporting_raises_its_own_alarm(
        resources: Any, clock: FakeClock, capture: EmfCapture, alerts: Any, monitor: ScheduledTrigger) -> None:
    """Nothing is sending (every gauge 0), yet a monitor that stops running is noticed."""
    stalled = resources.refs["DeliveryMonitorStalledAlarm"]
    alarms = LocalAlarms(resources, clock=clock, capture=capture,
                         definitions=only(resources, "DeliveryMonitorStalledAlarm"))
    for _ in range(4):
        minutes(1, monitor, clock)
        alarms.step()
    assert state(stalled) == "OK"
    quiet = 0
    while state(stalled) == "OK":  # the monitor stops
        clock.advance(MINUTE)
        alarms.step()
        quiet += 1
        assert quiet <= 3, "3 minutes without the monitor and still OK"
    [(_, alert)] = [item for item in alerts(stalled) if item[1]["NewStateValue"] == "ALARM"]
    assert alert["Trigger"]["MetricName"] == "DeliveriesSending" and alert["Trigger"]["Statistic"] == "SAMPLE_COUNT"
    minutes(1, monitor, clock)  # running again
    alarms.step()
    assert state(stalled) == "OK"


def test_sending_too_slowly_alarms_only_while_deliveries_wait_to_be_sent(
        api: Any, mta: Any, resources: Any, clock: FakeClock, capture: EmfCapture, alerts: Any,
        monitor: ScheduledTrigger) -> None:
    slow = resources.refs["SendingThroughputLowAlarm"]
    alarms = LocalAlarms(resources, clock=clock, capture=capture,
                         definitions=only(resources, "SendingThroughputLowAlarm"))
    for _ in range(3):  # a trickle: one message every 5 minutes, far below 60 a minute, but sent at once
        act(api, create(api, emails(1)), "send", 202)
        mta.send()
        minutes(5, monitor, clock)
        alarms.step()
    assert state(slow) == "OK"

    ses_account.ACCOUNT.sending_enabled = False  # SES paused: a delivery is taken but held back
    act(api, create(api, emails(3)), "send", 202)
    mta.send()
    periods = 0
    while state(slow) != "ALARM":
        minutes(5, monitor, clock)
        alarms.step()
        periods += 1
        assert periods <= 4, "a delivery waiting 20 minutes with nothing sent, and no alarm"
    [(_, alert)] = [item for item in alerts(slow) if item[1]["NewStateValue"] == "ALARM"]
    assert alert["NewStateReason"].startswith("Threshold Crossed: 3 out of the last 3 datapoints [0 (")


def test_a_message_in_a_dead_letter_queue_raises_its_alarm(resources: Any, clock: FakeClock, alerts: Any) -> None:
    """AWS/SQS's depth metrics, as the local runtime publishes them for the stack's queues."""
    letters = resources.refs["SesEventsDeadLettersAlarm"]
    alarms = LocalAlarms(resources, clock=clock, queues=QueueMetrics(resources),
                         definitions=only(resources, "SendWorkDeadLettersAlarm", "SesEventsDeadLettersAlarm"))
    alarms.step()
    clock.advance(5 * MINUTE)
    alarms.step()
    assert state(letters) == state(resources.refs["SendWorkDeadLettersAlarm"]) == "OK"
    boto3.client("sqs").send_message(QueueUrl=get_settings().ses_events_dead_letter_queue_url, MessageBody="{}")
    alarms.step()  # SQS's next sample
    clock.advance(5 * MINUTE)
    alarms.step()
    assert (state(letters), state(resources.refs["SendWorkDeadLettersAlarm"])) == ("ALARM", "OK")
    [(_, alert)] = [item for item in alerts(letters) if item[1]["NewStateValue"] == "ALARM"]
    assert alert["Trigger"]["Namespace"] == "AWS/SQS" and alert["Trigger"]["Dimensions"] == [
        {"value": "sendtrail-local-ses-events-dlq", "name": "QueueName"}]


# --- below the app: AWS/Lambda's errors and throttles ------------------------------------

def test_a_crash_or_a_throttle_below_the_app_raises_the_functions_lambda_failures_alarm(
        client: Any, resources: Any, clock: FakeClock, capture: EmfCapture, lambdas: LambdaMetrics, alerts: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An out-of-memory never reaches the app's own counts; AWS/Lambda's Errors and Throttles do."""
    from chalicelib.tracking import workflow as workflow_module

    failures = resources.refs["TrackingWorkflowLambdaFailuresAlarm"]
    alarms = LocalAlarms(resources, clock=clock, capture=capture, lambdas=lambdas, definitions=only(
        resources, "TrackingWorkflowLambdaFailuresAlarm", "ApiHandlerLambdaFailuresAlarm"))
    workflow = ScheduledTrigger("tracking_workflow", app_module.tracking_workflow)
    workflow.step()
    assert client.get("/r/test").status_code == 200  # one invocation of the API handler
    clock.advance(5 * MINUTE)
    alarms.step()
    assert state(failures) == state(resources.refs["ApiHandlerLambdaFailuresAlarm"]) == "OK"
    published = {(metric["MetricName"], metric["Dimensions"][0]["Value"])
                 for metric in boto3.client("cloudwatch").list_metrics(Namespace="AWS/Lambda")["Metrics"]}
    assert {("Invocations", "sendtrail-local-tracking-workflow"), ("Errors", "sendtrail-local-tracking-workflow"),
            ("Invocations", "sendtrail-local-api-handler"), ("Errors", "sendtrail-local-api-handler")} <= published

    def out_of_memory(event: Any, context: Any) -> Any:
        raise MemoryError("the run's hits did not fit in 1024 MB")

    monkeypatch.setattr(workflow_module, "scheduled_run", out_of_memory)
    with pytest.raises(MemoryError):
        workflow.step()
    clock.advance(5 * MINUTE)
    alarms.step()
    assert state(failures) == "ALARM"
    [(_, alert)] = [item for item in alerts(failures) if item[1]["NewStateValue"] == "ALARM"]
    assert alert["NewStateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoint [1 (")
    assert [query["Id"] for query in alert["Trigger"]["Metrics"]] == ["failures", "errors", "throttles"]
    monkeypatch.undo()

    workflow.step()
    clock.advance(5 * MINUTE)
    alarms.step()
    assert state(failures) == "OK"
    lambdas.enter("tracking_workflow")  # a run still in progress: the reserved concurrency (1) is in use
    with pytest.raises(Throttled):
        workflow.step()
    lambdas.leave("tracking_workflow", failed=False, duration_ms=1.0)
    clock.advance(5 * MINUTE)
    alarms.step()
    assert state(failures) == "ALARM"
    throttles = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Lambda", MetricName="Throttles", Statistics=["Sum"], Period=300,
        Dimensions=[{"Name": "FunctionName", "Value": "sendtrail-local-tracking-workflow"}],
        StartTime=datetime.fromtimestamp(clock.now - 3600, tz=timezone.utc),
        EndTime=datetime.fromtimestamp(clock.now, tz=timezone.utc))["Datapoints"]
    assert sum(point["Sum"] for point in throttles) == 1


def test_deliveries_stalled_for_5_minutes_raise_their_alarm(resources: Any, clock: FakeClock, alerts: Any) -> None:
    """The delivery monitor's DeliveriesStalled gauge, which only the dashboard showed."""
    stalled = resources.refs["DeliveriesStalledAlarm"]
    alarms = LocalAlarms(resources, clock=clock, started=clock.now - 10 * MINUTE,
                         definitions=only(resources, "DeliveriesStalledAlarm"))

    def gauge(value: float) -> None:
        boto3.client("cloudwatch").put_metric_data(Namespace=metrics.NAMESPACE, MetricData=[{
            "MetricName": metrics.DELIVERIES_STALLED, "Value": value,
            "Dimensions": [{"Name": "stage", "Value": "local"}],
            "Timestamp": datetime.fromtimestamp(clock.now, tz=timezone.utc)}])

    for value in (0, 1, 1, 1, 1):
        gauge(value)
        clock.advance(MINUTE)
    alarms.step()
    assert state(stalled) == "OK"  # stalled for 4 of the last 5 minutes
    gauge(1)
    clock.advance(MINUTE)
    alarms.step()
    assert state(stalled) == "ALARM"
    [(_, alert)] = [item for item in alerts(stalled) if item[1]["NewStateValue"] == "ALARM"]
    assert alert["NewStateReason"].startswith("Threshold Crossed: 5 out of the last 5 datapoints [1 (")
