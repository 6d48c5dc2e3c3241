"""CloudWatch alarms, emulated: metrics from the handlers' EMF, the template's alarms evaluated, SNS alerts.

moto stores metric data and alarms but never turns log lines into metrics
nor evaluates an alarm. In AWS, CloudWatch Logs reads the embedded metric
format (EMF) lines a function prints and CloudWatch evaluates every alarm
each period, setting its state and notifying its actions. Here:

- EmfCapture takes the EMF lines the handlers print (in-process: through
  chalicelib.metrics.set_output, instead of stdout) and puts them into
  moto's CloudWatch with put_metric_data, one data point per value, metric
  and dimension set, with the document's own timestamp, as CloudWatch Logs
  does;
- LambdaMetrics (infra/local_runtime/lambda_metrics.py) puts what
  AWS/Lambda publishes for the functions the local runtime invokes
  (Invocations, Errors, Throttles, Duration);
- QueueMetrics puts what AWS/SQS publishes every minute for each of the
  stack's queues (ApproximateNumberOfMessagesVisible, ...NotVisible,
  ...Delayed, dimension QueueName), read from moto's queues at the
  evaluation's clock, so the dead-letter alarms see what they would in AWS;
- LocalAlarms evaluates the template's own alarm definitions (infra/
  template.yaml, resolved for the stage: metric or metric math, statistic,
  period, evaluation periods, datapoints to alarm, threshold, comparison,
  TreatMissingData) over the last complete periods of that data in moto,
  sets each alarm's state in moto (set_alarm_state) and, on a change,
  publishes CloudWatch's notification (its JSON message and subject) to the
  alarm's actions: the alert topic.

Evaluation follows CloudWatch's rules where they are documented: the last
EvaluationPeriods whole periods are judged; a missing period is breaching,
not breaching, ignored or (the default) missing as TreatMissingData says;
ALARM when at least DatapointsToAlarm of them breach; INSUFFICIENT_DATA
when every period is missing and missing data is "missing". A new alarm
stays INSUFFICIENT_DATA until EvaluationPeriods whole periods have passed
since the emulation started (the local stack has no earlier history). The
clock is injectable, so tests travel in time instead of sleeping.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping

import boto3

from chalicelib import metrics

from infra.local_runtime.lambda_metrics import LambdaMetrics

if TYPE_CHECKING:
    from infra.local_runtime.provision import ProvisionedStack
    from infra.local_runtime.stack import LocalStack, Worker

ALARM_TYPE = "AWS::CloudWatch::Alarm"
EVALUATION_INTERVAL_SECONDS = 5.0
MAX_DATUMS_PER_CALL = 1000
REGION_NAMES = {"us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)", "us-west-2": "US West (Oregon)",
                "eu-west-1": "EU (Ireland)", "eu-central-1": "EU (Frankfurt)"}
COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
}


# --- EMF lines into moto's CloudWatch --------------------------------------------

def emf_datums(line: str) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, MetricDatum) for every value of every metric and dimension set of one EMF line.

    A line that is not an EMF document is an ordinary log line: none.
    """
    try:
        document = json.loads(line)
        directives = document["_aws"]["CloudWatchMetrics"]
        at = datetime.fromtimestamp(document["_aws"]["Timestamp"] / 1000, tz=timezone.utc)
    except (ValueError, KeyError, TypeError):
        return []
    datums = []
    for directive in directives:
        for dimension_set in directive.get("Dimensions") or [[]]:
            dimensions = [{"Name": name, "Value": str(document[name])} for name in dimension_set]
            for definition in directive["Metrics"]:
                values = document[definition["Name"]]
                for value in values if isinstance(values, list) else [values]:
                    datum = {"MetricName": definition["Name"], "Dimensions": dimensions, "Timestamp": at,
                             "Value": float(value)}
                    if definition.get("Unit"):
                        datum["Unit"] = definition["Unit"]
                    datums.append((directive["Namespace"], datum))
    return datums


@dataclass
class EmfCapture:
    """What the handlers print as EMF, on its way to moto's CloudWatch (instead of stdout)."""

    _pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _previous: Callable[[str], None] | None = None

    def install(self) -> "EmfCapture":
        self._previous = metrics.set_output(self.receive)
        return self

    def uninstall(self) -> None:
        metrics.set_output(self._previous)

    def receive(self, line: str) -> None:
        datums = emf_datums(line)
        with self._lock:
            self._pending.extend(datums)

    def publish(self) -> int:
        """put_metric_data for everything received so far; how many data points were put."""
        with self._lock:
            pending, self._pending = self._pending, []
        cloudwatch = boto3.client("cloudwatch")
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for namespace, datum in pending:
            by_namespace.setdefault(namespace, []).append(datum)
        for namespace, datums in by_namespace.items():
            for start in range(0, len(datums), MAX_DATUMS_PER_CALL):
                cloudwatch.put_metric_data(Namespace=namespace, MetricData=datums[start:start + MAX_DATUMS_PER_CALL])
        return len(pending)


# --- AWS/SQS's queue metrics ------------------------------------------------------

QUEUE_TYPE = "AWS::SQS::Queue"
# CloudWatch's SQS metric -> the queue attribute it reports.
SQS_METRICS = {"ApproximateNumberOfMessagesVisible": "ApproximateNumberOfMessages",
               "ApproximateNumberOfMessagesNotVisible": "ApproximateNumberOfMessagesNotVisible",
               "ApproximateNumberOfMessagesDelayed": "ApproximateNumberOfMessagesDelayed"}


@dataclass
class QueueMetrics:
    """The depth metrics AWS/SQS publishes for the stack's queues, sampled from moto when asked."""

    resources: "ProvisionedStack"

    def publish(self, now: float) -> int:
        """One sample of every metric of every queue the stack created, at `now`; how many were put."""
        sqs, at = boto3.client("sqs"), datetime.fromtimestamp(now, tz=timezone.utc)
        data = []
        for logical, spec in self.resources.template.get("Resources", {}).items():
            url = self.resources.refs.get(logical)
            if spec.get("Type") != QUEUE_TYPE or url is None:
                continue
            try:
                depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(SQS_METRICS.values()))
            except sqs.exceptions.QueueDoesNotExist:
                continue  # AWS publishes nothing for a deleted queue
            dimensions = [{"Name": "QueueName", "Value": url.rsplit("/", 1)[-1]}]
            data.extend({"MetricName": metric, "Dimensions": dimensions, "Timestamp": at, "Unit": "Count",
                         "Value": float(depth["Attributes"].get(attribute, 0))}
                        for metric, attribute in SQS_METRICS.items())
        if data:
            boto3.client("cloudwatch").put_metric_data(Namespace="AWS/SQS", MetricData=data)
        return len(data)


# --- the template's alarms ---------------------------------------------------------

@dataclass(frozen=True)
class AlarmDefinition:
    """One AWS::CloudWatch::Alarm of the template, its intrinsics resolved for the stage."""

    logical_id: str
    properties: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.properties["AlarmName"])

    @property
    def queries(self) -> list[dict[str, Any]]:
        """Metric math queries, or the single metric as one query with id `m`."""
        if self.properties.get("Metrics"):
            return [dict(query) for query in self.properties["Metrics"]]
        return [{"Id": "m", "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": self.properties["Namespace"], "MetricName": self.properties["MetricName"],
                       "Dimensions": list(self.properties.get("Dimensions", []))},
            "Period": int(self.properties["Period"]), "Stat": self.properties["Statistic"]}}]

    @property
    def period(self) -> int:
        if "Period" in self.properties:
            return int(self.properties["Period"])
        return max(int(query["MetricStat"]["Period"]) for query in self.queries if "MetricStat" in query)

    @property
    def evaluation_periods(self) -> int:
        return int(self.properties["EvaluationPeriods"])

    @property
    def datapoints_to_alarm(self) -> int:
        return int(self.properties.get("DatapointsToAlarm") or self.evaluation_periods)

    @property
    def threshold(self) -> float:
        return float(self.properties["Threshold"])

    @property
    def treat_missing_data(self) -> str:
        return str(self.properties.get("TreatMissingData") or "missing")

    def actions(self, state: str) -> list[str]:
        if self.properties.get("ActionsEnabled") is False:
            return []
        key = {"ALARM": "AlarmActions", "OK": "OKActions", "INSUFFICIENT_DATA": "InsufficientDataActions"}[state]
        return list(self.properties.get(key) or [])


def alarm_definitions(resources: "ProvisionedStack") -> list[AlarmDefinition]:
    """The template's alarms that the stack created, as the stage resolves them."""
    resolver = resources.resolver()
    return [AlarmDefinition(logical, resolver.resolve(spec.get("Properties", {})))
            for logical, spec in resources.template.get("Resources", {}).items()
            if spec.get("Type") == ALARM_TYPE and logical in resources.refs]


# --- metric math -------------------------------------------------------------------

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_COMPARE = {ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Eq: operator.eq, ast.NotEq: operator.ne}


def evaluate_expression(expression: str, values: Mapping[str, float | None]) -> float | None:
    """One period of a CloudWatch metric math expression: ids, numbers, + - * /, comparisons, FILL, IF.

    A missing value (None) makes what uses it missing, unless FILL replaces
    it; a division by zero is missing too, as in CloudWatch.
    """
    tree = ast.parse(expression.strip(), mode="eval")

    def value(node: ast.AST) -> float | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in values:
                raise ValueError(f"unknown metric id {node.id} in {expression!r}")
            return values[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            operand = value(node.operand)
            return None if operand is None else -operand
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = value(node.left), value(node.right)
            if left is None or right is None or (isinstance(node.op, ast.Div) and right == 0):
                return None
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
            left, right = value(node.left), value(node.comparators[0])
            return None if left is None or right is None else float(_COMPARE[type(node.ops[0])](left, right))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("FILL", "IF"):
            if node.func.id == "FILL":
                series, fill = node.args
                found = value(series)
                return value(fill) if found is None else found
            condition, if_true, if_false = node.args
            decided = value(condition)
            return None if decided is None else value(if_true if decided else if_false)
        raise NotImplementedError(f"the local alarm evaluator does not support {ast.dump(node)} in {expression!r}")

    return value(tree.body)


# --- evaluation ----------------------------------------------------------------------

@dataclass(frozen=True)
class Evaluation:
    state: str
    reason: str
    reason_data: dict[str, Any]


def _stamp(at: datetime) -> str:
    return at.strftime("%d/%m/%y %H:%M:%S")


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


@dataclass
class LocalAlarms:
    """Evaluates the stack's alarms over moto's metrics and notifies their actions, as CloudWatch does."""

    resources: "ProvisionedStack"
    clock: Callable[[], float] = time.time
    capture: EmfCapture | None = None
    queues: QueueMetrics | None = None
    lambdas: LambdaMetrics | None = None
    started: float = 0.0
    definitions: list[AlarmDefinition] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.started = self.started or self.clock()
        self.definitions = self.definitions or alarm_definitions(self.resources)

    def definition(self, name: str) -> AlarmDefinition:
        [found] = [definition for definition in self.definitions if definition.name == name]
        return found

    def step(self) -> list[tuple[str, str, str]]:
        """Publish captured metrics and queue depths, evaluate every alarm; the (alarm, old, new) state changes."""
        if self.capture is not None:
            self.capture.publish()
        if self.queues is not None:
            self.queues.publish(self.clock())
        if self.lambdas is not None:
            self.lambdas.publish()
        changes = []
        for definition in self.definitions:
            change = self.evaluate(definition)
            if change:
                changes.append(change)
        return changes

    def evaluate(self, definition: AlarmDefinition) -> tuple[str, str, str] | None:
        now = self.clock()
        period = definition.period
        end = math.floor(now / period) * period
        start = end - definition.evaluation_periods * period
        if start < math.floor(self.started / period) * period:
            return None  # not yet EvaluationPeriods whole periods of history
        series = self._series(definition, start, end)
        evaluation = self._judge(definition, series, start, period, now)
        if evaluation is None:
            return None
        cloudwatch = boto3.client("cloudwatch")
        [alarm] = cloudwatch.describe_alarms(AlarmNames=[definition.name])["MetricAlarms"]
        old = alarm["StateValue"]
        if evaluation.state == old:
            return None
        cloudwatch.set_alarm_state(AlarmName=definition.name, StateValue=evaluation.state,
                                   StateReason=evaluation.reason, StateReasonData=json.dumps(evaluation.reason_data))
        self._notify(definition, alarm, old, evaluation, now)
        return definition.name, old, evaluation.state

    def _series(self, definition: AlarmDefinition, start: int, end: int) -> dict[int, float | None]:
        """The alarm's value in each period of [start, end) (None where there is no data)."""
        queries = definition.queries
        stat_queries = [{"Id": query["Id"], "MetricStat": query["MetricStat"], "ReturnData": True}
                        for query in queries if "MetricStat" in query]
        results = boto3.client("cloudwatch").get_metric_data(
            MetricDataQueries=stat_queries, StartTime=datetime.fromtimestamp(start, tz=timezone.utc),
            EndTime=datetime.fromtimestamp(end, tz=timezone.utc))["MetricDataResults"]
        found: dict[str, dict[int, float]] = {result["Id"]: {} for result in results}
        for result in results:
            for at, value in zip(result["Timestamps"], result["Values"], strict=True):
                stamp = int(at.timestamp())
                if start <= stamp < end:
                    found[result["Id"]][stamp] = value
        periods = range(start, end, definition.period)
        [returned] = [query for query in queries if query.get("ReturnData", True)]
        if "MetricStat" in returned:
            return {at: found[returned["Id"]].get(at) for at in periods}
        return {at: evaluate_expression(returned["Expression"], {query_id: values.get(at)
                                                                 for query_id, values in found.items()})
                for at in periods}

    def _judge(self, definition: AlarmDefinition, series: dict[int, float | None], start: int, period: int,
               now: float) -> Evaluation | None:
        compare, words = COMPARISONS[definition.properties["ComparisonOperator"]]
        threshold, wanted = definition.threshold, definition.datapoints_to_alarm
        treat = definition.treat_missing_data
        present = {at: value for at, value in series.items() if value is not None}
        missing = len(series) - len(present)
        breaching = sum(1 for value in present.values() if compare(value, threshold))
        if treat == "breaching":
            breaching += missing
        if not present and treat == "ignore":
            return None
        if not present and treat == "missing":
            state = "INSUFFICIENT_DATA"
        else:
            state = "ALARM" if breaching >= wanted else "OK"
        points = sorted(present.items(), reverse=True)
        reason = self._reason(state, points, missing, treat, compare, words, threshold, wanted)
        query_date = datetime.fromtimestamp(now, tz=timezone.utc)
        reason_data = {
            "version": "1.0", "queryDate": _iso(query_date),
            "startDate": _iso(datetime.fromtimestamp(start, tz=timezone.utc)), "period": period,
            "recentDatapoints": [value for _, value in sorted(present.items())], "threshold": threshold,
            "evaluatedDatapoints": [{"timestamp": _iso(datetime.fromtimestamp(at, tz=timezone.utc)), "value": value}
                                    for at, value in points],
        }
        if "Statistic" in definition.properties:
            reason_data["statistic"] = definition.properties["Statistic"]
        return Evaluation(state, reason, reason_data)

    @staticmethod
    def _reason(state: str, points: list[tuple[int, float]], missing: int, treat: str,
                compare: Callable[[float, float], bool], words: str, threshold: float, wanted: int) -> str:
        """CloudWatch's words for an evaluation (its StateReason)."""
        if state == "INSUFFICIENT_DATA":
            return f"Insufficient Data: {missing} datapoints were unknown."
        treated = "Breaching" if treat == "breaching" else "NonBreaching"
        if not points:
            return (f"Threshold Crossed: no datapoints were received for {missing} periods and {missing} missing "
                    f"datapoints were treated as [{treated}].")
        shown = ", ".join(f"{value:g} ({_stamp(datetime.fromtimestamp(at, tz=timezone.utc))})" for at, value in points)
        crossing = sum(1 for _, value in points if compare(value, threshold))
        counted = crossing if state == "ALARM" else len(points) - crossing
        also = (f" and {missing} missing datapoint{'s' if missing != 1 else ''} {'were' if missing != 1 else 'was'} "
                f"treated as [{treated}]" if missing and treat in ("breaching", "notBreaching") else "")
        transition = (f"minimum {wanted} datapoint{'s' if wanted != 1 else ''} for OK -> ALARM transition"
                      if state == "ALARM" else "minimum 1 datapoint for ALARM -> OK transition")
        return (f"Threshold Crossed: {counted} out of the last {len(points)} datapoint{'s' if len(points) != 1 else ''}"
                f" [{shown}] {'were' if counted != 1 else 'was'} {'' if state == 'ALARM' else 'not '}{words} the "
                f"threshold ({threshold:g}){also} ({transition}).")

    def _notify(self, definition: AlarmDefinition, alarm: Mapping[str, Any], old: str, evaluation: Evaluation,
                now: float) -> None:
        """CloudWatch's SNS notification of a state change, to the actions of the new state."""
        targets = definition.actions(evaluation.state)
        if not targets:
            return
        region = self.resources.region
        message = notification(definition, alarm, old, evaluation, now, region)
        subject = f'{evaluation.state}: "{definition.name}" in {REGION_NAMES.get(region, region)}'[:100]
        sns = boto3.client("sns")
        for target in targets:
            sns.publish(TopicArn=target, Subject=subject, Message=json.dumps(message))


def _trigger(definition: AlarmDefinition) -> dict[str, Any]:
    properties = definition.properties
    trigger: dict[str, Any] = {
        "Period": definition.period, "EvaluationPeriods": definition.evaluation_periods,
        "DatapointsToAlarm": definition.datapoints_to_alarm, "ComparisonOperator": properties["ComparisonOperator"],
        "Threshold": definition.threshold, "TreatMissingData": definition.treat_missing_data,
        "EvaluateLowSampleCountPercentile": "",
    }
    if "Metrics" in properties:
        trigger["Metrics"] = [_trigger_query(query) for query in properties["Metrics"]]
        return trigger
    return {"MetricName": properties["MetricName"], "Namespace": properties["Namespace"],
            "StatisticType": "Statistic", "Statistic": _notification_statistic(properties["Statistic"]), "Unit": None,
            "Dimensions": [{"value": item["Value"], "name": item["Name"]} for item in properties.get("Dimensions", [])],
            **trigger}


def _trigger_query(query: Mapping[str, Any]) -> dict[str, Any]:
    if "Expression" in query:
        return {"Expression": query["Expression"], "Id": query["Id"], "Label": query.get("Label", query["Id"]),
                "ReturnData": query.get("ReturnData", True)}
    stat = query["MetricStat"]
    metric = stat["Metric"]
    return {"Id": query["Id"], "MetricStat": {"Metric": {
        "Dimensions": [{"value": item["Value"], "name": item["Name"]} for item in metric.get("Dimensions", [])],
        "MetricName": metric["MetricName"], "Namespace": metric["Namespace"]},
        "Period": int(stat["Period"]), "Stat": stat["Stat"]}, "ReturnData": query.get("ReturnData", True)}


def notification(definition: AlarmDefinition, alarm: Mapping[str, Any], old: str, evaluation: Evaluation,
                 now: float, region: str) -> dict[str, Any]:
    """The JSON message CloudWatch publishes to SNS when an alarm changes state."""
    changed = datetime.fromtimestamp(now, tz=timezone.utc)
    updated = alarm.get("AlarmConfigurationUpdatedTimestamp") or changed
    return {
        "AlarmName": definition.name,
        "AlarmDescription": definition.properties.get("AlarmDescription"),
        "AWSAccountId": alarm["AlarmArn"].split(":")[4],
        "AlarmConfigurationUpdatedTimestamp": _iso(updated),
        "NewStateValue": evaluation.state,
        "NewStateReason": evaluation.reason,
        "StateChangeTime": _iso(changed),
        "Region": REGION_NAMES.get(region, region),
        "AlarmArn": alarm["AlarmArn"],
        "OldStateValue": old,
        "OKActions": definition.actions("OK"),
        "AlarmActions": definition.actions("ALARM"),
        "InsufficientDataActions": definition.actions("INSUFFICIENT_DATA"),
        "Trigger": _trigger(definition),
    }


def workers(stack: "LocalStack") -> "list[Worker]":
    """The local stack's alarm evaluation: capture from now on, publish and evaluate every few seconds."""
    from infra.local_runtime.stack import Worker

    alarms = LocalAlarms(stack.resources, capture=EmfCapture().install(),  # type: ignore[arg-type]
                         queues=QueueMetrics(stack.resources),  # type: ignore[arg-type]
                         lambdas=LambdaMetrics.for_stack(stack.resources).install())  # type: ignore[arg-type]
    return [Worker("cloudwatch:alarms", alarms.step, EVALUATION_INTERVAL_SECONDS)]


def _notification_statistic(statistic: str) -> str:
    """A statistic as alarm notifications spell it: Sum -> SUM, SampleCount -> SAMPLE_COUNT."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", statistic).upper()
