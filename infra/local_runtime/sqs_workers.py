"""The app's `@app.on_sqs_message` functions, fed from their queues as Lambda's event source mappings would.

Chalice makes each queue-driven function name a queue in app.py, but the
queue it really reads is the one its event is given in infra/template.yaml
(Resources.<Function>.Properties.Events.<Function>SqsEventSource.Properties.Queue,
with its BatchSize): that override is the single source of the queue, for
the deployment and here. Every such function gets an SqsTrigger
(triggers.py) on that queue, with the function's timeout from
.chalice/config.json, run by the local stack every POLL_INTERVAL_SECONDS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from infra.local_runtime.triggers import SqsTrigger

if TYPE_CHECKING:
    from infra.local_runtime.stack import LocalStack, Worker

POLL_INTERVAL_SECONDS = 0.2
CHALICE_CONFIG = Path(__file__).resolve().parents[2] / ".chalice" / "config.json"


def event_source_names(function_name: str) -> tuple[str, str]:
    """The logical ids `chalice package` gives a queue-driven function and its SQS event."""
    from chalice.utils import to_cfn_resource_name

    return to_cfn_resource_name(function_name), to_cfn_resource_name(f"{function_name}-sqs-event-source")


def _timeout(function_name: str) -> int:
    config = json.loads(CHALICE_CONFIG.read_text())
    return int(config.get("lambda_functions", {}).get(function_name, {}).get("lambda_timeout",
                                                                             config.get("lambda_timeout", 60)))


def triggers_for(resources: Any) -> list[SqsTrigger]:
    """One SqsTrigger per on_sqs_message function, on the queue the template gives its event."""
    from chalice.app import SQSEventConfig

    import app as app_module

    resolver = resources.resolver()
    sqs = boto3.client("sqs")
    triggers = []
    for source in app_module.app.event_sources:
        if not isinstance(source, SQSEventConfig):
            continue
        function, event = event_source_names(source.name)
        properties = (resources.template["Resources"].get(function, {}).get("Properties", {})
                      .get("Events", {}).get(event, {}).get("Properties", {}))
        if "Queue" not in properties:
            raise LookupError(f"infra/template.yaml must give {function}.Properties.Events.{event}.Properties.Queue "
                              f"(the queue {source.name} reads)")
        queue_arn = resolver.resolve(properties["Queue"])
        queue_url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[1])["QueueUrl"]
        triggers.append(SqsTrigger(source.name, queue_url, getattr(app_module, source.name),
                                   batch_size=int(properties.get("BatchSize", source.batch_size)),
                                   timeout_seconds=_timeout(source.name)))
    return triggers


def workers(stack: "LocalStack") -> "list[Worker]":
    from infra.local_runtime.stack import Worker

    return [Worker(f"sqs:{trigger.name}", trigger.drain, POLL_INTERVAL_SECONDS)
            for trigger in triggers_for(stack.resources)]
