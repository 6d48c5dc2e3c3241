"""Every Lambda function's role allows the AWS calls its code makes, and grants nothing else.

Each scenario drives one function's code over moto, as its trigger would,
while tests/iam_audit.py records the (IAM action, resource) pairs AWS would
authorize; the function's role in infra/template.yaml must allow every one,
and every action the role grants must be needed by some recorded call.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from typing import Any

import boto3
import pytest

import app as app_module
from chalicelib.data.tracking import STATE_KEY
from chalicelib.settings import get_settings
from infra.local_runtime import environment
from infra.local_runtime.firehose_pump import pumps_for
from infra.local_runtime.ses_outbox import OUTBOX
from infra.template import IntrinsicResolver
from tests.conftest import KEYRING_V1
from tests.iam_audit import CallRecorder, denied, record_calls, role_statements, unused_actions

SIGNING_KEYS_PARAMETER = "/sendtrail/local/signing-keys"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def keys_in_ssm(resources: Any) -> IntrinsicResolver:
    """The key ring in SSM, as deployed; the resolver sees the parameter's name."""
    boto3.client("ssm").put_parameter(Name=SIGNING_KEYS_PARAMETER, Value=KEYRING_V1, Type="SecureString")
    environment.apply({"SENDTRAIL_SIGNING_KEYS_PARAMETER": SIGNING_KEYS_PARAMETER}, remove=("SENDTRAIL_SIGNING_KEYS",))
    return IntrinsicResolver({**resources.parameters, "SigningKeysParameterName": SIGNING_KEYS_PARAMETER,
                              **resources.refs}, resources.attributes, region=resources.region)


def create_delivery(api: Any, emails: tuple[str, ...] = ("ann@example.net",)) -> str:
    response = api.post("/api/deliveries", body={
        "name": "iam", "subject": "Hello", "from_address": "news@example.com",
        "html": '<p><a href="https://shop.example.com/x">Shop</a> <a href="{{unsubscribe_url}}">stop</a>'
                ' <a href="{{mirror_url}}">web</a></p>',
        "recipients": [{"id": f"r{index}", "email": email} for index, email in enumerate(emails)]})
    assert response.status_code == 201, response.body
    return response.json_body["id"]


def send_delivery(api: Any, mta: Any, recorded: CallRecorder | None = None) -> tuple[str, list[str]]:
    """A sent delivery to one recipient (the API starts it, the send worker sends it), and its tracked paths."""
    delivery_id = create_delivery(api)
    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 202
    with recorded.paused() if recorded else nullcontext():  # the send worker's calls are its own role's
        mta.send()
    environment.forget_cached_configuration()  # the worker's container is not the API's (key ring cache)
    [message] = OUTBOX.messages()
    return delivery_id, re.findall(r'"https://t\.example\.com(/[romu]/[^"]+)"', message.to_dict()["html"])


def api_handler_scenario(api: Any, client: Any, resources: Any, mta: Any) -> CallRecorder:
    """Every route family of the REST API function: dashboard API, send jobs, monitoring and hit endpoints."""
    with record_calls(resources.region) as recorded:
        delivery_id, paths = send_delivery(api, mta, recorded)
        for path in paths:
            assert client.get(path).status_code in (200, 302)
        [optout] = [path for path in paths if path.startswith("/u/")]
        assert client.post(optout, body="List-Unsubscribe=One-Click", headers=FORM).status_code == 200
        with recorded.paused():  # Firehose's part, and a test-side object
            pumps_for(resources)[0].step()
            malformed = "redirection-logs/2026/01/01/00/malformed"
            boto3.client("s3").put_object(Bucket=get_settings().redirection_log_bucket, Key=malformed,
                                          Body=b"oops\n")
        assert api.post("/api/workflow/run").json_body["hits_accepted"] >= 4
        for route in ("indicators", "urls", "timeline", "user-agents", "logs"):
            assert api.get(f"/api/deliveries/{delivery_id}/{route}").status_code == 200
        assert api.get(f"/api/deliveries/{delivery_id}/logs", query={"status": "sent"}).status_code == 200
        assert api.get("/api/recipients/ann/tracking").status_code == 200
        assert api.get("/api/deliveries").status_code == 200
        assert api.get("/api/deliveries", query={"state": "finished"}).status_code == 200
        assert api.get(f"/api/deliveries/{delivery_id}").status_code == 200
        assert api.get("/api/quarantine").status_code == 200
        assert api.get("/api/status").json_body["status"] == "OK"  # operations: what the status check describes
        paused = create_delivery(api)
        assert api.post(f"/api/deliveries/{paused}/send").status_code == 202
        assert api.get(f"/api/deliveries/{paused}").json_body["stalled"] is False  # reads SES while it sends
        for action in ("pause", "resume", "stop"):
            assert api.post(f"/api/deliveries/{paused}/{action}").status_code == 200
        assert api.get("/api/signing-keys").status_code == 200
        assert api.get("/api/recipients/r0/export").status_code == 200  # a person's rights
        assert api.delete("/api/recipients/r0").status_code == 200
        assert api.delete(f"/api/deliveries/{paused}").status_code == 200
        with recorded.paused():
            boto3.client("kinesis").delete_stream(StreamName=get_settings().hit_stream)
        assert client.get(paths[0]).status_code in (200, 302)  # kept by the fallback delivery stream instead
        with recorded.paused():
            boto3.client("firehose").delete_delivery_stream(
                DeliveryStreamName=get_settings().redirection_log_fallback_stream)
        assert client.get(paths[0]).status_code in (200, 302)  # kept as its own redirection-log object
    return recorded


def send_worker_scenario(api: Any, resources: Any, mta: Any) -> CallRecorder:
    """The send worker as its queue drives it: a chunk held back (SES paused), a chunk sent, a quarantined address."""
    from infra.local_runtime import ses_account

    boto3.client("dynamodb").put_item(TableName=get_settings().addresses_table, Item={
        "address": {"S": "gone@example.net"}, "quarantine_status": {"S": "quarantined"}})
    held, sent = create_delivery(api), create_delivery(api, ("ann@example.net", "gone@example.net"))
    environment.forget_cached_configuration()
    with record_calls(resources.region) as recorded:
        with recorded.paused():
            assert api.post(f"/api/deliveries/{held}/send").status_code == 202
        ses_account.ACCOUNT.sending_enabled = False
        assert mta.send() == 1  # held back: put on the queue again, to be seen later
        ses_account.ACCOUNT.sending_enabled = True
        with recorded.paused():
            assert api.post(f"/api/deliveries/{sent}/send").status_code == 202
        assert mta.send() == 1
    assert [message.to for message in OUTBOX.messages()] == [["ann@example.net"]]
    return recorded


def ses_events_scenario(api: Any, resources: Any, mta: Any) -> CallRecorder:
    """The SES events consumer: a delivery, a bounce (quarantine), a complaint (denylist)."""
    delivery_id = create_delivery(api, ("success@simulator.amazonses.com", "bounce@simulator.amazonses.com",
                                        "complaint@simulator.amazonses.com"))
    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 202
    mta.send()
    mta.publisher.step()  # SES's part
    environment.forget_cached_configuration()
    with record_calls(resources.region) as recorded:
        assert mta.triggers["ses_events"].drain() > 0
    assert len(api.get("/api/quarantine").json_body["items"]) == 2
    return recorded


SCHEDULED_EVENT = {"version": "0", "id": "5f4a5b0e-0000-4000-8000-000000000000", "detail-type": "Scheduled Event",
                   "source": "aws.events", "account": "123456789012", "time": "2026-11-22T12:00:00Z",
                   "region": "us-east-1", "resources": [], "detail": {}}


def expire_the_lease() -> None:
    """The crashed run's lease runs out (test-side client: not recorded)."""
    boto3.client("dynamodb").update_item(TableName=get_settings().workflow_table, Key=STATE_KEY,
                                         UpdateExpression="SET lease_until = :past", ExpressionAttributeValues={
                                             ":past": {"N": "0"}})


def tracking_workflow_scenario(api: Any, client: Any, resources: Any, mta: Any) -> CallRecorder:
    """Scheduled runs: one crashes after its first writes, the next resumes it; a malformed line, a broken gzip."""
    from tests.tracking_harness import SimulatedCrash, tap

    delivery_id, paths = send_delivery(api, mta)
    for path in paths:
        client.get(path)
    pumps_for(resources)[0].step()
    s3, bucket = boto3.client("s3"), get_settings().redirection_log_bucket
    s3.put_object(Bucket=bucket, Key="redirection-logs/2026/01/01/00/malformed", Body=b"oops\n")
    s3.put_object(Bucket=bucket, Key="redirection-logs/2026/01/01/00/broken.gz", Body=b"\x1f\x8b\x08\x00broken")
    environment.forget_cached_configuration()
    with record_calls(resources.region) as recorded:
        with tap(crash_after_writes=3), pytest.raises(SimulatedCrash):
            app_module.tracking_workflow(SCHEDULED_EVENT, None)
        environment.forget_cached_configuration()  # a new container
        expire_the_lease()
        statistics = app_module.tracking_workflow(SCHEDULED_EVENT, None)
    assert statistics["resumed_run"] == 1, statistics
    return recorded


def delivery_monitor_scenario(api: Any, resources: Any) -> CallRecorder:
    """The delivery monitor's minute: a delivery waiting in start_pending, measured."""
    from infra.local_runtime.triggers import ScheduledTrigger

    assert api.post(f"/api/deliveries/{create_delivery(api)}/send").status_code == 202
    with record_calls(resources.region) as recorded:
        measured = ScheduledTrigger("delivery_monitor", app_module.delivery_monitor).step()
    assert measured["sending"] == 1
    return recorded


def check(template: dict[str, Any], role: str, resolver: IntrinsicResolver, recorded: CallRecorder) -> None:
    statements = role_statements(template, role, resolver)
    aws_calls = {call for call in recorded.calls}
    assert aws_calls, "the scenario made no AWS call: it tests nothing"
    assert denied(aws_calls, statements) == []
    assert unused_actions(aws_calls, statements) == {"logs:CreateLogStream", "logs:PutLogEvents"}


def test_the_api_handler_role_allows_what_the_api_and_hit_endpoints_do(
        api: Any, client: Any, resources: Any, mta: Any, keys_in_ssm: IntrinsicResolver) -> None:
    check(resources.template, "ApiHandlerRole", keys_in_ssm, api_handler_scenario(api, client, resources, mta))


def test_the_tracking_workflow_role_allows_what_a_scheduled_run_does(
        api: Any, client: Any, resources: Any, mta: Any, keys_in_ssm: IntrinsicResolver) -> None:
    recorded = tracking_workflow_scenario(api, client, resources, mta)
    check(resources.template, "TrackingWorkflowRole", keys_in_ssm, recorded)


def test_the_send_worker_role_allows_what_sending_a_chunk_does(
        api: Any, resources: Any, mta: Any, keys_in_ssm: IntrinsicResolver) -> None:
    check(resources.template, "SendWorkerRole", keys_in_ssm, send_worker_scenario(api, resources, mta))


def test_the_ses_events_role_allows_what_consuming_events_does(
        api: Any, resources: Any, mta: Any, keys_in_ssm: IntrinsicResolver) -> None:
    check(resources.template, "SesEventsRole", keys_in_ssm, ses_events_scenario(api, resources, mta))


def test_the_delivery_monitor_role_allows_what_measuring_sending_does(
        api: Any, resources: Any, keys_in_ssm: IntrinsicResolver) -> None:
    check(resources.template, "DeliveryMonitorRole", keys_in_ssm, delivery_monitor_scenario(api, resources))


def test_the_api_no_longer_sends_mail() -> None:
    from infra.template import load_template

    statements = load_template()["Resources"]["ApiHandlerRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    assert not any("ses:SendEmail" in str(statement["Action"]) for statement in statements["Statement"])


def test_the_authorizer_makes_no_aws_call(client: Any, resources: Any, keys_in_ssm: IntrinsicResolver) -> None:
    from tests.conftest import API_TOKEN

    with record_calls(resources.region) as recorded:
        assert client.get("/api/deliveries", headers={"Authorization": f"Bearer {API_TOKEN}x"}).status_code == 401
    assert recorded.calls == set()
    statements = role_statements(resources.template, "ApiAuthorizerRole", keys_in_ssm)
    assert {action for statement in statements for action in statement.actions} == {
        "logs:CreateLogStream", "logs:PutLogEvents"}


def test_no_role_grants_a_wildcard_action_or_any_resource() -> None:
    from infra.template import load_template

    for logical, resource in load_template()["Resources"].items():
        if resource.get("Type") != "AWS::IAM::Role":
            continue
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert all("*" not in action for action in actions), (logical, actions)
                if statement["Resource"] == "*":  # only where AWS has no resource-level permission, and narrowed
                    assert "Condition" in statement, (logical, statement)
