"""Which emulations the local stack runs, and how often.

Each entry builds background workers for the running stack from its
provisioned resources (names, environment). Add one line here per emulation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from infra.local_runtime import alarms, firehose_pump, schedules, ses_events, sqs_workers

if TYPE_CHECKING:
    from infra.local_runtime.stack import LocalStack, Worker

EmulationFactory = Callable[["LocalStack"], "list[Worker]"]


# Filled by the modules that emulate a trigger or a service link moto lacks.
EMULATIONS: list[EmulationFactory] = [
    firehose_pump.workers,  # Kinesis -> Firehose (moto's Firehose never reads its Kinesis source)
    schedules.workers,  # @app.schedule functions (the tracking workflow), EventBridge's part
    # The MTA: SES's event publishing (moto publishes none), and Lambda's SQS event source mappings
    # for the @app.on_sqs_message functions (the send worker, the SES events consumer).
    ses_events.workers,
    sqs_workers.workers,
    alarms.workers,  # EMF into CloudWatch metrics, alarm evaluation and SNS alerts (moto stores, never evaluates)
]


def workers_for(stack: "LocalStack") -> "list[Worker]":
    workers = []
    for factory in EMULATIONS:
        workers.extend(factory(stack))
    return workers
