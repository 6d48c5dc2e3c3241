"""Logs and metrics of real invocations: JSON lines with a correlation id, no secrets, the metrics every alarm reads."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import boto3
import pytest

import app as app_module
from chalicelib import metrics, observability, tokens
from chalicelib.settings import get_settings
from infra.local_runtime import environment
from infra.local_runtime.ses_outbox import OUTBOX
from infra.local_runtime.triggers import ScheduledTrigger
from tests.conftest import API_TOKEN, KEYRING_V1
from tests.integration.test_hit_endpoints import fallback_objects, make_delivery, token
from tests.tracking_harness import FakeClock, put_log, workflow
from tests.tracking_logs import SECRET, record

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Output:
    """What the functions printed: log lines and EMF documents, parsed."""

    log_text: io.StringIO = field(default_factory=io.StringIO)
    emf_lines: list[str] = field(default_factory=list)

    @property
    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_text.getvalue().splitlines()]

    def metric(self, name: str, **dimensions: str) -> list[float]:
        """Every value of `name` with exactly these dimensions (besides stage) printed so far."""
        values: list[float] = []
        for line in self.emf_lines:
            document = json.loads(line)
            for directive in document["_aws"]["CloudWatchMetrics"]:
                for names in directive["Dimensions"]:  # CloudWatch makes one metric per dimension set
                    published = {key: document[key] for key in names if key != "stage"}
                    if name in document and published == dimensions:
                        values += document[name]
        return values

    def everything(self) -> str:
        return self.log_text.getvalue() + "\n".join(self.emf_lines)


@pytest.fixture
def output(resources: Any) -> Iterator[Output]:
    """Capture what the "sendtrail" logger tree (Powertools' handler) and the metrics facade print."""
    captured = Output()
    handler = observability.logger().registered_handler
    previous_stream = handler.setStream(captured.log_text)
    previous_output = metrics.set_output(captured.emf_lines.append)
    metrics.discard()
    yield captured
    handler.setStream(previous_stream)
    metrics.set_output(previous_output)


def test_log_lines_are_json_with_the_request_id_as_correlation_id(client: Any, output: Output) -> None:
    make_delivery()
    boto3.client("kinesis").delete_stream(StreamName=get_settings().hit_stream)
    assert client.get(f"/r/{token(tokens.KIND_CLICK, 4)}").status_code == 302
    [saved] = fallback_objects()
    [line] = [line for line in output.logs if line["level"] == "ERROR"]
    assert line["message"] == "could not put hit into the stream; putting it into the fallback stream"
    assert line["correlation_id"] == saved["request_id"] and line["hit_id"] == saved["hit_id"]
    assert line["service"] == "sendtrail" and line["function_name"] and line["kind"] == "click"
    assert {"timestamp", "location", "cold_start", "function_request_id"} <= set(line)


def test_no_token_key_or_secret_reaches_the_logs(api: Any, client: Any, mta: Any, output: Output) -> None:
    """Every endpoint, failure and the workflow, then every printed line held against what must stay secret."""
    delivery_id = api.post("/api/deliveries", body={
        "name": "secrets", "subject": "Hello", "from_address": "news@example.com",
        "html": '<p><a href="https://shop.example.com/m/{{member}}">Shop</a> <a href="{{unsubscribe_url}}">stop</a>'
                ' <a href="{{mirror_url}}">web</a></p>',
        "recipients": [{"id": "ann", "email": "ann.secret@example.net", "attributes": {"member": "m-4711"}}],
    }).json_body["id"]
    api.post(f"/api/deliveries/{delivery_id}/send")
    mta.drain()  # the send worker, SES's events and their consumer log too
    [message] = OUTBOX.messages()
    html = message.to_dict()["html"]
    paths = [path.replace("&amp;", "&") for path in re.findall(r'"https://t\.example\.com(/[romu]/[^"]+)"', html)]
    presented = {re.split(r"[/?]", path)[2] for path in paths}
    params = {value for path in paths for value in re.findall(r"[?&]p=([^&]+)", path)}
    assert len(presented) == 4 and params

    for path in paths:
        client.get(path)
    optout = next(path for path in paths if path.startswith("/u/"))
    client.post(optout, body="List-Unsubscribe=One-Click", headers=FORM)
    for path in paths:  # tampered: one character changed
        client.get(path[:-1] + ("A" if path[-1] != "A" else "B"))
    client.get("/api/deliveries", headers={"Authorization": f"Bearer {API_TOKEN}-wrong"})
    forged = record(delivery_id=delivery_id, secret=b"x" * 32)
    put_log("forged", [forged, b"not json at all " + forged["token"].encode() + b"\n"], forged["ts"])
    bucket = get_settings().redirection_log_bucket
    boto3.client("kinesis").delete_stream(StreamName=get_settings().hit_stream)
    boto3.client("firehose").delete_delivery_stream(DeliveryStreamName=get_settings().redirection_log_fallback_stream)
    environment.apply({"SENDTRAIL_REDIRECTION_LOG_BUCKET": "sendtrail-no-such-bucket"})
    for path in paths:  # neither the streams nor the fallback object: logged errors with stack traces
        client.get(path)
    environment.apply({"SENDTRAIL_REDIRECTION_LOG_BUCKET": bucket})
    assert api.post("/api/workflow/run").json_body["rejected_total"] >= 2  # the forged lines, quarantined
    api.get("/api/status")
    environment.apply({"SENDTRAIL_SIGNING_KEYS": KEYRING_V1[:-6] + '"}}'})  # a broken key ring
    client.get(paths[0])

    printed = output.everything()
    assert len(output.logs) >= 10 and output.emf_lines
    secrets = {API_TOKEN, base64.b64encode(SECRET).decode(), SECRET.decode(), forged["token"], "ann.secret",
               *presented, *params}
    leaked = sorted(secret for secret in secrets if secret in printed)
    assert leaked == [], f"secrets in the logs: {leaked}"


def test_the_hit_path_counts_rejected_and_failed_hits_not_the_ones_the_stream_took(client: Any, output: Output) -> None:
    make_delivery()
    click, opened = token(tokens.KIND_CLICK, 4), token(tokens.KIND_OPEN, 1)
    client.get(f"/r/{click}")
    client.get(f"/o/{opened}")
    assert output.emf_lines == []  # a hit the stream took prints nothing: the stream and the workflow count it
    client.get(f"/r/{click[:-1]}{'A' if click[-1] != 'A' else 'B'}")
    client.get(f"/r/{token(tokens.KIND_CLICK, 99)}")
    client.get(f"/r/{opened}")
    assert output.metric(metrics.HITS_REJECTED, reason="bad_signature") == [1.0]
    assert output.metric(metrics.HITS_REJECTED, reason="unknown_link") == [1.0]
    assert output.metric(metrics.HITS_REJECTED, reason="wrong_kind") == [1.0]

    boto3.client("kinesis").delete_stream(StreamName=get_settings().hit_stream)
    client.get(f"/r/{click}")
    assert output.metric(metrics.HIT_STREAM_PUT_FAILURES) == [1.0]
    assert output.metric(metrics.FALLBACK_STREAM_WRITES) == [1.0]
    boto3.client("firehose").delete_delivery_stream(DeliveryStreamName=get_settings().redirection_log_fallback_stream)
    client.get(f"/r/{click}")
    assert output.metric(metrics.FALLBACK_STREAM_PUT_FAILURES) == [1.0]
    assert output.metric(metrics.FALLBACK_WRITES) == [1.0]
    environment.apply({"SENDTRAIL_REDIRECTION_LOG_BUCKET": "sendtrail-no-such-bucket"})
    client.get(f"/o/{opened}")
    assert output.metric(metrics.HITS_UNRECORDED, kind="open") == [1.0]
    environment.apply({}, remove=("SENDTRAIL_SIGNING_KEYS",))
    assert client.get(f"/r/{click}").status_code == 503
    assert output.metric(metrics.HTTP_SERVER_ERRORS) == [1.0]


def test_the_workflow_counts_runs_successes_lag_lines_and_malformed_lines(resources: Any, output: Output) -> None:
    clock = FakeClock(time.time())
    at_ms = int(clock.now * 1000)
    put_log("a", [record(ts=at_ms), record(ts=at_ms), b"{not json\n"], at_ms)
    put_log("b", [record(ts=at_ms, secret=b"y" * 32)], at_ms)
    workflow_run = ScheduledTrigger("tracking_workflow", app_module.tracking_workflow)
    workflow_run.step()  # as EventBridge invokes it: metrics flushed at the end of the invocation
    assert output.metric(metrics.WORKFLOW_RUNS) == [1.0] and output.metric(metrics.WORKFLOW_SUCCESSES) == [1.0]
    assert output.metric(metrics.LINES_PROCESSED) == [4.0]
    assert output.metric(metrics.HITS_TRACKED) == [2.0]  # the two valid hits (the malformed lines are not hits)
    assert output.metric(metrics.MALFORMED_LINES, reason="not_json") == [1.0]
    assert output.metric(metrics.MALFORMED_LINES, reason="token_bad_signature") == [1.0]
    assert output.metric(metrics.WORKFLOW_LAG) == [0.0]

    put_log("c", [record(ts=at_ms)], at_ms)
    put_log("d", [record(ts=at_ms)], at_ms)
    clock.now = time.time() + 900  # two objects waiting for 15 minutes (however long the first run took), one read
    statistics = workflow(clock, max_objects=1).run()
    metrics.flush()
    assert statistics["backlog"] is True and 899 <= statistics["lag_seconds"] <= 902
    assert statistics["backlog_objects"] == 1 and output.metric(metrics.WORKFLOW_BACKLOG)[-1] == 1.0
    assert output.metric(metrics.WORKFLOW_LAG)[-1] == statistics["lag_seconds"]
    state = workflow().state.get_state()
    assert (state["last_run_status"], state["lag_seconds"]) == ("completed", statistics["lag_seconds"])


def test_a_failing_or_busy_run_counts_as_a_run_only_and_records_its_error(
        resources: Any, output: Output, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.tracking import workflow as workflow_module

    busy = workflow()
    busy.state.acquire("someone-else", int(time.time() * 1000), 60_000)
    assert busy.run()["status"] == "busy"
    busy.state.release("someone-else")
    monkeypatch.setattr(workflow_module.TrackingWorkflow, "_plan", lambda self, checkpoint: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        ScheduledTrigger("tracking_workflow", app_module.tracking_workflow).step()
    metrics.flush()
    assert output.metric(metrics.WORKFLOW_RUNS) == [1.0, 1.0] and output.metric(metrics.WORKFLOW_SUCCESSES) == []
    state = busy.state.get_state()
    assert state["last_run_status"] == "failed" and state["last_error"] == "ZeroDivisionError: division by zero"
    assert "lease_owner" not in state  # an error releases the lease
    [failure] = [line for line in output.logs if line["level"] == "ERROR"]
    assert failure["message"] == "tracking workflow run failed" and "ZeroDivisionError" in failure["exception"]


def test_the_stdlib_loggers_write_through_powertools(resources: Any, output: Output) -> None:
    logging.getLogger("sendtrail.anything").warning("hello", extra={"delivery_id": "d1"})
    [line] = output.logs
    assert (line["level"], line["message"], line["delivery_id"], line["service"]) == (
        "WARNING", "hello", "d1", "sendtrail")
    assert not logging.getLogger("sendtrail").propagate
