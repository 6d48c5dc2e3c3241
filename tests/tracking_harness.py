"""Driving the tracking workflow in tests: log objects, a fake clock, crashes, write counting, snapshots.

Crashes and write counts are observed at the botocore level (hooks added to
every client created afterwards, the way infra/local_runtime/ses_outbox.py
taps SES), so the code under test runs unchanged against moto.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import boto3
import pytest
from botocore import handlers as botocore_handlers

from chalicelib.data import aws
from chalicelib.data.domain_stats import DOMAIN_PREFIX, TRACKED
from chalicelib.data.dynamo import to_value
from chalicelib.data.redirection_logs import LOG_PREFIX, hour_partition
from chalicelib.data.throughput import PARTITION_PREFIX
from chalicelib.settings import get_settings
from chalicelib.tracking.workflow import Limits, TrackingWorkflow
from tests.tracking_logs import log_bytes

WRITE_OPERATIONS = {
    "dynamodb": {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"},
    "s3": {"PutObject", "CopyObject", "DeleteObject", "DeleteObjects"},
}
VOLATILE = {"updated_at", "last_updated", "expires_at_epoch", "created_at"}  # created_at: a run item's run time
WORKFLOW_PART = (*TRACKED, "last_run", "last_updated")  # of a domain#<domain> stats item


class SimulatedCrash(BaseException):
    """The process died (BaseException: no `except Exception` in the code under test catches it)."""


@dataclass
class FakeClock:
    now: float = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def put_log(name: str, records: list[Any], at_ms: int, compress: bool = False) -> str:
    """A log object under the hour partition of `at_ms`."""
    key = f"{LOG_PREFIX}{hour_partition(at_ms)}/{name}"
    boto3.client("s3").put_object(Bucket=get_settings().redirection_log_bucket, Key=key,
                                  Body=log_bytes(records, compress=compress))
    return key


def use_layout(layout: str) -> None:
    """Run the workflow in `layout` (items or append) from now on; the `resources` fixture puts the
    environment back after the test."""
    import os

    from infra.local_runtime import environment

    os.environ["SENDTRAIL_TRACKING_LAYOUT"] = layout
    environment.forget_cached_configuration()


def pin_layout(request: pytest.FixtureRequest, layout: str) -> None:
    """For an autouse fixture: the test's workflow writes `layout`, after the `resources` fixture (whose
    environment names the template's default) when the test uses it."""
    if "resources" in request.fixturenames:
        request.getfixturevalue("resources")
    use_layout(layout)


def workflow(clock: FakeClock | None = None, **limits: Any) -> TrackingWorkflow:
    settings = get_settings()
    base = Limits.from_settings(settings)
    return TrackingWorkflow(settings, Limits(**{**base.__dict__, **limits}), clock=clock or time.time)


@dataclass
class AwsTap:
    """Counts (service, operation) calls; optionally crashes after the n-th write."""

    crash_after_writes: int | None = None
    calls: Counter = field(default_factory=Counter)
    writes: int = 0
    crashed: bool = False

    def _before(self, model: Any, **kwargs: Any) -> None:
        if self.crashed:
            raise SimulatedCrash("the process is gone")

    def _after(self, model: Any, event_name: str, **kwargs: Any) -> None:
        service = event_name.split(".")[1]
        self.calls[(service, model.name)] += 1
        if model.name in WRITE_OPERATIONS.get(service, ()):
            self.writes += 1
            if self.crash_after_writes is not None and self.writes >= self.crash_after_writes:
                self.crashed = True
                raise SimulatedCrash(f"crash after write {self.writes} ({service} {model.name})")

    def arm(self, crash_after_writes: int | None) -> None:
        """Count writes from zero again; crash after the n-th (None: never)."""
        self.crash_after_writes = crash_after_writes
        self.calls.clear()
        self.writes = 0
        self.crashed = False

    def dynamodb_writes(self) -> int:
        return sum(count for (service, operation), count in self.calls.items()
                   if service == "dynamodb" and operation in WRITE_OPERATIONS["dynamodb"])

    def operations(self, service: str) -> set[str]:
        return {operation for (name, operation) in self.calls if name == service}


@contextmanager
def tap(crash_after_writes: int | None = None) -> Iterator[AwsTap]:
    """Watch every AWS call made by sendtrail's clients (chalicelib.data.aws) inside the block.

    Creating clients is slow (each new session loads the service models), so
    a test that crashes many runs keeps one tap and `arm`s it again.
    """
    observer = AwsTap(crash_after_writes)
    with hooked([("before-call", observer._before), ("after-call", observer._after)]):
        yield observer


def replay_after_each_crash(observer: AwsTap, clean: dict[str, Any], total: int,
                            prepare: Callable[[], FakeClock], **limits: Any) -> None:
    """For each of a run's `total` writes: reset the workflow tables, `prepare` what is there before the run
    (it gives the run's clock), crash the run after that write, let its lease expire, run again, and check
    the tables equal the clean run's (`clean`, a snapshot)."""
    for crash_after in range(1, total + 1):
        reset_workflow_tables()
        clock = prepare()
        observer.arm(crash_after)
        with pytest.raises(SimulatedCrash):
            workflow(clock, **limits).run()
        assert observer.crashed
        observer.arm(None)
        clock.advance(get_settings().workflow_lease_seconds + 1)  # the crashed run's lease expires
        result = workflow(clock, **limits).run()
        assert result["status"] in ("completed", "idle"), (crash_after, result)
        assert snapshot() == clean, f"crash after write {crash_after} of {total}"


@contextmanager
def hooked(hooks: list[tuple[str, Any]]) -> Iterator[None]:
    """botocore event handlers on every client created inside the block (sendtrail's shared ones are reset)."""
    botocore_handlers.BUILTIN_HANDLERS.extend(hooks)
    aws.reset_clients()
    try:
        yield
    finally:
        for hook in hooks:
            botocore_handlers.BUILTIN_HANDLERS.remove(hook)
        aws.reset_clients()


def scan_all(table: str) -> list[dict[str, Any]]:
    """Test-only: every item of a table (the code under test never scans)."""
    from chalicelib.data.dynamo import from_item

    items, request = [], {"TableName": table}
    dynamodb = boto3.client("dynamodb")
    while True:
        page = dynamodb.scan(**request)
        items += [from_item(item) for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def snapshot() -> dict[str, Any]:
    """The tracking tables, processed markers and quarantine, without timestamps."""
    settings = get_settings()

    def clean(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(({key: value for key, value in item.items() if key not in VOLATILE} for item in items),
                      key=repr)

    workflow_items = scan_all(settings.workflow_table)
    state = [item for item in workflow_items if item["pk"] == "state"]
    s3 = boto3.client("s3")
    quarantine = {}
    for entry in s3.list_objects_v2(Bucket=settings.redirection_log_bucket,
                                    Prefix="redirection-quarantine/").get("Contents", []):
        quarantine[entry["Key"]] = s3.get_object(Bucket=settings.redirection_log_bucket,
                                                 Key=entry["Key"])["Body"].read()
    return {
        "tracking": clean(scan_all(settings.tracking_table)),
        "stats": clean(scan_all(settings.tracking_stats_table)),
        "runs": clean(scan_all(settings.tracking_runs_table)),
        "markers": clean([item for item in workflow_items if item["pk"] != "state"]),
        "state": {"run_seq": state[0].get("run_seq") if state else None,
                  "pending_run": state[0].get("pending_run") if state else None},
        "quarantine": quarantine,
    }


def reset_workflow_tables() -> None:
    """Test-only: empty the tracking tables and everything the workflow wrote to S3 (logs stay)."""
    settings = get_settings()
    dynamodb = boto3.client("dynamodb")
    for table, keys in ((settings.tracking_table, ("delivery_id", "log_id")),
                        (settings.tracking_stats_table, ("delivery_id", "stat")),
                        (settings.tracking_runs_table, ("shard", "seq")),
                        (settings.workflow_table, ("pk", "sk"))):
        for item in scan_all(table):
            key = {name: to_value(item[name]) for name in keys}
            if str(item.get("delivery_id", "")).startswith(PARTITION_PREFIX):
                continue  # the send workers' hourly counters
            if str(item.get("stat", "")).startswith(DOMAIN_PREFIX):  # shared with the MTA: only the workflow's part
                dynamodb.update_item(TableName=table, Key=key, UpdateExpression=f"REMOVE {', '.join(WORKFLOW_PART)}")
                continue
            dynamodb.delete_item(TableName=table, Key=key)
    s3 = boto3.client("s3")
    for entry in s3.list_objects_v2(Bucket=settings.redirection_log_bucket).get("Contents", []):
        if not entry["Key"].startswith(LOG_PREFIX):
            s3.delete_object(Bucket=settings.redirection_log_bucket, Key=entry["Key"])


def put_processed_objects(hour: str, count: int, run: int = 1, name: str = "fallback-") -> list[str]:
    """Test setup only: `count` tiny log objects under `hour`, each with its processed marker, as a past run
    left them; written into moto's backends directly (60,000 objects in seconds, not minutes of API calls)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends
    from moto.s3.models import s3_backends

    settings = get_settings()
    s3 = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    table = dynamodb_backends[DEFAULT_ACCOUNT_ID][boto3.session.Session().region_name or "us-east-1"]
    keys = [f"{LOG_PREFIX}{hour}/{name}{index:032x}" for index in range(count)]
    for key in keys:
        s3.put_object(settings.redirection_log_bucket, key, b"", disable_notification=True)
        table.put_item(settings.workflow_table, {"pk": {"S": f"objects#{hour}"}, "sk": {"S": key},
                                                 "run": {"N": str(run)}})
    return keys
