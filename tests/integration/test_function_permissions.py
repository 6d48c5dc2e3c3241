"""Every Lambda function's role allows the AWS calls its code makes, and grants nothing else.

Each scenario drives one function's code over moto, as its trigger would,
while tests/iam_audit.py records the (IAM action, resource) pairs AWS would
authorize; the function's role in infra/template.yaml must allow every one,
and every action the role grants must be needed by some recorded call.
"""

from __future__ import annotations

import re
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


def send_delivery(api: Any) -> tuple[str, list[str]]:
    """A sent delivery to one recipient, and the tracked paths in its message."""
    response = api.post("/api/deliveries", body={
        "name": "iam", "subject": "Hello", "from_address": "news@example.com",
        "html": '<p><a href="https://shop.example.com/x">Shop</a> <a href="{{unsubscribe_url}}">stop</a>'
                ' <a href="{{mirror_url}}">web</a></p>',
        "recipients": [{"id": "ann", "email": "ann@example.net"}]})
    delivery_id = response.json_body["id"]
    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 200
    [message] = OUTBOX.messages()
    return delivery_id, re.findall(r'"https://t\.example\.com(/[romu]/[^"]+)"', message.to_dict()["html"])


def api_handler_scenario(api: Any, client: Any, resources: Any) -> CallRecorder:
    """Every route family of the REST API function: dashboard API and hit endpoints."""
    with record_calls(resources.region) as recorded:
        delivery_id, paths = send_delivery(api)
        for path in paths:
            assert client.get(path).status_code in (200, 302)
        [optout] = [path for path in paths if path.startswith("/u/")]
        assert client.post(optout, body="List-Unsubscribe=One-Click", headers=FORM).status_code == 200
        pumps_for(resources)[0].step()
        malformed = f"redirection-logs/2026/01/01/00/malformed"
        boto3.client("s3").put_object(Bucket=get_settings().redirection_log_bucket, Key=malformed, Body=b"oops\n")
        assert api.post("/api/workflow/run").json_body["hits_accepted"] >= 4
        for route in ("indicators", "urls", "timeline", "user-agents"):
            assert api.get(f"/api/deliveries/{delivery_id}/{route}").status_code == 200
        assert api.get("/api/recipients/ann/tracking").status_code == 200
        assert api.get("/api/deliveries").status_code == 200
        assert api.get(f"/api/deliveries/{delivery_id}").status_code == 200
        assert api.get("/api/status").json_body["status"] == "OK"  # operations: what the status check describes
        boto3.client("kinesis").delete_stream(StreamName=get_settings().hit_stream)
        assert client.get(paths[0]).status_code in (200, 302)  # kept in the redirection logs instead
    return recorded


SCHEDULED_EVENT = {"version": "0", "id": "5f4a5b0e-0000-4000-8000-000000000000", "detail-type": "Scheduled Event",
                   "source": "aws.events", "account": "123456789012", "time": "2026-11-22T12:00:00Z",
                   "region": "us-east-1", "resources": [], "detail": {}}


def expire_the_lease() -> None:
    """The crashed run's lease runs out (test-side client: not recorded)."""
    boto3.client("dynamodb").update_item(TableName=get_settings().workflow_table, Key=STATE_KEY,
                                         UpdateExpression="SET lease_until = :past", ExpressionAttributeValues={
                                             ":past": {"N": "0"}})


def tracking_workflow_scenario(api: Any, client: Any, resources: Any) -> CallRecorder:
    """Scheduled runs: one crashes after its first writes, the next resumes it; a malformed line, a broken gzip."""
    from tests.tracking_harness import SimulatedCrash, tap

    delivery_id, paths = send_delivery(api)
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


def check(template: dict[str, Any], role: str, resolver: IntrinsicResolver, recorded: CallRecorder) -> None:
    statements = role_statements(template, role, resolver)
    aws_calls = {call for call in recorded.calls}
    assert aws_calls, "the scenario made no AWS call: it tests nothing"
    assert denied(aws_calls, statements) == []
    assert unused_actions(aws_calls, statements) == {"logs:CreateLogStream", "logs:PutLogEvents"}


def test_the_api_handler_role_allows_what_the_api_and_hit_endpoints_do(
        api: Any, client: Any, resources: Any, keys_in_ssm: IntrinsicResolver) -> None:
    check(resources.template, "ApiHandlerRole", keys_in_ssm, api_handler_scenario(api, client, resources))


def test_the_tracking_workflow_role_allows_what_a_scheduled_run_does(
        api: Any, client: Any, resources: Any, keys_in_ssm: IntrinsicResolver) -> None:
    recorded = tracking_workflow_scenario(api, client, resources)
    check(resources.template, "TrackingWorkflowRole", keys_in_ssm, recorded)


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
