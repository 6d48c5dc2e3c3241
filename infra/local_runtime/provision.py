"""Provision infra/template.yaml on moto, the way CloudFormation would on AWS.

Resources whose type moto's CloudFormation implements are created by a moto
stack, from the template's own properties. The others are created through
boto3 by a handler registered for their type, from the same resolved
properties, and properties moto's CloudFormation ignores are applied through
boto3 afterwards. Resources without a Type are overrides of what Chalice
generates (e.g. RestAPI) and have no local counterpart. A resource whose
Condition does not hold for the stage's parameters is not created; one that
refers to a resource created through boto3 is created through boto3 too
(CloudFormation resolves every reference in one stack; here there are two
passes).
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import boto3

from infra.template import (
    IntrinsicResolver,
    evaluate_conditions,
    function_environment,
    load_template,
    parameter_values,
)

ACCOUNT_ID = "123456789012"

# What each handler returns: what Ref gives, and the Fn::GetAtt attributes.
@dataclass
class CreatedResource:
    ref: str
    attributes: dict[str, str] = field(default_factory=dict)


# Resource types the local stack does not create, and why.
NO_LOCAL_COUNTERPART = {
    # The native layer: locally, functions run in-process and import
    # sendtrail_native from the virtualenv (`make native`), so a layer would
    # have nothing to attach to (and its zip is only there after `make layer`).
    "AWS::Serverless::LayerVersion": "functions run in-process with the native module from the virtualenv",
}

ResourceHandler = Callable[[boto3.session.Session, str, dict[str, Any]], CreatedResource]
_clients: "weakref.WeakKeyDictionary[boto3.session.Session, dict[str, Any]]" = weakref.WeakKeyDictionary()


def client(session: boto3.session.Session, service: str) -> Any:
    """One client per service and session: creating a client costs more than most calls made with it."""
    per_session = _clients.setdefault(session, {})
    if service not in per_session:
        per_session[service] = session.client(service)
    return per_session[service]


_HANDLERS: dict[str, ResourceHandler] = {}


def handles(resource_type: str) -> Callable[[ResourceHandler], ResourceHandler]:
    """Register how to create `resource_type` through boto3 (moto's CloudFormation lacks it)."""

    def register(handler: ResourceHandler) -> ResourceHandler:
        _HANDLERS[resource_type] = handler
        return handler

    return register


@dataclass
class ProvisionedStack:
    """What was created: the values Ref and Fn::GetAtt give, and the Lambda environment."""

    stage: str
    region: str
    parameters: dict[str, str]
    refs: dict[str, str]
    attributes: dict[tuple[str, str], str]
    environment: dict[str, str]
    template: dict[str, Any]
    conditions: dict[str, bool] = field(default_factory=dict)

    def resolver(self) -> IntrinsicResolver:
        return IntrinsicResolver({**self.parameters, **self.refs}, self.attributes,
                                 region=self.region, account_id=ACCOUNT_ID, conditions=self.conditions)


def local_resources(template: Mapping[str, Any]) -> dict[str, Any]:
    """The template's resources that exist locally.

    Left out: overrides of resources Chalice generates (entries without a
    Type), types in NO_LOCAL_COUNTERPART, and resources that refer to one (e.g. a function's log group
    retention or its async invocation config), which only a deployment has.
    """
    local = {logical: spec for logical, spec in template.get("Resources", {}).items()
             if "Type" in spec and spec["Type"] not in NO_LOCAL_COUNTERPART}
    known = set(local) | set(template.get("Parameters", {}))
    while True:
        deployment_only = {logical for logical, spec in local.items()
                           if any(not name.startswith("AWS::") and name not in known for name in references(spec))}
        if not deployment_only:
            return local
        for logical in deployment_only:
            del local[logical]
        known -= deployment_only


def _moto_cloudformation_types() -> set[str]:
    from moto.cloudformation.parsing import get_model_map

    return set(get_model_map())


def provision(
    session: boto3.session.Session,
    stage: str = "local",
    parameters: Mapping[str, str] | None = None,
    template: dict[str, Any] | None = None,
) -> ProvisionedStack:
    """Create every resource of the template for `stage` and return their names."""
    template = template or load_template()
    values = parameter_values(template, {"Stage": stage, **(parameters or {})})
    conditions = evaluate_conditions(template, values)
    region = session.region_name or "us-east-1"
    resources = {logical: spec for logical, spec in local_resources(template).items()
                 if conditions.get(spec.get("Condition", ""), True)}

    in_stack, through_boto3 = _split_by_creator(resources, _moto_cloudformation_types())
    missing = sorted({spec["Type"] for spec in through_boto3.values()} - set(_HANDLERS))
    if missing:
        raise NotImplementedError(f"no local provisioner for resource types {missing}")

    branches = IntrinsicResolver(values, conditions=conditions)
    chosen = {logical: branches.choose_branches(spec) for logical, spec in in_stack.items()}
    refs, attributes = _create_stack(session, stage, template, values, chosen)
    resolver = IntrinsicResolver({**values, **refs}, attributes, region=region, account_id=ACCOUNT_ID,
                                 conditions=conditions)
    for logical, spec in in_stack.items():
        _apply_ignored_properties(session, spec["Type"], refs[logical], resolver.resolve(spec.get("Properties", {})))
    for logical, spec in _in_dependency_order(through_boto3):
        created = _HANDLERS[spec["Type"]](session, logical, resolver.resolve(spec.get("Properties", {})))
        refs[logical] = created.ref
        attributes.update({(logical, name): value for name, value in created.attributes.items()})
        resolver = IntrinsicResolver({**values, **refs}, attributes, region=region, account_id=ACCOUNT_ID,
                                     conditions=conditions)

    return ProvisionedStack(
        stage=stage,
        region=region,
        parameters=dict(values),
        refs=refs,
        attributes=attributes,
        environment=function_environment(template, resolver),
        template=template,
        conditions=conditions,
    )


def _split_by_creator(resources: Mapping[str, Any], supported: set[str]
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(created by moto's CloudFormation, created through boto3): a type moto lacks, or a reference to one."""
    in_stack = {logical: spec for logical, spec in resources.items() if spec["Type"] in supported}
    through_boto3 = {logical: spec for logical, spec in resources.items() if spec["Type"] not in supported}
    while True:
        moved = {logical for logical, spec in in_stack.items() if references(spec) & set(through_boto3)}
        if not moved:
            return in_stack, through_boto3
        for logical in moved:
            through_boto3[logical] = in_stack.pop(logical)


def _create_stack(
    session: boto3.session.Session,
    stage: str,
    template: Mapping[str, Any],
    values: Mapping[str, str],
    resources: Mapping[str, Any],
) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    stack_template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": template.get("Parameters", {}),
        "Conditions": template.get("Conditions", {}),
        "Resources": dict(resources),
    }
    if not stack_template["Conditions"]:
        del stack_template["Conditions"]
    cloudformation = client(session, "cloudformation")
    stack_name = f"sendtrail-{stage}"
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(stack_template),
        Parameters=[{"ParameterKey": name, "ParameterValue": value} for name, value in values.items()],
    )
    status = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"]
    if status != "CREATE_COMPLETE":
        raise RuntimeError(f"local stack {stack_name} ended in {status}")
    refs: dict[str, str] = {}
    attributes: dict[tuple[str, str], str] = {}
    region = session.region_name or "us-east-1"
    for resource in cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]:
        logical, physical = resource["LogicalResourceId"], resource["PhysicalResourceId"]
        refs[logical] = physical
        for name, value in _known_attributes(resource["ResourceType"], physical, region).items():
            attributes[(logical, name)] = value
    return refs, attributes


def _known_attributes(resource_type: str, physical_id: str, region: str) -> dict[str, str]:
    """The Fn::GetAtt values other resources of the template use."""
    arn = f"arn:aws:{{service}}:{region}:{ACCOUNT_ID}:{{resource}}"
    if resource_type == "AWS::Kinesis::Stream":
        return {"Arn": arn.format(service="kinesis", resource=f"stream/{physical_id}")}
    if resource_type == "AWS::DynamoDB::Table":
        return {"Arn": arn.format(service="dynamodb", resource=f"table/{physical_id}")}
    if resource_type == "AWS::S3::Bucket":
        return {"Arn": f"arn:aws:s3:::{physical_id}", "DomainName": f"{physical_id}.s3.amazonaws.com"}
    if resource_type == "AWS::SQS::Queue":
        name = physical_id.rsplit("/", 1)[-1]
        return {"Arn": arn.format(service="sqs", resource=name), "QueueName": name, "QueueUrl": physical_id}
    if resource_type == "AWS::SNS::Topic":
        return {"TopicArn": physical_id, "TopicName": physical_id.rsplit(":", 1)[-1]}
    if resource_type == "AWS::Logs::LogGroup":
        return {"Arn": arn.format(service="logs", resource=f"log-group:{physical_id}:*")}
    if resource_type == "AWS::IAM::Role":
        return {"Arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{physical_id}"}
    return {}


def _apply_ignored_properties(session: boto3.session.Session, resource_type: str, physical_id: str,
                              properties: Mapping[str, Any]) -> None:
    """Properties moto's CloudFormation accepts but drops, set through boto3."""
    if resource_type == "AWS::DynamoDB::Table" and properties.get("TimeToLiveSpecification"):
        ttl = properties["TimeToLiveSpecification"]
        client(session, "dynamodb").update_time_to_live(
            TableName=physical_id,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])},
        )
    if resource_type == "AWS::S3::Bucket":
        _apply_bucket_properties(client(session, "s3"), physical_id, properties)


def _apply_bucket_properties(s3: Any, bucket: str, properties: Mapping[str, Any]) -> None:
    """Lifecycle, public access block and ownership controls (moto's CloudFormation drops them)."""
    block = properties.get("PublicAccessBlockConfiguration")
    if block:
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            name: bool(block.get(name, False))
            for name in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
        })
    ownership = properties.get("OwnershipControls")
    if ownership:
        s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={"Rules": [
            {"ObjectOwnership": rule["ObjectOwnership"]} for rule in ownership["Rules"]]})
    lifecycle = properties.get("LifecycleConfiguration")
    if lifecycle:
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={
            "Rules": [_lifecycle_rule(rule) for rule in lifecycle["Rules"]]})


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the S3 API's shape."""
    out: dict[str, Any] = {"ID": rule.get("Id", ""), "Status": rule["Status"],
                           "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
    return out


# moto's Firehose appends the default "YYYY/MM/DD/HH/" partition to a
# delivery stream's Prefix itself and does not evaluate expressions; our
# template's prefix spells exactly that partition as an expression, which is
# therefore dropped here so that objects land where real Firehose puts them.
_HOUR_PARTITION_EXPRESSION = "!{timestamp:yyyy/MM/dd/HH}/"


def firehose_local_prefix(prefix: str) -> str:
    """The Prefix to give moto's Firehose for a template Prefix (see above)."""
    if prefix.endswith(_HOUR_PARTITION_EXPRESSION):
        prefix = prefix[: -len(_HOUR_PARTITION_EXPRESSION)]
    if "!{" in prefix:
        raise NotImplementedError(f"the local Firehose cannot evaluate the prefix {prefix!r}")
    return prefix


@handles("AWS::KinesisFirehose::DeliveryStream")
def _firehose_delivery_stream(session: boto3.session.Session, logical_id: str,
                              properties: dict[str, Any]) -> CreatedResource:
    """A Firehose delivery stream on moto (its CloudFormation has no such type).

    moto stores the Kinesis source but never reads it: the local runtime's
    pump (infra/local_runtime/firehose_pump.py) feeds the stream instead.
    """
    firehose = client(session, "firehose")
    name = properties.get("DeliveryStreamName") or f"sendtrail-{logical_id}"
    request: dict[str, Any] = {"DeliveryStreamName": name,
                               "DeliveryStreamType": properties.get("DeliveryStreamType", "DirectPut")}
    if "KinesisStreamSourceConfiguration" in properties:
        request["KinesisStreamSourceConfiguration"] = properties["KinesisStreamSourceConfiguration"]
    destination = dict(properties["ExtendedS3DestinationConfiguration"])
    destination["Prefix"] = firehose_local_prefix(destination.get("Prefix", ""))
    if "BufferingHints" in destination:  # numbers from parameters resolve as text; the API takes integers
        destination["BufferingHints"] = {hint: int(value) for hint, value in destination["BufferingHints"].items()}
    request["ExtendedS3DestinationConfiguration"] = destination
    firehose.create_delivery_stream(**request)
    arn = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]["DeliveryStreamARN"]
    return CreatedResource(ref=name, attributes={"Arn": arn})


# --- The MTA: SES configuration sets and the SES events path ------------------
# moto's CloudFormation has none of these types; each is created through the
# API moto implements for it, from the template's own properties.

@handles("AWS::SES::DedicatedIpPool")
def _ses_dedicated_ip_pool(session: boto3.session.Session, logical_id: str,
                           properties: dict[str, Any]) -> CreatedResource:
    name = properties["PoolName"]
    client(session, "sesv2").create_dedicated_ip_pool(PoolName=name,
                                                     ScalingMode=properties.get("ScalingMode", "STANDARD"))
    return CreatedResource(ref=name)


_CONFIGURATION_SET_OPTIONS = ("DeliveryOptions", "ReputationOptions", "SendingOptions", "SuppressionOptions",
                              "TrackingOptions", "VdmOptions")


@handles("AWS::SES::ConfigurationSet")
def _ses_configuration_set(session: boto3.session.Session, logical_id: str,
                           properties: dict[str, Any]) -> CreatedResource:
    name = properties.get("Name") or f"sendtrail-{logical_id}"
    options = {key: properties[key] for key in _CONFIGURATION_SET_OPTIONS if properties.get(key)}
    client(session, "sesv2").create_configuration_set(ConfigurationSetName=name, **options)
    return CreatedResource(ref=name)


@handles("AWS::SES::ConfigurationSetEventDestination")
def _ses_event_destination(session: boto3.session.Session, logical_id: str,
                           properties: dict[str, Any]) -> CreatedResource:
    """An event destination, through SES v1 (moto's SES v2 lacks the call; both share one backend).

    moto stores it and never publishes: infra/local_runtime/ses_events.py
    reads it back and publishes what SES would.
    """
    destination = properties["EventDestination"]
    v1_destination: dict[str, Any] = {"Name": destination["Name"], "Enabled": bool(destination.get("Enabled", True)),
                                      "MatchingEventTypes": list(destination["MatchingEventTypes"])}
    if "SnsDestination" in destination:
        v1_destination["SNSDestination"] = {"TopicARN": destination["SnsDestination"]["TopicARN"]}
    client(session, "ses").create_configuration_set_event_destination(
        ConfigurationSetName=properties["ConfigurationSetName"], EventDestination=v1_destination)
    return CreatedResource(ref=f"{properties['ConfigurationSetName']}|{destination['Name']}")


@handles("AWS::SNS::Subscription")
def _sns_subscription(session: boto3.session.Session, logical_id: str,
                      properties: dict[str, Any]) -> CreatedResource:
    """A topic subscription (moto's CloudFormation has no such type), with its attributes."""
    attributes = {name: json.dumps(value) if isinstance(value, dict) else str(value).lower()
                  if isinstance(value, bool) else str(value)
                  for name, value in properties.items()
                  if name in ("RawMessageDelivery", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy")}
    arn = client(session, "sns").subscribe(TopicArn=properties["TopicArn"], Protocol=properties["Protocol"],
                                          Endpoint=properties["Endpoint"], Attributes=attributes,
                                          ReturnSubscriptionArn=True)["SubscriptionArn"]
    return CreatedResource(ref=arn)


@handles("AWS::SNS::TopicPolicy")
def _sns_topic_policy(session: boto3.session.Session, logical_id: str,
                      properties: dict[str, Any]) -> CreatedResource:
    sns = client(session, "sns")
    for topic_arn in properties["Topics"]:
        sns.set_topic_attributes(TopicArn=topic_arn, AttributeName="Policy",
                                 AttributeValue=json.dumps(properties["PolicyDocument"]))
    return CreatedResource(ref=f"sendtrail-{logical_id}")


@handles("AWS::SQS::QueuePolicy")
def _sqs_queue_policy(session: boto3.session.Session, logical_id: str,
                      properties: dict[str, Any]) -> CreatedResource:
    sqs = client(session, "sqs")
    for queue_url in properties["Queues"]:
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(properties["PolicyDocument"])})
    return CreatedResource(ref=f"sendtrail-{logical_id}")


def references(value: Any) -> set[str]:
    """The logical ids (and parameters) a template value refers to."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                found.add(item)
            elif key == "Fn::GetAtt":
                found.add(item[0])
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                found.update(name.split(".")[0] for name in IntrinsicResolver._SUB_VARIABLE.findall(text))
                found |= references(item)
            else:
                found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


def _in_dependency_order(resources: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Template order, except that a resource comes after those it references."""
    ordered: list[tuple[str, Any]] = []
    placed: set[str] = set()

    def place(logical: str, trail: tuple[str, ...] = ()) -> None:
        if logical in placed:
            return
        if logical in trail:
            raise ValueError(f"circular reference: {' -> '.join(trail + (logical,))}")
        spec = resources[logical]
        for dependency in sorted(references(spec) & set(resources)):
            place(dependency, trail + (logical,))
        placed.add(logical)
        ordered.append((logical, spec))

    for logical in resources:
        place(logical)
    return ordered


_ALARM_PROPERTIES = ("AlarmName", "AlarmDescription", "ActionsEnabled", "AlarmActions", "OKActions",
                     "InsufficientDataActions", "MetricName", "Namespace", "Statistic", "ExtendedStatistic",
                     "Dimensions", "Period", "Unit", "EvaluationPeriods", "DatapointsToAlarm", "Threshold",
                     "ComparisonOperator", "TreatMissingData", "EvaluateLowSampleCountPercentile", "Metrics",
                     "ThresholdMetricId")
_NUMERIC_ALARM_PROPERTIES = {"Period": int, "EvaluationPeriods": int, "DatapointsToAlarm": int, "Threshold": float}


@handles("AWS::CloudWatch::Alarm")
def _cloudwatch_alarm(session: boto3.session.Session, logical_id: str, properties: dict[str, Any]) -> CreatedResource:
    """A metric alarm, in INSUFFICIENT_DATA as CloudWatch creates it (moto's CloudFormation lacks the type).

    moto stores alarms but never evaluates them: infra/local_runtime/alarms.py does.
    """
    request = {name: properties[name] for name in _ALARM_PROPERTIES if name in properties}
    for name, kind in _NUMERIC_ALARM_PROPERTIES.items():
        if name in request:
            request[name] = kind(request[name])
    request.setdefault("AlarmName", f"sendtrail-{logical_id}")
    cloudwatch = client(session, "cloudwatch")
    cloudwatch.put_metric_alarm(**request)
    cloudwatch.set_alarm_state(AlarmName=request["AlarmName"], StateValue="INSUFFICIENT_DATA",
                               StateReason="Unchecked: Initial alarm creation")
    arn = f"arn:aws:cloudwatch:{session.region_name or 'us-east-1'}:{ACCOUNT_ID}:alarm:{request['AlarmName']}"
    return CreatedResource(ref=request["AlarmName"], attributes={"Arn": arn})


@handles("AWS::CloudWatch::Dashboard")
def _cloudwatch_dashboard(session: boto3.session.Session, logical_id: str,
                          properties: dict[str, Any]) -> CreatedResource:
    """A dashboard that names alarms (created through boto3 here, so the dashboard is too)."""
    name = properties.get("DashboardName") or f"sendtrail-{logical_id}"
    client(session, "cloudwatch").put_dashboard(DashboardName=name, DashboardBody=properties["DashboardBody"])
    return CreatedResource(ref=name)


@handles("AWS::IAM::Role")
def _iam_role(session: boto3.session.Session, logical_id: str, properties: dict[str, Any]) -> CreatedResource:
    """A role whose policy names a resource created through boto3 (moto's CloudFormation makes the others)."""
    iam = client(session, "iam")
    name = properties.get("RoleName") or f"sendtrail-{logical_id}"
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(properties["AssumeRolePolicyDocument"]))
    for policy in properties.get("Policies", []):
        iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"],
                            PolicyDocument=json.dumps(policy["PolicyDocument"]))
    return CreatedResource(ref=name, attributes={"Arn": role["Role"]["Arn"]})


@handles("AWS::ApiGatewayV2::Api")
def _http_api(session: boto3.session.Session, logical_id: str, properties: dict[str, Any]) -> CreatedResource:
    """The hit routes' HTTP API (its routes are served by infra/local_runtime/gateway.py, from the template)."""
    request = {name: properties[name] for name in ("Name", "ProtocolType", "Description") if name in properties}
    api = client(session, "apigatewayv2").create_api(**request)
    return CreatedResource(ref=api["ApiId"], attributes={"ApiEndpoint": api["ApiEndpoint"]})


@handles("AWS::ApiGatewayV2::Stage")
def _http_api_stage(session: boto3.session.Session, logical_id: str, properties: dict[str, Any]) -> CreatedResource:
    """Its stage with the route throttling the template declares (kept by moto, applied by nothing locally)."""

    def throttling(settings: Mapping[str, Any]) -> dict[str, Any]:
        return {"ThrottlingRateLimit": float(settings["ThrottlingRateLimit"]),
                "ThrottlingBurstLimit": int(settings["ThrottlingBurstLimit"])}

    client(session, "apigatewayv2").create_stage(
        ApiId=properties["ApiId"], StageName=properties["StageName"], AutoDeploy=bool(properties.get("AutoDeploy")),
        DefaultRouteSettings=throttling(properties["DefaultRouteSettings"]),
        RouteSettings={key: throttling(settings) for key, settings in properties.get("RouteSettings", {}).items()})
    return CreatedResource(ref=properties["StageName"])
