"""The redirection-log pipeline as declared in the template matches what the code expects."""

from __future__ import annotations

import json
from pathlib import Path

from chalicelib.data.redirection_logs import LOG_PREFIX, QUARANTINE_PREFIX, RUN_RECORD_PREFIX
from chalicelib.data.tracking import BY_RECIPIENT_INDEX
from chalicelib.settings import Settings
from infra.local_runtime.provision import firehose_local_prefix
from infra.template import IntrinsicResolver, evaluate_conditions, load_template, parameter_values

ROOT = Path(__file__).resolve().parents[2]


def _resources() -> dict:
    return load_template()["Resources"]


def test_firehose_writes_gzip_hour_partitions_under_the_prefix_the_workflow_lists() -> None:
    stream = _resources()["RedirectionLogDeliveryStream"]["Properties"]
    destination = stream["ExtendedS3DestinationConfiguration"]
    assert stream["DeliveryStreamType"] == "KinesisStreamAsSource"
    assert stream["KinesisStreamSourceConfiguration"]["KinesisStreamARN"] == {"Fn::GetAtt": ["HitStream", "Arn"]}
    assert destination["Prefix"] == LOG_PREFIX + "!{timestamp:yyyy/MM/dd/HH}/"
    assert destination["ErrorOutputPrefix"].startswith("redirection-errors/")
    assert destination["CompressionFormat"] == "GZIP"
    defaults = IntrinsicResolver(parameter_values(load_template(), {"Stage": "prod"}))
    assert int(defaults.resolve(destination["BufferingHints"]["IntervalInSeconds"])) <= 60
    assert firehose_local_prefix(destination["Prefix"]) == LOG_PREFIX  # moto appends YYYY/MM/DD/HH/ itself


def test_the_log_bucket_is_private_encrypted_distinctly_named_and_expires_what_it_keeps() -> None:
    bucket = _resources()["RedirectionLogBucket"]["Properties"]
    name = IntrinsicResolver(parameter_values(load_template(), {"Stage": "prod"})).resolve(bucket["BucketName"])
    assert name == "sendtrail-prod-redirection-logs-123456789012"
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    expiring = {rule["Prefix"]: rule["ExpirationInDays"] for rule in bucket["LifecycleConfiguration"]["Rules"]
                if "Prefix" in rule}
    for prefix in (LOG_PREFIX, QUARANTINE_PREFIX, "redirection-errors/"):
        assert expiring[prefix] == {"Ref": "TrackingRetentionDays"}
    assert RUN_RECORD_PREFIX.startswith(next(prefix for prefix in expiring if prefix.startswith("tracking-workflow")))
    assert load_template()["Parameters"]["TrackingRetentionDays"]["Default"] == 365


def _tracking_indexes(parameters: dict[str, str]) -> dict[str, dict]:
    template = load_template()
    values = parameter_values(template, {"Stage": "prod", **parameters})
    resolver = IntrinsicResolver(values, conditions=evaluate_conditions(template, values))
    table = resolver.resolve(_resources()["TrackingTable"]["Properties"])
    return {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}


def test_the_recipient_index_the_api_queries_is_declared_keys_only_on_the_first_hit() -> None:
    """Keys only, sorted by what a rewrite keeps (items.encode_recipient: the first stored hit stays first): a
    run that adds hits to a recipient writes the table, not the index."""
    indexes = _tracking_indexes({})
    assert list(indexes) == [BY_RECIPIENT_INDEX]
    assert indexes[BY_RECIPIENT_INDEX]["KeySchema"] == [{"AttributeName": "recipient_id", "KeyType": "HASH"},
                                                        {"AttributeName": "first_hit_at", "KeyType": "RANGE"}]
    assert indexes[BY_RECIPIENT_INDEX]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    # Upgrading a stack made with the old index: one index added per update, the old one removed the next.
    assert list(_tracking_indexes({"KeepRecipientIndexV1": "true"})) == [BY_RECIPIENT_INDEX, "by-recipient"]


def test_the_workflow_lease_outlives_the_workflow_lambda() -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    function = config["lambda_functions"]["tracking_workflow"]
    assert Settings.model_fields["workflow_lease_seconds"].default > function["lambda_timeout"]
    assert function["reserved_concurrency"] == 1
    assert Settings.model_fields["workflow_max_seconds"].default < function["lambda_timeout"]
    assert Settings.model_fields["workflow_api_max_seconds"].default < 29  # API Gateway's integration timeout
