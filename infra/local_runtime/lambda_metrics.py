"""AWS/Lambda's own metrics, emulated: Invocations, Errors, Throttles and Duration of what runs locally.

Lambda publishes, per function (dimension FunctionName): Invocations,
Errors (an invocation that raised, timed out or ran out of memory: the app
counts none of these itself), Throttles (an invocation refused because the
function's reserved concurrency was in use) and Duration. moto publishes
none of them. The local runtime invokes its functions through `invoke`
(the schedule and SQS triggers, and the API Gateway emulation), which:

- applies the reserved concurrency .chalice/config.json gives a function
  (the tracking workflow's 1): an invocation over it is not run, it is
  throttled (`Throttled`, Lambda's TooManyRequestsException), as in AWS;
- records each invocation's data points, which LambdaMetrics.publish puts
  into moto's CloudWatch under the function's deployed name (its
  FunctionName in infra/template.yaml), where the local alarm evaluation
  (infra/local_runtime/alarms.py) reads them like the app's own metrics.

Nothing is recorded or limited until a LambdaMetrics is installed (the
local stack's alarm worker installs one; tests install their own).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import boto3

from chalicelib import metrics

if TYPE_CHECKING:
    from infra.local_runtime.provision import ProvisionedStack

NAMESPACE = "AWS/Lambda"
MAX_DATUMS_PER_CALL = 1000
T = TypeVar("T")


class Throttled(RuntimeError):
    """The function's reserved concurrency is in use: Lambda refused the invocation (TooManyRequestsException)."""


def function_logical_id(function: str) -> str:
    """The logical id `chalice package` gives an app function (the REST API's is APIHandler)."""
    from chalice.utils import to_cfn_resource_name

    return "APIHandler" if function == "api_handler" else to_cfn_resource_name(function)


@dataclass
class LambdaMetrics:
    """Invocations counted per function, and reserved concurrency applied, while installed."""

    names: dict[str, str]  # app function -> deployed FunctionName
    reserved: dict[str, int]  # app function -> reserved concurrency
    clock: Callable[[], float] = field(default=lambda: metrics.clock())
    _pending: list[tuple[str, str, float, float]] = field(default_factory=list)  # function, metric, value, at
    _running: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def for_stack(cls, resources: "ProvisionedStack", **kwargs: Any) -> "LambdaMetrics":
        """The functions of the template (names and reserved concurrency, resolved for the stage)."""
        from infra.local_runtime.sqs_workers import CHALICE_CONFIG

        import app as app_module

        resolver = resources.resolver()
        configured = json.loads(CHALICE_CONFIG.read_text()).get("lambda_functions", {})
        functions = ["api_handler", *(source.name for source in app_module.app.event_sources),
                     *(authorizer.name for authorizer in app_module.app.builtin_auth_handlers)]
        names, reserved = {}, {}
        for function in functions:
            override = resources.template["Resources"].get(function_logical_id(function), {}).get("Properties", {})
            if "FunctionName" in override:
                names[function] = str(resolver.resolve(override["FunctionName"]))
            limit = configured.get(function, {}).get("reserved_concurrency")
            if limit is not None:
                reserved[function] = int(limit)
        return cls(names, reserved, **kwargs)

    def install(self) -> "LambdaMetrics":
        global _active
        _active = self
        return self

    def uninstall(self) -> None:
        global _active
        if _active is self:
            _active = None

    def _record(self, function: str, **values: float) -> None:
        at = self.clock()
        with self._lock:
            self._pending.extend((function, metric, value, at) for metric, value in values.items())

    def enter(self, function: str) -> None:
        """One invocation starts, or is throttled when the function's reserved concurrency is in use."""
        limit = self.reserved.get(function)
        with self._lock:
            if limit is not None and self._running[function] >= limit:
                throttled = True
            else:
                throttled = False
                self._running[function] += 1
        if throttled:
            self._record(function, Throttles=1)
            raise Throttled(f"{function}: rate exceeded (reserved concurrency {limit} in use)")

    def leave(self, function: str, failed: bool, duration_ms: float) -> None:
        with self._lock:
            self._running[function] -= 1
        self._record(function, Invocations=1, Errors=1 if failed else 0, Duration=duration_ms)

    def publish(self) -> int:
        """put_metric_data for everything recorded so far (AWS/Lambda, FunctionName); how many were put."""
        with self._lock:
            pending, self._pending = self._pending, []
        units = {"Duration": "Milliseconds"}
        data = [{"MetricName": metric, "Value": float(value), "Unit": units.get(metric, "Count"),
                 "Timestamp": datetime.fromtimestamp(at, tz=timezone.utc),
                 "Dimensions": [{"Name": "FunctionName", "Value": self.names.get(function, function)}]}
                for function, metric, value, at in pending]
        cloudwatch = boto3.client("cloudwatch")
        for start in range(0, len(data), MAX_DATUMS_PER_CALL):
            cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[start:start + MAX_DATUMS_PER_CALL])
        return len(data)


_active: LambdaMetrics | None = None


def invoke(function: str, handler: Callable[..., T], *args: Any) -> T:
    """Run an app function's handler as Lambda does: within its reserved concurrency, counted (if installed)."""
    recorder = _active
    if recorder is None:
        return handler(*args)
    recorder.enter(function)
    started = time.perf_counter()
    failed = True
    try:
        result = handler(*args)
        failed = False
        return result
    finally:
        recorder.leave(function, failed, (time.perf_counter() - started) * 1000)
