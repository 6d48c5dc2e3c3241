"""sendtrail's CloudWatch metrics: one namespace, one list of names, one way to emit.

Every metric sendtrail publishes is named here, so the code that emits it,
the alarms and dashboard in infra/template.yaml and the tests agree on one
spelling. Metrics are CloudWatch embedded metric format (EMF) lines printed
to the function's log; CloudWatch turns them into metrics without an API
call on the request path.

`emit` is the one call domain code makes: it only adds the value to this
invocation's buffer (a list append: the hit path calls it on every hit).
`flush`, called once at the end of every invocation by the Chalice
middleware in chalicelib/observability.py, prints one EMF document per set
of dimensions, written here as CloudWatch's EMF specification documents it
(`_serialized`): the standard library only, so the hit path imports this
module and flushes its metrics for free. (Powertools' public Metrics API was
measured against it and costs more: README, "Benchmarks".)

Dimensions are exactly what alarms must name, so they are fixed here rather
than left to a library's defaults: every data point carries `stage` (dev and
prod stacks in one account never mix), and no `service` dimension is added
(Powertools' Metrics adds one whenever POWERTOOLS_SERVICE_NAME is set, which
the template sets for the logger). A metric emitted with dimensions is published
twice, as CloudWatch does for EMF dimension sets: per stage alone (the total
an alarm watches) and per stage and those dimensions (the breakdown a
dashboard shows), e.g. HitsRejected{stage} and HitsRejected{stage, reason}.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from functools import lru_cache
from typing import Callable

NAMESPACE = "sendtrail"
STAGE_DIMENSION = "stage"
STAGE_VARIABLE = "SENDTRAIL_STAGE"
DEFAULT_STAGE = "local"

COUNT = "Count"
SECONDS = "Seconds"
MILLISECONDS = "Milliseconds"

# The hit path.
HITS_REJECTED = "HitsRejected"  # dimension reason: a link that does not verify, or names nothing
HIT_STREAM_PUT_FAILURES = "HitStreamPutFailures"  # a Kinesis put that failed (the hit went to the fallback)
FALLBACK_STREAM_WRITES = "FallbackStreamWrites"  # a hit put into the fallback delivery stream (Firehose batches it)
FALLBACK_STREAM_PUT_FAILURES = "FallbackStreamPutFailures"  # that put failed too (the hit became its own object)
FALLBACK_WRITES = "FallbackWrites"  # a hit written as its own redirection-log object instead
HITS_UNRECORDED = "HitsUnrecorded"  # dimension kind: a valid hit answered but recorded nowhere (both writes failed)
HTTP_SERVER_ERRORS = "HttpServerErrors"  # any route answering 5xx, e.g. a hit met by "try again" (observability.py)

# The tracking workflow.
WORKFLOW_RUNS = "WorkflowRuns"  # every invocation, busy or not
WORKFLOW_SUCCESSES = "WorkflowSuccesses"  # a run that completed (or found nothing to do)
WORKFLOW_LAG = "WorkflowLagSeconds"  # age of the oldest unprocessed redirection-log object, 0 when none
WORKFLOW_BACKLOG = "WorkflowBacklogObjects"  # redirection-log objects a run saw and left waiting
LINES_PROCESSED = "LinesProcessed"
HITS_TRACKED = "HitsTracked"  # a run's new hits in the tracking tables (duplicates and rejected lines not counted)
MALFORMED_LINES = "MalformedLines"  # dimension reason
NATIVE_FALLBACK = "NativeFallback"  # dimension mode
# User-agent families a family shard at DynamoDB's item size limit could not take: counted under their
# dimension's "Other" (data/counters.py `overflow`); hostile or absurdly varied user agents on a delivery.
FAMILIES_OVERFLOWED = "FamiliesOverflowed"

# Sending (the MTA).
DELIVERY_START_PENDING = "DeliveryStartPendingSeconds"  # time a delivery spent in start_pending
OLDEST_START_PENDING = "OldestStartPendingSeconds"  # the longest-waiting delivery still in start_pending
DELIVERIES_SENDING = "DeliveriesSending"  # deliveries in start_pending or in_progress (the delivery monitor)
DELIVERIES_STALLED = "DeliveriesStalled"  # of those, the ones without progress for send_stall_seconds
MESSAGES_SENT = "MessagesSent"
SEND_THROTTLES = "SendThrottles"
BOUNCES = "Bounces"  # dimension type: hard, soft
COMPLAINTS = "Complaints"

# EMF allows 100 values per metric and 100 metrics per document: a buffer of
# 100 data points is flushed at once, so neither is ever reached.
MAX_VALUES = 100

logger = logging.getLogger("sendtrail.metrics")

_Dimensions = tuple[tuple[str, str], ...]
_Point = tuple[_Dimensions, str, str, float]  # dimensions, name, unit, value
_pending: list[_Point] = []  # this invocation's data points, in the order emitted
_lock = threading.Lock()


def _print_line(line: str) -> None:
    sys.stdout.write(line + "\n")  # the function's log, where CloudWatch reads EMF (sys.stdout at call time)


_output: Callable[[str], None] = _print_line
clock: Callable[[], float] = time.time  # the EMF timestamp's source (the local runtime's tests travel in time)


def emit(name: str, value: float = 1, unit: str = COUNT, **dimensions: str) -> None:
    """Add one data point of `name` (with its dimensions) to this invocation's metrics; never raises.

    A metric that cannot be recorded is logged and dropped: measuring must
    never fail the work being measured.
    """
    try:
        value = float(value)
        if len(dimensions) == 1:  # the hit path's case (kind or reason): no sorting
            [(dimension, label)] = dimensions.items()
            key: _Dimensions = ((dimension, label if type(label) is str else str(label)),)
        else:
            key = tuple(sorted((dimension, str(label)) for dimension, label in dimensions.items()))
        with _lock:
            _pending.append((key, name, unit, value))
            full = len(_pending) >= MAX_VALUES
        if full:
            flush()
    except Exception:  # noqa: BLE001
        logger.exception("could not emit metric %s", name)


def flush() -> int:
    """Print the buffered metrics as EMF documents (one per dimension set); how many were printed.

    Never raises: metrics that cannot be serialized or printed are logged and dropped.
    """
    global _pending
    with _lock:
        points, _pending = _pending, []
    if not points:
        return 0
    try:
        documents = _documents(stage(), tuple(points))
        timestamp = int(clock() * 1000)
        for head, tail in documents:
            _output(f"{head}{timestamp}{tail}")
    except Exception:  # noqa: BLE001
        logger.exception("could not write the metric documents of %d data points", len(points))
        return 0
    return len(documents)


@lru_cache(maxsize=1)
def stage() -> str:
    """The stage every data point names, read once per container (the function's environment is fixed)."""
    return os.environ.get(STAGE_VARIABLE) or DEFAULT_STAGE


def discard() -> None:
    """Forget buffered metrics without printing them, and the stage read from the environment (between tests)."""
    with _lock:
        _pending.clear()
    stage.cache_clear()


def set_output(writer: Callable[[str], None] | None) -> Callable[[str], None]:
    """Send each EMF line to `writer` instead of stdout (None: stdout again); returns the previous writer.

    The local runtime uses this to capture what the handlers print
    (infra/local_runtime/alarms.py), as CloudWatch Logs reads it in AWS.
    """
    global _output
    previous = _output
    _output = writer or _print_line
    return previous


_TIMESTAMP_MARK = 918273645546372  # a placeholder the serialized document is split at
_encoder = json.JSONEncoder(separators=(",", ":"), check_circular=False)


@lru_cache(maxsize=256)
def _documents(stage: str, points: tuple[_Point, ...]) -> tuple[tuple[str, str], ...]:
    """The EMF documents of an invocation's data points, each in the two halves around its timestamp.

    One document per set of dimensions, in the order first emitted, each
    metric with its values in the order emitted. A hit's data points are the
    same from one request to the next, so their documents' text is kept and
    only the timestamp is put in (JSON encoding is most of a flush's cost).
    """
    grouped: dict[_Dimensions, dict[str, tuple[str, list[float]]]] = {}
    for dimensions, name, unit, value in points:
        grouped.setdefault(dimensions, {}).setdefault(name, (unit, []))[1].append(value)
    return tuple(_serialized(stage, dimensions, metrics) for dimensions, metrics in grouped.items())


def _serialized(stage: str, dimensions: _Dimensions, metrics: dict[str, tuple[str, list[float]]]) -> tuple[str, str]:
    """One EMF document: these metrics, per stage, and per stage and `dimensions` if any.

    The document is CloudWatch's embedded metric format as specified
    (docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html):
    an `_aws` member with the timestamp and one metric directive (namespace,
    dimension sets, each metric's name and unit; standard resolution, the
    default, is left out), then each dimension's value and each metric's
    values at the top level.
    """
    dimension_values = {STAGE_DIMENSION: stage, **dict(dimensions)}
    dimension_sets = [[STAGE_DIMENSION]]
    if dimensions:
        dimension_sets.append(list(dimension_values))
    document = {
        "_aws": {"Timestamp": _TIMESTAMP_MARK, "CloudWatchMetrics": [{
            "Namespace": NAMESPACE, "Dimensions": dimension_sets,
            "Metrics": [{"Name": name, "Unit": unit} for name, (unit, _) in metrics.items()]}]},
        **dimension_values,
        **{name: values for name, (_, values) in metrics.items()},
    }
    head, tail = _encoder.encode(document).split(str(_TIMESTAMP_MARK), 1)
    return head, tail
