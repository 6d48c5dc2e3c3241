"""sendtrail's CloudWatch metrics: one namespace, one list of names, one way to emit.

Every metric sendtrail publishes is named here, so the code that emits it,
the alarms and dashboard in infra/template.yaml and the tests agree on one
spelling. Metrics are CloudWatch embedded metric format (EMF) lines printed
to the function's log, through Powertools; CloudWatch turns them into
metrics without an API call on the request path.

`emit` is the one call domain code makes. Powertools is imported on the
first emission, not when this module is imported, so modules on the hit path
can import it without paying for Powertools at cold start.
"""

from __future__ import annotations

import logging
from typing import Any

NAMESPACE = "sendtrail"

COUNT = "Count"
SECONDS = "Seconds"
MILLISECONDS = "Milliseconds"

# The hit path.
HITS_ACCEPTED = "HitsAccepted"  # dimension kind
HITS_REJECTED = "HitsRejected"  # dimension reason
HIT_STREAM_PUT_FAILURES = "HitStreamPutFailures"
FALLBACK_WRITES = "FallbackWrites"

# The tracking workflow.
WORKFLOW_RUNS = "WorkflowRuns"
WORKFLOW_SUCCESSES = "WorkflowSuccesses"
WORKFLOW_LAG = "WorkflowLagSeconds"  # age of the oldest unprocessed redirection-log object
LINES_PROCESSED = "LinesProcessed"
MALFORMED_LINES = "MalformedLines"  # dimension reason
NATIVE_FALLBACK = "NativeFallback"  # dimension mode

# Sending (the MTA).
DELIVERY_START_PENDING = "DeliveryStartPendingSeconds"  # time a delivery spent in start_pending
OLDEST_START_PENDING = "OldestStartPendingSeconds"  # the longest-waiting delivery still in start_pending
MESSAGES_SENT = "MessagesSent"
SEND_THROTTLES = "SendThrottles"
BOUNCES = "Bounces"  # dimension type: hard, soft
COMPLAINTS = "Complaints"

logger = logging.getLogger("sendtrail.metrics")


def emit(name: str, value: float = 1, unit: str = COUNT, **dimensions: str) -> None:
    """Publish one data point of `name` (with its dimensions); never raises.

    A metric that cannot be written is logged and dropped: measuring must
    never fail the work being measured.
    """
    try:
        from aws_lambda_powertools.metrics import single_metric

        metric: Any
        with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
            for dimension, dimension_value in dimensions.items():
                metric.add_dimension(name=dimension, value=str(dimension_value))
    except Exception:  # noqa: BLE001
        logger.exception("could not emit metric %s", name)
