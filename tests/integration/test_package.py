"""`make package`: the merged template is complete, least-privilege and cfn-lint clean; `make deploy`'s upload."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from infra.deploy import upload_artifacts
from infra.package import PackageError, lint, package


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make package STAGE=dev` without the layer zips (built by `make layer`, not needed to read the template)."""
    return package("dev", "x86_64", out=tmp_path_factory.mktemp("package") / "dev", require_layers=False)


@pytest.fixture(scope="module")
def template(packaged: Path) -> dict[str, Any]:
    return yaml.safe_load(packaged.read_text())


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    return {logical: spec for logical, spec in template["Resources"].items() if spec["Type"] == resource_type}


def test_the_packaged_template_is_cfn_lint_clean(packaged: Path) -> None:
    assert lint(packaged) == ""


def test_cfn_lint_does_find_problems(packaged: Path, tmp_path: Path) -> None:
    broken = yaml.safe_load(packaged.read_text())
    del broken["Resources"]["ApiHandlerRole"]
    path = tmp_path / "sam.yaml"
    path.write_text(yaml.safe_dump(broken))
    assert "ApiHandlerRole" in lint(path)


def test_every_function_has_its_own_role_name_and_log_group(template: dict[str, Any]) -> None:
    functions = resources_of_type(template, "AWS::Serverless::Function")
    assert {"APIHandler", "ApiAuth", "TrackingWorkflow"} <= set(functions)
    assert "DefaultRole" not in template["Resources"]  # Chalice's shared role is off
    log_groups = {spec["Properties"]["LogGroupName"]["Fn::Sub"]
                  for spec in resources_of_type(template, "AWS::Logs::LogGroup").values()}
    roles = []
    for logical, spec in functions.items():
        role = spec["Properties"]["Role"]["Fn::GetAtt"][0]
        assert template["Resources"][role]["Type"] == "AWS::IAM::Role", logical
        roles.append(role)
        name = spec["Properties"]["FunctionName"]["Fn::Sub"]
        assert f"/aws/lambda/{name}" in log_groups, logical
    assert len(set(roles)) == len(roles)


def test_a_package_is_for_one_stage_and_architecture(template: dict[str, Any]) -> None:
    assert (template["Parameters"]["Stage"]["Default"], template["Parameters"]["Stage"]["AllowedValues"]) == (
        "dev", ["dev"])
    assert template["Parameters"]["Architecture"]["AllowedValues"] == ["x86_64"]
    functions = resources_of_type(template, "AWS::Serverless::Function")
    for spec in functions.values():
        assert spec["Properties"]["Runtime"] == "python3.11"
        assert spec["Properties"]["Architectures"] == [{"Ref": "Architecture"}]
    # the native layer goes to the function that parses redirection logs, and only there
    assert [logical for logical, spec in functions.items() if "Layers" in spec["Properties"]] == ["TrackingWorkflow"]


def test_the_scheduled_workflow_is_not_retried_on_top_of_the_next_run(template: dict[str, Any]) -> None:
    [config] = resources_of_type(template, "AWS::Lambda::EventInvokeConfig").values()
    assert config["Properties"]["FunctionName"] == {"Ref": "TrackingWorkflow"}
    assert config["Properties"]["MaximumRetryAttempts"] == 0


def test_every_queue_event_source_reports_partial_batch_failures(template: dict[str, Any]) -> None:
    for logical, spec in resources_of_type(template, "AWS::Serverless::Function").items():
        for event in spec["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"], logical
                assert "Fn::GetAtt" in str(event["Properties"]["Queue"]) or "Arn" in str(event["Properties"]["Queue"])


def test_storage_expires_and_is_encrypted(template: dict[str, Any]) -> None:
    [bucket] = resources_of_type(template, "AWS::S3::Bucket").values()
    rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    assert {rule["Prefix"] for rule in rules if "Prefix" in rule} >= {"redirection-logs/", "redirection-quarantine/"}
    tables = resources_of_type(template, "AWS::DynamoDB::Table")
    for logical in ("TrackingTable", "TrackingStatsTable", "DeliveryLogsTable"):
        assert tables[logical]["Properties"]["TimeToLiveSpecification"]["Enabled"] is True
    assert all(spec["Properties"]["SSESpecification"]["SSEEnabled"] for spec in tables.values())


def test_the_deployment_zip_has_the_app_and_its_runtime_requirements_only(packaged: Path) -> None:
    names = zipfile.ZipFile(packaged.parent / "deployment.zip").namelist()
    assert "app.py" in names and "chalicelib/settings.py" in names
    assert any(name.startswith("pydantic_core/_pydantic_core.cpython-311-x86_64") for name in names)
    for dev_only in ("infra/", "tests/", "moto/", "benchmarks/", "bench/"):
        assert not any(name.startswith(dev_only) for name in names), dev_only


def test_unknown_stage_or_architecture_is_refused() -> None:
    with pytest.raises(PackageError, match="stage"):
        package("staging")
    with pytest.raises(PackageError, match="architecture"):
        package("dev", "sparc")


def test_deploy_uploads_each_artifact_once_by_content(packaged: Path, tmp_path: Path, aws: None) -> None:
    directory = tmp_path / "dev"
    shutil.copytree(packaged.parent, directory)
    layers = {spec["Properties"]["ContentUri"] for spec in
              resources_of_type(yaml.safe_load(packaged.read_text()), "AWS::Serverless::LayerVersion").values()}
    for layer in layers:  # `make layer` builds them; any bytes do for the upload
        (directory / layer).write_bytes(f"layer {layer}".encode())
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="sendtrail-artifacts-test")
    rewritten = upload_artifacts(directory / "sam.yaml", "sendtrail-artifacts-test", "sendtrail-dev", s3)
    uris = {spec["Properties"]["CodeUri"] for spec in resources_of_type(rewritten, "AWS::Serverless::Function").values()}
    [uri] = uris
    layer_uris = {spec["Properties"]["ContentUri"]
                  for spec in resources_of_type(rewritten, "AWS::Serverless::LayerVersion").values()}
    assert len(layer_uris) == len(layers) and all(u.startswith("s3://sendtrail-artifacts-test/") for u in layer_uris)
    assert uri.startswith("s3://sendtrail-artifacts-test/sendtrail-dev/") and uri.endswith(".zip")
    stored = s3.get_object(Bucket="sendtrail-artifacts-test", Key=uri.split("/", 3)[3])["Body"].read()
    assert stored == (directory / "deployment.zip").read_bytes()
    first = s3.list_objects_v2(Bucket="sendtrail-artifacts-test")["Contents"]
    upload_artifacts(directory / "sam.yaml", "sendtrail-artifacts-test", "sendtrail-dev", s3)
    assert s3.list_objects_v2(Bucket="sendtrail-artifacts-test")["Contents"] == first


def test_the_mta_functions_read_the_templates_queues_with_partial_batch_responses(template: dict[str, Any]) -> None:
    functions = resources_of_type(template, "AWS::Serverless::Function")
    expected = {"SendWorker": ("SendWorkQueue", 1), "SesEvents": ("SesEventsQueue", 10)}
    for logical, (queue, batch_size) in expected.items():
        [event] = functions[logical]["Properties"]["Events"].values()
        properties = event["Properties"]
        assert event["Type"] == "SQS"
        assert properties["Queue"] == {"Fn::Sub": f"${{{queue}.Arn}}"}  # the template's queue, not Chalice's name
        assert properties["BatchSize"] == batch_size
        assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert properties["ScalingConfig"]["MaximumConcurrency"]
        assert functions[logical]["Properties"]["Timeout"] * 6 <= template["Resources"][queue]["Properties"][
            "VisibilityTimeout"]
    assert functions["SendWorker"]["Properties"]["Events"]["SendWorkerSqsEventSource"]["Properties"][
        "ScalingConfig"]["MaximumConcurrency"] == {"Ref": "SendConcurrency"}


def test_every_mta_queue_has_a_dead_letter_queue_with_a_retry_limit(template: dict[str, Any]) -> None:
    queues = resources_of_type(template, "AWS::SQS::Queue")
    for logical in ("SendWorkQueue", "SesEventsQueue"):
        redrive = queues[logical]["Properties"]["RedrivePolicy"]
        dead_letter = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert redrive["maxReceiveCount"] == 5 and dead_letter in queues
        assert "RedrivePolicy" not in queues[dead_letter]["Properties"]


def test_ses_publishes_every_consumed_event_type_to_the_queue(template: dict[str, Any]) -> None:
    [destination] = resources_of_type(template, "AWS::SES::ConfigurationSetEventDestination").values()
    event_destination = destination["Properties"]["EventDestination"]
    assert set(event_destination["MatchingEventTypes"]) == {
        "send", "reject", "bounce", "complaint", "delivery", "deliveryDelay", "renderingFailure"}
    assert event_destination["SnsDestination"]["TopicARN"] == {"Ref": "SesEventsTopic"}
    [subscription] = resources_of_type(template, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Endpoint"] == {"Fn::GetAtt": ["SesEventsQueue", "Arn"]}
    assert subscription["Properties"]["RawMessageDelivery"] is False
    [queue_policy] = resources_of_type(template, "AWS::SQS::QueuePolicy").values()
    [statement] = queue_policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Ref": "SesEventsTopic"}
    [pool] = resources_of_type(template, "AWS::SES::DedicatedIpPool").values()
    assert pool["Condition"] == "HasDedicatedIpPool"
    [configuration_set] = resources_of_type(template, "AWS::SES::ConfigurationSet").values()
    assert configuration_set["Properties"]["DeliveryOptions"]["SendingPoolName"]["Fn::If"][0] == "HasDedicatedIpPool"


def test_only_the_send_worker_sends_mail(template: dict[str, Any]) -> None:
    senders = []
    for logical, role in resources_of_type(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            if any("ses:SendEmail" in str(statement["Action"]) for statement in policy["PolicyDocument"]["Statement"]):
                senders.append(logical)
    assert senders == ["SendWorkerRole"]
