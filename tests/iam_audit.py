"""Checking each Lambda function's IAM role against the AWS calls it really makes.

The recorder taps botocore (like tests/tracking_harness.py), so the code under
test runs unchanged against moto; every call becomes the IAM actions and
resource ARNs AWS would authorize it by. The evaluator reads a role from
infra/template.yaml, resolves its intrinsics against the provisioned stack
and answers whether a statement allows each (action, resource). moto does not
enforce IAM for these services, so this is how a missing grant shows up in a
test rather than as AccessDenied after a deployment.
"""

from __future__ import annotations

import fnmatch
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import urlparse

from botocore import handlers as botocore_handlers

from chalicelib.data import aws

ACCOUNT_ID = "123456789012"

# botocore's service name -> IAM's action prefix, where they differ.
IAM_PREFIX = {"sesv2": "ses", "monitoring": "cloudwatch"}


@dataclass(frozen=True)
class Call:
    action: str      # e.g. "dynamodb:Query"
    resource: str    # the ARN AWS authorizes the action on ("*" for account-level actions)


@dataclass
class CallRecorder:
    region: str
    calls: set[Call] = field(default_factory=set)
    recording: bool = True

    def _record(self, model: Any, params: dict[str, Any], event_name: str, **_: Any) -> None:
        if not self.recording:
            return
        service = event_name.split(".")[1]
        for call in authorizations(service, model.name, params, self.region):
            self.calls.add(call)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Calls made inside are another function's (or the test's), not the one under audit."""
        self.recording = False
        try:
            yield
        finally:
            self.recording = True


@contextmanager
def record_calls(region: str = "us-east-1") -> Iterator[CallRecorder]:
    """Every AWS call made inside the block by clients created in it.

    That is sendtrail's clients (chalicelib.data.aws) and boto3's default
    session, which the local runtime's triggers use: an SQS trigger's
    ReceiveMessage and DeleteMessage are what Lambda's event source mapping
    does with the function's role. Test-side and emulation calls go inside
    `recorder.paused()`.
    """
    import boto3

    recorder = CallRecorder(region)
    hook = ("before-parameter-build", recorder._record)
    botocore_handlers.BUILTIN_HANDLERS.append(hook)
    aws.reset_clients()
    boto3.DEFAULT_SESSION = None
    try:
        yield recorder
    finally:
        botocore_handlers.BUILTIN_HANDLERS.remove(hook)
        aws.reset_clients()
        boto3.DEFAULT_SESSION = None


def authorizations(service: str, operation: str, params: dict[str, Any], region: str) -> list[Call]:
    """The (IAM action, resource ARN) pairs AWS checks for one API call."""
    arn = f"arn:aws:{{}}:{region}:{ACCOUNT_ID}:{{}}"
    prefix = IAM_PREFIX.get(service, service)
    if service == "dynamodb":
        return _dynamodb_authorizations(operation, params, arn)
    if service == "s3":
        return _s3_authorizations(operation, params)
    if service == "kinesis":
        stream = params.get("StreamARN") or arn.format("kinesis", f"stream/{params['StreamName']}")
        return [Call(f"kinesis:{operation}", stream)]
    if service == "firehose":
        return [Call(f"firehose:{operation}", arn.format("firehose", f"deliverystream/{params['DeliveryStreamName']}"))]
    if service == "ssm":
        name = params["Name"].lstrip("/")
        return [Call(f"ssm:{operation}", arn.format("ssm", f"parameter/{name}"))]
    if service == "sqs":
        queue = urlparse(params["QueueUrl"]).path.rsplit("/", 1)[-1]
        action = "SendMessage" if operation == "SendMessageBatch" else operation
        action = "DeleteMessage" if action == "DeleteMessageBatch" else action
        return [Call(f"sqs:{action}", arn.format("sqs", queue))]
    if service == "sns":
        return [Call(f"sns:{operation}", params.get("TopicArn", "*"))]
    if service == "sesv2" and operation == "GetConfigurationSet":
        name = params["ConfigurationSetName"]
        return [Call("ses:GetConfigurationSet", arn.format("ses", f"configuration-set/{name}"))]
    if service == "sesv2" and operation == "SendEmail":
        calls = [Call("ses:SendEmail", arn.format("ses", f"identity/{_domain(params['FromEmailAddress'])}"))]
        if params.get("ConfigurationSetName"):
            calls.append(Call("ses:SendEmail", arn.format("ses", f"configuration-set/{params['ConfigurationSetName']}")))
        return calls
    return [Call(f"{prefix}:{operation}", "*")]


def _domain(address: str) -> str:
    return address.rsplit("<", 1)[-1].rstrip(">").rsplit("@", 1)[-1]


# A transaction is authorized action by action: IAM has no Transact* actions.
TRANSACTION_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                       "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


def _dynamodb_authorizations(operation: str, params: dict[str, Any], arn: str) -> list[Call]:
    def table(name: str, index: str | None = None) -> str:
        return arn.format("dynamodb", f"table/{name}" + (f"/index/{index}" if index else ""))

    if operation in ("BatchWriteItem", "BatchGetItem"):
        return [Call(f"dynamodb:{operation}", table(name)) for name in params["RequestItems"]]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        return [Call(f"dynamodb:{TRANSACTION_ACTIONS[kind]}", table(entry[kind]["TableName"]))
                for entry in params["TransactItems"] for kind in entry]
    return [Call(f"dynamodb:{operation}", table(params["TableName"], params.get("IndexName")))]


def _s3_authorizations(operation: str, params: dict[str, Any]) -> list[Call]:
    bucket = params.get("Bucket", "")
    object_arn = f"arn:aws:s3:::{bucket}/{params.get('Key', '')}"
    if operation in ("ListObjectsV2", "ListObjects"):
        return [Call("s3:ListBucket", f"arn:aws:s3:::{bucket}")]
    if operation in ("GetObject", "HeadObject"):
        return [Call("s3:GetObject", object_arn)]
    if operation == "CopyObject":
        source = params["CopySource"]
        if isinstance(source, dict):
            source = f"{source['Bucket']}/{source['Key']}"
        return [Call("s3:GetObject", f"arn:aws:s3:::{source}"), Call("s3:PutObject", object_arn)]
    if operation == "DeleteObjects":
        return [Call("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{item['Key']}")
                for item in params["Delete"]["Objects"]]
    return [Call(f"s3:{operation}", object_arn)]


@dataclass(frozen=True)
class Statement:
    actions: tuple[str, ...]
    resources: tuple[str, ...]

    def allows(self, call: Call) -> bool:
        return (any(fnmatch.fnmatchcase(call.action.lower(), action.lower()) for action in self.actions)
                and any(fnmatch.fnmatchcase(call.resource, resource) for resource in self.resources))


def role_statements(template: dict[str, Any], role: str, resolver: Any) -> list[Statement]:
    """The Allow statements of a role's inline policies, intrinsics resolved."""
    statements = []
    for policy in template["Resources"][role]["Properties"].get("Policies", []):
        for statement in resolver.resolve(policy["PolicyDocument"]["Statement"]):
            assert statement["Effect"] == "Allow", statement
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            statements.append(Statement(tuple(actions), tuple(resources)))
    return statements


def denied(calls: set[Call], statements: list[Statement]) -> list[Call]:
    return sorted((call for call in calls if not any(s.allows(call) for s in statements)),
                  key=lambda call: (call.action, call.resource))


def unused_actions(calls: set[Call], statements: list[Statement]) -> set[str]:
    """Granted actions no recorded call needed."""
    return {action for statement in statements for action in statement.actions
            if not any(fnmatch.fnmatchcase(call.action.lower(), action.lower()) for call in calls)}
