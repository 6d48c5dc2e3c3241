"""`make package`: the merged template is complete, least-privilege and cfn-lint clean; `make deploy`'s upload."""

from __future__ import annotations

import importlib.util
import marshal
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from infra.deploy import upload_artifacts
from infra.package import PackageError, _check_runtime, bytecode, lint, package


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


def test_scheduled_functions_are_not_retried_on_top_of_the_next_run(template: dict[str, Any]) -> None:
    functions = resources_of_type(template, "AWS::Serverless::Function")
    scheduled = {logical for logical, spec in functions.items()
                 if any(event["Type"] == "Schedule" for event in spec["Properties"].get("Events", {}).values())}
    configs = {spec["Properties"]["FunctionName"]["Ref"]: spec["Properties"]
               for spec in resources_of_type(template, "AWS::Lambda::EventInvokeConfig").values()}
    assert set(configs) == scheduled == {"TrackingWorkflow", "DeliveryMonitor"}
    assert all(config["MaximumRetryAttempts"] == 0 for config in configs.values())


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
    swagger_ui = sorted(name.rsplit("/", 1)[1] for name in names if name.startswith("swagger_ui_bundle/vendor/"))
    assert swagger_ui == ["swagger-ui-bundle.js", "swagger-ui.css"], swagger_ui  # what /docs serves, no more
    assert "chalicelib/api/docs_page/docs.js" in names


def test_every_module_ships_unchecked_hash_bytecode_for_the_runtimes_python(
        packaged: Path, template: dict[str, Any]) -> None:
    """A cold start compiles nothing: each module's .pyc is where the importer looks, for the runtime's version."""
    runtimes = {spec["Properties"]["Runtime"] for spec in resources_of_type(template, "AWS::Serverless::Function").values()}
    assert runtimes == {f"python{sys.version_info.major}.{sys.version_info.minor}"}  # MAGIC_NUMBER is this version's
    with zipfile.ZipFile(packaged.parent / "deployment.zip") as deployment:
        names = set(deployment.namelist())
        modules = sorted(name for name in names if name.endswith(".py") and name.split("/")[0] in (
            "app.py", "chalicelib", "chalice", "aws_lambda_powertools", "pydantic", "jmespath", "typing_extensions.py"))
        assert {"app.py", "chalicelib/hits/endpoints.py", "chalice/app.py", "aws_lambda_powertools/logging/logger.py",
                "typing_extensions.py"} <= set(modules)
        for module in modules:
            pyc = deployment.read(importlib.util.cache_from_source(module, optimization=""))
            source = deployment.read(module)
            assert pyc[:4] == importlib.util.MAGIC_NUMBER, module
            assert int.from_bytes(pyc[4:8], "little") == 0b01, module  # hash-based, source not checked
            assert pyc[8:16] == importlib.util.source_hash(source), module
            assert marshal.loads(pyc[16:]).co_filename == module
        assert all(name.rsplit("/", 2)[-2] == "__pycache__" for name in names if name.endswith(".pyc"))


def test_bytecode_is_only_for_modules_and_for_the_runtime_that_reads_it() -> None:
    this_python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    other = "python3.12" if this_python != "python3.12" else "python3.13"
    function = {"Type": "AWS::Serverless::Function", "Properties": {"Runtime": other}}
    with pytest.raises(PackageError, match=f"runs {other}"):
        _check_runtime({"Resources": {"APIHandler": function}})
    _check_runtime({"Resources": {"APIHandler": {**function, "Properties": {"Runtime": this_python}}}})
    assert bytecode("pygal-3.1.3.data/scripts/x.py", b"x = 1") is None  # no importable path
    assert bytecode("pkg/broken.py", b"def (") is None  # no import could load it either
    name, pyc = bytecode("pkg/module.py", b"x = 1") or ("", b"")
    assert name == f"pkg/__pycache__/module.{sys.implementation.cache_tag}.pyc" and len(pyc) > 16


def test_the_runtime_imports_the_shipped_bytecode_not_the_source(packaged: Path, tmp_path: Path) -> None:
    """Every source of the hit path and of Powertools replaced by a raise: importing still works, from bytecode."""
    task = tmp_path / "task"
    with zipfile.ZipFile(packaged.parent / "deployment.zip") as deployment:
        deployment.extractall(task)
    for top in ("app.py", "chalicelib", "chalice", "aws_lambda_powertools"):
        for source in [task / top] if top.endswith(".py") else (task / top).rglob("*.py"):
            source.write_text('raise ImportError("compiled from source")\n')
    probe = "import app, aws_lambda_powertools.logging, chalicelib.hits.endpoints; print(app.app.app_name)"
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(task), "PYTHONDONTWRITEBYTECODE": "1",
                   "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run([sys.executable, "-c", probe], cwd=task, env=environment, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sendtrail"


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
    subscription = resources_of_type(template, "AWS::SNS::Subscription")["SesEventsSubscription"]
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


# --- operations: alarms, the alert topic, the dashboard ---------------------------

# Every alarm, as intended: what it watches (namespace, metric and statistic,
# or metric math), its period x evaluation periods / datapoints to alarm,
# threshold, comparison and missing-data rule.
STAGE = [{"Name": "stage", "Value": {"Ref": "Stage"}}]
EXPECTED_ALARMS: dict[str, dict[str, Any]] = {
    "TrackingWorkflowStalledAlarm": {
        "name": "tracking-workflow-stalled", "metric": ("sendtrail", "WorkflowSuccesses", "Sum", STAGE),
        "period": 60, "evaluation": (3, 3), "threshold": 1, "comparison": "LessThanThreshold", "missing": "breaching"},
    "TrackingBacklogAlarm": {
        "name": "tracking-backlog", "metric": ("sendtrail", "WorkflowLagSeconds", "Maximum", STAGE),
        "period": 300, "evaluation": (1, 1), "threshold": 600, "comparison": "GreaterThanThreshold",
        "missing": "notBreaching"},
    "HitErrorsAlarm": {
        "name": "hit-errors",
        "math": ("FILL(put_failures, 0) + FILL(unrecorded, 0) + FILL(server_errors, 0)",
                 {"put_failures": "HitStreamPutFailures", "unrecorded": "HitsUnrecorded",
                  "server_errors": "HttpServerErrors"}, "Sum"),
        "period": 300, "evaluation": (1, 1), "threshold": 5, "comparison": "GreaterThanOrEqualToThreshold",
        "missing": "notBreaching"},
    "HitFallbackFailuresAlarm": {  # the fallback's batching path failed: each hit became its own object
        "name": "hit-fallback-failures", "metric": ("sendtrail", "FallbackStreamPutFailures", "Sum", STAGE),
        "period": 300, "evaluation": (1, 1), "threshold": 1, "comparison": "GreaterThanOrEqualToThreshold",
        "missing": "notBreaching"},
    "HitStreamIteratorAgeAlarm": {
        "name": "hit-stream-iterator-age",
        "metric": ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "Maximum",
                   [{"Name": "StreamName", "Value": {"Ref": "HitStream"}}]),
        "period": 300, "evaluation": (1, 1), "threshold": 600000, "comparison": "GreaterThanThreshold",
        "missing": "notBreaching"},
    "RedirectionLogDeliveryFailuresAlarm": {
        "name": "redirection-log-delivery-failures",
        "metric": ("AWS/Firehose", "DeliveryToS3.Success", "Minimum",
                   [{"Name": "DeliveryStreamName", "Value": {"Ref": "RedirectionLogDeliveryStream"}}]),
        "period": 300, "evaluation": (1, 1), "threshold": 1, "comparison": "LessThanThreshold",
        "missing": "notBreaching"},
    "RedirectionLogFreshnessAlarm": {
        "name": "redirection-log-freshness",
        "metric": ("AWS/Firehose", "DeliveryToS3.DataFreshness", "Maximum",
                   [{"Name": "DeliveryStreamName", "Value": {"Ref": "RedirectionLogDeliveryStream"}}]),
        "period": 300, "evaluation": (1, 1), "threshold": 900, "comparison": "GreaterThanThreshold",
        "missing": "notBreaching"},
    "DeliveryStuckInStartPendingAlarm": {
        "name": "delivery-stuck-start-pending", "metric": ("sendtrail", "OldestStartPendingSeconds", "Maximum", STAGE),
        "period": 60, "evaluation": (1, 1), "threshold": 900, "comparison": "GreaterThanThreshold",
        "missing": "notBreaching"},
    "DeliveryMonitorStalledAlarm": {
        "name": "delivery-monitor-stalled", "metric": ("sendtrail", "DeliveriesSending", "SampleCount", STAGE),
        "period": 60, "evaluation": (3, 3), "threshold": 1, "comparison": "LessThanThreshold", "missing": "breaching"},
    "HardBounceRateAlarm": {
        "name": "hard-bounce-rate",
        "math": ("IF(FILL(sent, 0) >= 100, 100 * FILL(hard, 0) / sent, 0)",
                 {"hard": "Bounces", "sent": "MessagesSent"}, "Sum"),
        "period": 3600, "evaluation": (1, 1), "threshold": 5, "comparison": "GreaterThanThreshold",
        "missing": "notBreaching"},
    "ComplaintRateAlarm": {
        "name": "complaint-rate",
        "math": ("IF(FILL(sent, 0) >= 100, 100 * FILL(complaints, 0) / sent, 0)",
                 {"complaints": "Complaints", "sent": "MessagesSent"}, "Sum"),
        "period": 3600, "evaluation": (1, 1), "threshold": 0.1, "comparison": "GreaterThanThreshold",
        "missing": "notBreaching"},
    "SendingThroughputLowAlarm": {  # judged only while deliveries were sending throughout a period (Minimum)
        "name": "sending-throughput-low",
        "math": ("IF(FILL(sending, 0) > 0, FILL(sent, 0) / 5, ${MinSendRatePerMinute})",
                 {"sent": "MessagesSent", "sending": ("DeliveriesSending", "Minimum")}, "Sum"),
        "period": 300, "evaluation": (3, 3), "threshold": {"Ref": "MinSendRatePerMinute"},
        "comparison": "LessThanThreshold", "missing": "notBreaching"},
    **{alarm: {  # any message in a dead-letter queue
        "name": name, "metric": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum",
                                 [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]),
        "period": 300, "evaluation": (1, 1), "threshold": 0, "comparison": "GreaterThanThreshold",
        "missing": "notBreaching"}
       for alarm, queue, name in (
           ("SendWorkDeadLettersAlarm", "SendWorkDeadLetterQueue", "send-work-dead-letters"),
           ("SesEventsDeadLettersAlarm", "SesEventsDeadLetterQueue", "ses-events-dead-letters"))},
    "DeliveriesStalledAlarm": {  # stalled throughout 5 minutes (the monitor's minute gauge)
        "name": "deliveries-stalled", "metric": ("sendtrail", "DeliveriesStalled", "Minimum", STAGE),
        "period": 60, "evaluation": (5, 5), "threshold": 0, "comparison": "GreaterThanThreshold",
        "missing": "notBreaching"},
    **{f"{logical}LambdaFailuresAlarm": {  # what ends an invocation before the app can count it
        "name": f"{function}-lambda-failures", "namespace": "AWS/Lambda",
        "dimensions": [{"Name": "FunctionName", "Value": {"Fn::Sub": f"sendtrail-${{Stage}}-{function}"}}],
        "math": ("FILL(errors, 0) + FILL(throttles, 0)", {"errors": "Errors", "throttles": "Throttles"}, "Sum"),
        "period": 300, "evaluation": (1, 1), "threshold": 1, "comparison": "GreaterThanOrEqualToThreshold",
        "missing": "notBreaching"}
       for logical, function in (("ApiHandler", "api-handler"), ("ApiAuthorizer", "api-authorizer"),
                                 ("TrackingWorkflow", "tracking-workflow"), ("SendWorker", "send-worker"),
                                 ("SesEvents", "ses-events"), ("DeliveryMonitor", "delivery-monitor"))},
}


def math_metrics(expected: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """An expected metric math alarm's query ids -> (metric name, statistic); the default statistic unless named."""
    _, metric_ids, statistic = expected["math"]
    return {query_id: (spec, statistic) if isinstance(spec, str) else spec for query_id, spec in metric_ids.items()}


def test_every_alarm_watches_its_intended_metric_with_its_threshold_and_missing_data_rule(
        template: dict[str, Any]) -> None:
    from chalicelib import metrics

    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    assert set(alarms) == set(EXPECTED_ALARMS)
    emitted = {value for name, value in vars(metrics).items() if name.isupper() and isinstance(value, str)}
    for logical, expected in EXPECTED_ALARMS.items():
        properties = alarms[logical]["Properties"]
        assert properties["AlarmName"] == {"Fn::Sub": f"sendtrail-${{Stage}}-{expected['name']}"}, logical
        assert (properties["EvaluationPeriods"], properties["DatapointsToAlarm"]) == expected["evaluation"], logical
        assert properties["Threshold"] == expected["threshold"], logical
        assert properties["ComparisonOperator"] == expected["comparison"], logical
        assert properties["TreatMissingData"] == expected["missing"], logical
        assert properties["AlarmActions"] == properties["OKActions"] == [{"Ref": "AlertTopic"}], logical
        assert properties["AlarmDescription"], logical
        if "metric" in expected:
            namespace, metric, statistic, dimensions = expected["metric"]
            assert (properties["Namespace"], properties["MetricName"], properties["Statistic"],
                    properties["Dimensions"], properties["Period"]) == (
                namespace, metric, statistic, dimensions, expected["period"]), logical
            assert namespace != "sendtrail" or metric in emitted, logical
            continue
        expression = expected["math"][0]
        [returned] = [query for query in properties["Metrics"] if query.get("ReturnData", True)]
        assert returned["Expression"] in (expression, {"Fn::Sub": expression}), logical
        stats = {query["Id"]: query["MetricStat"] for query in properties["Metrics"] if "MetricStat" in query}
        assert {query_id: (stat["Metric"]["MetricName"], stat["Stat"]) for query_id, stat in stats.items()} == (
            math_metrics(expected)), logical
        namespace = expected.get("namespace", "sendtrail")
        for stat in stats.values():
            assert (stat["Metric"]["Namespace"], stat["Period"]) == (namespace, expected["period"]), logical
            if namespace == "sendtrail":
                assert stat["Metric"]["Dimensions"][0] == STAGE[0] and stat["Metric"]["MetricName"] in emitted, logical
            else:
                assert stat["Metric"]["Dimensions"] == expected["dimensions"], logical
    bounces = next(query for query in alarms["HardBounceRateAlarm"]["Properties"]["Metrics"] if query["Id"] == "hard")
    assert bounces["MetricStat"]["Metric"]["Dimensions"] == STAGE + [{"Name": "type", "Value": "hard"}]


def test_alerts_go_to_one_topic_with_an_optional_email_subscription(template: dict[str, Any]) -> None:
    topic = "AlertTopic"
    assert resources_of_type(template, "AWS::SNS::Topic")[topic]["Properties"]["TopicName"]
    subscription = resources_of_type(template, "AWS::SNS::Subscription")["AlertEmailSubscription"]
    assert subscription["Condition"] == "HasAlertEmail"
    assert template["Conditions"]["HasAlertEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlertEmail"}, ""]}]}
    assert subscription["Properties"] == {"TopicArn": {"Ref": topic}, "Protocol": "email",
                                          "Endpoint": {"Ref": "AlertEmail"}}
    assert template["Parameters"]["AlertEmail"]["Default"] == ""
    assert template["Outputs"]["AlertTopicArn"]["Value"] == {"Ref": topic}


def test_the_dashboard_shows_every_alarm_and_every_signal_they_watch(template: dict[str, Any]) -> None:
    import json
    import re

    [dashboard] = resources_of_type(template, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "X", body))["widgets"]
    assert [widget["type"] for widget in widgets].count("alarm") == 1
    for logical, expected in EXPECTED_ALARMS.items():
        assert f"${{{logical}.Arn}}" in body, logical
        names = ([expected["metric"][1]] if "metric" in expected
                 else [name for name, _ in math_metrics(expected).values()])
        for name in names:
            assert f'"{name}"' in body, (logical, name)
    for breakdown in ("HitsTracked", "HitsRejected", "MalformedLines", "Bounces", "FallbackWrites",
                      "LinesProcessed", "WorkflowRuns", "NativeFallback", "DeliveryStartPendingSeconds",
                      "SendThrottles", "DeliveriesStalled", "FamiliesOverflowed"):
        assert breakdown in body, breakdown
    for queue in ("SendWorkQueue", "SesEventsQueue", "SendWorkDeadLetterQueue", "SesEventsDeadLetterQueue"):
        assert f'"QueueName", "${{{queue}.QueueName}}"' in body, queue


def test_every_function_has_a_lambda_failures_alarm_on_its_own_name(template: dict[str, Any]) -> None:
    """Errors and Throttles of AWS/Lambda, by the FunctionName each override gives (one source: the template)."""
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    functions = resources_of_type(template, "AWS::Serverless::Function")
    watched = {}
    for logical, alarm in alarms.items():
        if logical.endswith("LambdaFailuresAlarm"):
            [name] = {query["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Fn::Sub"]
                      for query in alarm["Properties"]["Metrics"] if "MetricStat" in query}
            watched[name] = logical
    assert set(watched) == {function["Properties"]["FunctionName"]["Fn::Sub"] for function in functions.values()}


# --- capacity and limits of the public routes ----------------------------------------

def test_the_hit_stream_is_on_demand_unless_provisioned_shards_are_asked_for(template: dict[str, Any]) -> None:
    stream = template["Resources"]["HitStream"]["Properties"]
    assert stream["StreamModeDetails"] == {"StreamMode": {"Ref": "HitStreamMode"}}
    assert stream["ShardCount"] == {"Fn::If": ["HitStreamProvisioned", {"Ref": "HitStreamShards"},
                                               {"Ref": "AWS::NoValue"}]}
    parameters = template["Parameters"]
    assert (parameters["HitStreamMode"]["Default"], parameters["HitStreamMode"]["AllowedValues"]) == (
        "ON_DEMAND", ["ON_DEMAND", "PROVISIONED"])
    assert template["Conditions"]["HitStreamProvisioned"] == {"Fn::Equals": [{"Ref": "HitStreamMode"}, "PROVISIONED"]}
    firehose = template["Resources"]["RedirectionLogDeliveryStream"]["Properties"]
    assert firehose["ExtendedS3DestinationConfiguration"]["BufferingHints"] == {
        "IntervalInSeconds": {"Ref": "RedirectionLogBufferSeconds"}, "SizeInMBs": {"Ref": "RedirectionLogBufferMB"}}
    assert (parameters["RedirectionLogBufferSeconds"]["Default"], parameters["RedirectionLogBufferMB"]["Default"]) == (
        60, 64)


def test_every_public_hit_route_is_throttled_and_the_api_function_reserves_its_concurrency(
        template: dict[str, Any]) -> None:
    from app import app

    api = template["Resources"]["RestAPI"]["Properties"]
    limits = {(setting["ResourcePath"], setting["HttpMethod"]): (setting["ThrottlingRateLimit"],
                                                                 setting["ThrottlingBurstLimit"])
              for setting in api["MethodSettings"]}
    assert limits.pop(("/*", "*")) == ({"Ref": "ApiRateLimit"}, {"Ref": "ApiBurstLimit"})  # the stage: every route
    hit_routes = {("/" + path.replace("/", "~1"), "*")  # API Gateway's escape; every method of the route
                  for path in app.routes if not path.startswith("/api") and "{token}" in path}
    assert len(hit_routes) == 4 and set(limits) == hit_routes
    assert list(limits.values()) == [({"Ref": "HitRateLimit"}, {"Ref": "HitBurstLimit"})] * len(hit_routes)
    parameters = template["Parameters"]
    assert {name: parameters[name]["Default"] for name in ("HitRateLimit", "HitBurstLimit", "ApiRateLimit",
                                                           "ApiBurstLimit", "ApiConcurrency")} == {
        "HitRateLimit": 5000, "HitBurstLimit": 2500, "ApiRateLimit": 50, "ApiBurstLimit": 100, "ApiConcurrency": 200}
    function = template["Resources"]["APIHandler"]["Properties"]
    assert function["ReservedConcurrentExecutions"] == {"Fn::If": ["HasApiConcurrency", {"Ref": "ApiConcurrency"},
                                                                   {"Ref": "AWS::NoValue"}]}


def test_a_waf_rate_rule_is_there_only_when_asked_for_on_the_rest_front_door(template: dict[str, Any]) -> None:
    acl = template["Resources"]["PublicRoutesWebAcl"]
    association = template["Resources"]["PublicRoutesWebAclAssociation"]
    assert acl["Condition"] == association["Condition"] == "HasWafRateLimit"
    assert template["Conditions"]["HasWafRateLimit"] == {"Fn::And": [
        {"Fn::Not": [{"Fn::Equals": [{"Ref": "WafRequestsPerFiveMinutes"}, 0]}]},
        {"Fn::Equals": [{"Ref": "HitFrontDoor"}, "RestApi"]}]}
    assert template["Parameters"]["WafRequestsPerFiveMinutes"]["Default"] == 0
    # asking for WAF on the HTTP API (which WAF cannot attach to) fails the deployment instead of doing nothing
    rule = template["Rules"]["WafNeedsTheRestFrontDoor"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "WafRequestsPerFiveMinutes"}, "0"]}]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Equals": [{"Ref": "HitFrontDoor"}, "RestApi"]}
    # The association waits for the REST API's stage, which the SAM transform generates as <logical id>
    # <StageName>Stage for an alphanumeric stage name (samtranslator's api_generator); cfn-lint, without
    # the SAM translator here, does not check a DependsOn on a generated resource, so this test does.
    rest_api = template["Resources"]["RestAPI"]
    stage_name = rest_api["Properties"]["StageName"]
    assert rest_api["Type"] == "AWS::Serverless::Api" and stage_name.isalnum()
    sam_stage = f"RestAPI{stage_name}Stage"
    assert association["DependsOn"] == template["Resources"]["TrackingDomainMapping"]["DependsOn"] == sam_stage
    [rule] = acl["Properties"]["Rules"]
    assert rule["Action"] == {"Block": {}} and rule["Statement"] == {"RateBasedStatement": {
        "Limit": {"Ref": "WafRequestsPerFiveMinutes"}, "AggregateKeyType": "IP"}}
    assert acl["Properties"]["Scope"] == "REGIONAL"
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": ["PublicRoutesWebAcl", "Arn"]}
    assert "/restapis/${RestAPI}/stages/api" in association["Properties"]["ResourceArn"]["Fn::Sub"]


def test_the_hit_routes_front_door_is_an_http_api_with_payload_1_0_and_route_throttling(
        template: dict[str, Any]) -> None:
    from chalicelib.hits.endpoints import ROUTE_METHODS

    resources = template["Resources"]
    assert template["Parameters"]["HitFrontDoor"]["Default"] == "HttpApi"
    assert template["Conditions"]["HitsOnHttpApi"] == {"Fn::Equals": [{"Ref": "HitFrontDoor"}, "HttpApi"]}
    http = {logical: spec for logical, spec in resources.items() if spec["Type"].startswith("AWS::ApiGatewayV2::")
            and not logical.startswith("TrackingDomain")}
    assert all(spec["Condition"] == "HitsOnHttpApi" for spec in http.values())
    [api] = resources_of_type(template, "AWS::ApiGatewayV2::Api").values()
    assert api["Properties"]["ProtocolType"] == "HTTP"
    [integration] = resources_of_type(template, "AWS::ApiGatewayV2::Integration").values()
    assert integration["Properties"]["IntegrationType"] == "AWS_PROXY"
    assert integration["Properties"]["PayloadFormatVersion"] == "1.0"  # the REST proxy event: Chalice's handlers
    assert integration["Properties"]["IntegrationUri"] == {"Fn::GetAtt": ["APIHandler", "Arn"]}
    routes = resources_of_type(template, "AWS::ApiGatewayV2::Route")
    assert sorted(spec["Properties"]["RouteKey"] for spec in routes.values()) == sorted(
        f"ANY {path}" for path in ROUTE_METHODS)  # every public route, every method (the app answers 405s)
    assert not any(path.startswith(("/api", "/dashboard", "/docs")) for path in ROUTE_METHODS)
    [stage] = resources_of_type(template, "AWS::ApiGatewayV2::Stage").values()
    assert stage["Properties"]["StageName"] == "$default" and stage["Properties"]["AutoDeploy"] is True
    assert sorted(stage["DependsOn"]) == sorted(routes)  # route settings name routes that must exist
    hit_limits = {"ThrottlingRateLimit": {"Ref": "HitRateLimit"}, "ThrottlingBurstLimit": {"Ref": "HitBurstLimit"}}
    assert stage["Properties"]["RouteSettings"] == {f"ANY {path}": hit_limits for path in ROUTE_METHODS
                                                    if "{token}" in path}
    assert stage["Properties"]["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ApiRateLimit"}, "ThrottlingBurstLimit": {"Ref": "ApiBurstLimit"}}
    [permission] = [spec for spec in resources_of_type(template, "AWS::Lambda::Permission").values()
                    if spec.get("Condition") == "HitsOnHttpApi"]
    assert permission["Properties"]["FunctionName"] == {"Ref": "APIHandler"}
    assert "${HitsHttpApi}/*" in permission["Properties"]["SourceArn"]["Fn::Sub"]
    # the custom domain maps to whichever front door serves the hits
    mapping = resources["TrackingDomainMapping"]
    assert mapping["Condition"] == resources["TrackingDomain"]["Condition"] == "HasTrackingDomain"
    assert mapping["Properties"]["ApiId"] == {"Fn::If": ["HitsOnHttpApi", {"Ref": "HitsHttpApi"}, {"Ref": "RestAPI"}]}
    assert template["Outputs"]["HitsUrl"]["Value"]["Fn::If"][0] == "HitsOnHttpApi"
