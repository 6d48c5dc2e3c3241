"""What the status check asks AWS about each component, with short timeouts (aws.PROBE).

Each function answers the service's own description as a plain dict; the
status check (chalicelib/status.py) judges it. Errors are left to raise: the
check turns them into the component's reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from chalicelib.data import aws, mailer

QUEUE_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed"]


def stream_summary(stream_name: str) -> dict[str, Any]:
    """The Kinesis stream's status, shards, retention and encryption."""
    response = aws.client("kinesis", aws.PROBE).describe_stream_summary(StreamName=stream_name)
    return response["StreamDescriptionSummary"]


def delivery_stream(delivery_stream_name: str) -> dict[str, Any]:
    """The Firehose delivery stream's status, source and destination."""
    response = aws.client("firehose", aws.PROBE).describe_delivery_stream(DeliveryStreamName=delivery_stream_name)
    return response["DeliveryStreamDescription"]


def metric_sums(namespace: str, names: list[str], dimensions: dict[str, str], minutes: int) -> dict[str, int]:
    """Each metric's Sum over the last `minutes` (0 when it has no data point): one GetMetricData call."""
    end = datetime.now(timezone.utc) + timedelta(minutes=1)  # a point put this second is inside (CloudWatch allows)
    queries = [{"Id": f"m{index}", "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": namespace, "MetricName": name,
                   "Dimensions": [{"Name": key, "Value": value} for key, value in dimensions.items()]},
        "Period": (minutes + 1) * 60, "Stat": "Sum"}} for index, name in enumerate(names)]
    response = aws.client("cloudwatch", aws.PROBE).get_metric_data(
        MetricDataQueries=queries, StartTime=end - timedelta(minutes=minutes + 1), EndTime=end)
    found = {result["Id"]: sum(result.get("Values") or [0]) for result in response.get("MetricDataResults", [])}
    return {name: int(found.get(f"m{index}", 0)) for index, name in enumerate(names)}


def ses_account() -> dict[str, Any]:
    """SES's account: sending enabled, production access, enforcement status, send quota."""
    return mailer.get_account(aws.PROBE)


def queue_depth(queue_url: str) -> dict[str, int]:
    """An SQS queue's approximate message counts: visible, in flight, delayed."""
    response = aws.client("sqs", aws.PROBE).get_queue_attributes(QueueUrl=queue_url, AttributeNames=QUEUE_ATTRIBUTES)
    attributes = response.get("Attributes", {})
    return {name: int(attributes.get(name, 0)) for name in QUEUE_ATTRIBUTES}
