"""What a million hits cost end to end, at list prices, from measured quantities (the `cost` line).

    .venv/bin/python -m bench --only cost

Every price comes from bench/prices.toml, every rule from bench/cost_model.py,
every setting from the one place that holds it (infra/template.yaml's
defaults: front door, stream mode, architecture, buffering, WAF, alarms,
dashboard; .chalice/config.json through Chalice's own lookup: memory; app.py:
schedules), and every quantity is measured here:

- the hit path's CPU per hit: the real handlers (app.py) with a real boto3
  Kinesis client whose network is stubbed at botocore's before-send (the
  request is built, signed and the response parsed), weighted by the
  standard input's mix of opens and clicks (mirror views and opt-outs, 5%,
  are priced as clicks); Lambda bills it as wall time at the function's
  memory (a share of a core) rounded up to whole milliseconds. Network
  waits are not in it: a put's round trip (about 10 ms) would add about
  $0.02 a million at 128 MB;
- its log output per hit for CloudWatch Logs: its own (none when the put
  succeeds) and Lambda's START / END / REPORT lines, which the template's
  LoggingConfig of the function (JSON, system log level WARN) turns off;
- record sizes: the standard input's lines, which are the hit records;
- the workflow's DynamoDB units, S3 requests and CPU: the standard input's
  first 10,000 hits (about 10 a recipient) through the workflow on moto,
  spread over 10 runs (a recipient's hits arrive over hours), metered
  (bench/aws_meter.py), less what as many idle runs spend (those are in the
  fixed monthly cost: the workflow runs every minute either way).

Firehose's S3 PUTs are its objects: at least one per buffer size of records
(the busiest case; at low rates one per buffer interval instead).
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

from bench import cost_model
from bench.cost_model import GB, MILLION

ROOT = Path(__file__).resolve().parents[1]
HITS = MILLION


# --- settings, from their one source ---------------------------------------------------

def deployment_settings() -> dict[str, Any]:
    """The template's defaults and Chalice's memory settings that the bill depends on."""
    from chalice.config import Config
    from chalice.constants import DEFAULT_LAMBDA_MEMORY_SIZE

    from infra.template import evaluate_conditions, load_template, parameter_values

    template = load_template()
    values = parameter_values(template, {})
    conditions = evaluate_conditions(template, values)
    resources = {name: resource for name, resource in template["Resources"].items()
                 if conditions.get(resource.get("Condition", ""), True)}
    types = [resource.get("Type") for resource in resources.values()]
    disk = json.loads((ROOT / ".chalice" / "config.json").read_text())

    def memory(function: str) -> int:
        found = Config(chalice_stage=values["Stage"], function_name=function, config_from_disk=disk)
        return int(found.lambda_memory_size or DEFAULT_LAMBDA_MEMORY_SIZE)

    alarm_metrics = sum(max(1, sum(1 for metric in resource["Properties"].get("Metrics", []) if "MetricStat" in metric))
                        for resource in resources.values() if resource.get("Type") == "AWS::CloudWatch::Alarm")
    firehose = next(resource for resource in resources.values()
                    if resource.get("Type") == "AWS::KinesisFirehose::DeliveryStream"
                    and "KinesisStreamSourceConfiguration" in resource["Properties"])
    buffering = firehose["Properties"]["ExtendedS3DestinationConfiguration"]["BufferingHints"]
    waf_rules = sum(len(resource["Properties"].get("Rules", [])) for resource in resources.values()
                    if resource.get("Type") == "AWS::WAFv2::WebACL")
    logging = resources["APIHandler"]["Properties"].get("LoggingConfig", {})  # the hit path's function
    return {
        "front_door": front_door(types),
        "hit_log_format": logging.get("LogFormat", "Text"),
        "hit_system_log_level": logging.get("SystemLogLevel", "INFO"),
        "architecture": values["Architecture"],
        "stream_mode": values["HitStreamMode"],
        "stream_shards": int(values["HitStreamShards"]),
        "hit_memory_mb": memory("api_handler"),
        "workflow_memory_mb": memory("tracking_workflow"),
        "firehose_buffer_bytes": int(_resolve(buffering["SizeInMBs"], values)) * 2**20,
        "alarm_metrics": alarm_metrics,
        "alarms": types.count("AWS::CloudWatch::Alarm"),
        "dashboards": types.count("AWS::CloudWatch::Dashboard"),
        "web_acls": types.count("AWS::WAFv2::WebACL"),
        "waf_rules": waf_rules,
    }


def front_door(resource_types: list[str | None]) -> str:
    """Where the public hit routes are answered: a function URL, an HTTP API, else Chalice's REST API."""
    if "AWS::Lambda::Url" in resource_types:
        return "function_url"
    if "AWS::ApiGatewayV2::Api" in resource_types or "AWS::Serverless::HttpApi" in resource_types:
        return "http"
    return "rest"


def _resolve(value: Any, values: dict[str, str]) -> Any:
    return values[value["Ref"]] if isinstance(value, dict) and "Ref" in value else value


def schedules_per_month(hours_per_month: float) -> dict[str, float]:
    """Invocations a month of each scheduled function of app.py (Rate schedules)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from chalice.app import Rate, ScheduledEventConfig

    from app import app

    minutes = {"MINUTES": 1, "HOURS": 60, "DAYS": 1440}
    runs = {}
    for source in app.event_sources:
        if isinstance(source, ScheduledEventConfig) and isinstance(source.schedule_expression, Rate):
            rate = source.schedule_expression
            runs[source.name] = hours_per_month * 60 / (rate.value * minutes[rate.unit])
    return runs


# --- the hit path ---------------------------------------------------------------------

class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def measure_hit_path(iterations: int = 2_000) -> dict[str, Any]:
    """CPU µs per open and per click through the real handlers and a real Kinesis client, network stubbed at
    botocore's before-send; the record sizes and the log bytes the hits produced."""
    from botocore.awsrequest import AWSResponse

    from bench import hitpath
    from bench.inputs import KEY, KEYRING_JSON
    from infra.local_runtime import environment

    environment.apply({**environment.fake_aws(), "SENDTRAIL_SIGNING_KEYS": KEYRING_JSON,
                       "SENDTRAIL_HIT_STREAM": "sendtrail-bench-hits",
                       "SENDTRAIL_DELIVERIES_TABLE": "sendtrail-bench-deliveries"}, remove=("AWS_ENDPOINT_URL",))
    from app import app
    from chalicelib import metrics, tokens
    from chalicelib.data import aws
    from chalicelib.hits import endpoints

    logged = [0]
    previous = metrics.set_output(lambda line: logged.__setitem__(0, logged[0] + len(line.encode("utf-8")) + 1))
    endpoints.link_tables._loader = lambda delivery_id: {  # noqa: SLF001 - a warm container's cached URL table
        "urls": {"1": {"url": "", "type": "open"}, "4": {"url": hitpath.TARGET, "type": "click", "placeholders": []}},
        "expires_at": None}
    puts: list[int] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        puts.append(len(base64.b64decode(json.loads(request.body)["Data"])))  # the record, as Kinesis bills it
        body = b'{"ShardId":"shardId-000000000000","SequenceNumber":"49590338271490256608559692538361571095921"}'
        return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.1"}, _Raw(body))

    aws.client("kinesis", aws.HIT_PATH).meta.events.register_first("before-send.kinesis.PutRecord", answer)
    click = tokens.mint(tokens.KIND_CLICK, 1, KEY, hitpath.DELIVERY, 42, 4)
    opened = tokens.mint(tokens.KIND_OPEN, 1, KEY, hitpath.DELIVERY, 42, 1)
    context = hitpath._Context()  # noqa: SLF001 - the same Lambda context as the hitpath bench
    calls: dict[str, Callable[[], Any]] = {
        "click": lambda: app(hitpath._event("/r/{token}", f"/r/{click}", click), context),  # noqa: SLF001
        "open": lambda: app(hitpath._event("/o/{token}", f"/o/{opened}", opened), context),  # noqa: SLF001
    }
    result: dict[str, Any] = {}
    for name, call in calls.items():
        assert call()["statusCode"] in (200, 302)  # warm (and check) before timing
        puts.clear()
        logged[0] = 0
        samples = []
        for _ in range(5):
            started = time.process_time()
            for _ in range(iterations // 5):
                call()
            samples.append((time.process_time() - started) / (iterations // 5))
        assert len(puts) == iterations // 5 * 5, "every hit put its record through the real client"
        result[f"{name}_cpu_us"] = sorted(samples)[len(samples) // 2] * 1e6
        result[f"{name}_log_bytes"] = logged[0] / len(puts)
        result[f"{name}_record_bytes"] = sum(puts) / len(puts)
    metrics.set_output(previous)
    environment.forget_cached_configuration()
    return result


def record_figures() -> dict[str, Any]:
    """The standard input's records: their sizes and the share of each kind."""
    from bench.inputs import standard_input

    sizes, kinds = [], {}
    with gzip.open(standard_input(HITS).path, "rb") as stream:
        for line in stream:
            sizes.append(len(line))
            kind = json.loads(line)["kind"]
            kinds[kind] = kinds.get(kind, 0) + 1
    return {"sizes": sizes, "kinds": {kind: count / len(sizes) for kind, count in kinds.items()}}


# --- the bill ---------------------------------------------------------------------------

def price(hit_path: dict[str, Any], records: dict[str, Any], workflow: dict[str, Any],
          settings: dict[str, Any], schedules: dict[str, float], prices: dict[str, Any]) -> dict[str, Any]:
    """Variable cost of HITS hits (breakdown), the floor, and the fixed monthly cost."""
    sizes = records["sizes"]
    scale = HITS / len(sizes)  # the input's records stand for a million
    open_share = records["kinds"].get("open", 0)
    cpu_us = open_share * hit_path["open_cpu_us"] + (1 - open_share) * hit_path["click_cpu_us"]
    architecture = settings["architecture"]

    duration_ms = cost_model.lambda_duration_ms(cpu_us / 1000, settings["hit_memory_mb"], prices)
    billed_ms = cost_model.lambda_billed_ms(duration_ms, prices)
    platform_log_bytes = cost_model.lambda_platform_log_bytes(
        settings["hit_log_format"], settings["hit_system_log_level"], duration_ms, billed_ms, settings["hit_memory_mb"])
    log_bytes = (open_share * hit_path["open_log_bytes"] + (1 - open_share) * hit_path["click_log_bytes"]
                 + platform_log_bytes)
    hit_lambda = cost_model.lambda_usd(HITS, billed_ms, settings["hit_memory_mb"], architecture, prices)
    if settings["stream_mode"] == "ON_DEMAND":
        stream = sum(cost_model.kinesis_on_demand_usd(sizes, prices).values()) * scale
    else:
        stream = cost_model.kinesis_provisioned_usd(sizes, prices)["put_payload_units"] * scale
    firehose_objects = math.ceil(sum(sizes) * scale / settings["firehose_buffer_bytes"])

    # The workflow: what its busy runs spent beyond as many idle runs (those are fixed cost).
    runs, idle = workflow["runs"], workflow["idle"]
    per_hit = HITS / workflow["hits"]
    workflow_cpu_s = max(0.0, workflow["cpu_s"] - runs * idle["cpu_s"])
    workflow_ms = cost_model.lambda_duration_ms(workflow_cpu_s * 1000, settings["workflow_memory_mb"], prices)
    # Requests are the schedule's (fixed); the extra milliseconds of busy runs, summed over a million hits:
    workflow_lambda = cost_model.lambda_usd(1, workflow_ms * per_hit, settings["workflow_memory_mb"], architecture,
                                            prices)
    dynamodb = cost_model.dynamodb_usd((workflow["write_units"] - runs * idle["write_units"]) * per_hit,
                                       (workflow["read_units"] - runs * idle["read_units"]) * per_hit, prices)
    s3 = cost_model.s3_usd(firehose_objects + (workflow["s3_put"] - runs * idle["s3_put"]) * per_hit,
                           (workflow["s3_get"] - runs * idle["s3_get"]) * per_hit, prices)

    breakdown = {
        "api": cost_model.front_door_usd_per_request(settings["front_door"], prices) * HITS,
        "waf": prices["waf"]["usd_per_million_requests"] * HITS / MILLION if settings["web_acls"] else 0.0,
        "lambda_requests": hit_lambda["requests"],
        "lambda_duration": hit_lambda["gb_seconds"],
        "logs": log_bytes * HITS / GB * prices["cloudwatch"]["usd_per_gb_logs_ingested"],
        "kinesis": stream,
        "firehose": cost_model.firehose_usd(sizes, prices) * scale,
        "s3": s3,
        "dynamodb_writes": dynamodb["writes"],
        "dynamodb_reads": dynamodb["reads"],
        "workflow_lambda": workflow_lambda["gb_seconds"],
    }
    smallest = itertools.repeat(1, HITS)  # a record's minimum: every per-record rounding applies in full
    if settings["stream_mode"] == "ON_DEMAND":
        stream_floor = sum(cost_model.kinesis_on_demand_usd(smallest, prices).values())
    else:
        stream_floor = cost_model.kinesis_provisioned_usd(smallest, prices)["put_payload_units"]
    floor = {"api": breakdown["api"], "lambda_requests": breakdown["lambda_requests"], "kinesis": stream_floor,
             "firehose": cost_model.firehose_usd(itertools.repeat(1, HITS), prices)}

    hours = prices["hours_per_month"]
    if settings["stream_mode"] == "ON_DEMAND":
        stream_month = hours * prices["kinesis"]["on_demand_usd_per_stream_hour"]
    else:
        stream_month = hours * settings["stream_shards"] * prices["kinesis"]["provisioned_usd_per_shard_hour"]
    workflow_runs = schedules.get("tracking_workflow", 0)
    idle_ms = cost_model.lambda_billed_ms(
        cost_model.lambda_duration_ms(idle["cpu_s"] * 1000, settings["workflow_memory_mb"], prices), prices)
    idle_lambda = cost_model.lambda_usd(workflow_runs, idle_ms, settings["workflow_memory_mb"], architecture, prices)
    idle_dynamodb = cost_model.dynamodb_usd(idle["write_units"] * workflow_runs, idle["read_units"] * workflow_runs,
                                            prices)
    other_schedules = sum(runs_ for name, runs_ in schedules.items() if name != "tracking_workflow")
    cloudwatch = prices["cloudwatch"]
    monthly = {
        "stream": stream_month,
        "alarms": settings["alarm_metrics"] * cloudwatch["usd_per_alarm_metric_month"],
        "dashboard": settings["dashboards"] * cloudwatch["usd_per_dashboard_month"],
        "waf": settings["web_acls"] * prices["waf"]["usd_per_web_acl_month"]
        + settings["waf_rules"] * prices["waf"]["usd_per_rule_month"],
        "workflow_idle_runs": sum(idle_lambda.values()) + sum(idle_dynamodb.values())
        + cost_model.s3_usd(idle["s3_put"] * workflow_runs, idle["s3_get"] * workflow_runs, prices),
        "other_schedules": other_schedules * prices["lambda"]["usd_per_million_requests"] / MILLION,
    }
    return {"usd_per_million_hits": sum(breakdown.values()), "breakdown": breakdown,
            "floor_usd_per_million_hits": sum(floor.values()), "floor": floor,
            "monthly_usd": sum(monthly.values()), "monthly": monthly,
            "hit_cpu_us": cpu_us, "hit_billed_ms": billed_ms, "hit_memory_mb": settings["hit_memory_mb"],
            "record_bytes": sum(sizes) / len(sizes), "log_bytes": log_bytes,
            "platform_log_bytes": platform_log_bytes,
            "write_units_per_1000_hits": (workflow["write_units"] - runs * idle["write_units"]) * 1000
            / workflow["hits"], "workflow_runs": runs, "hits_per_recipient": workflow["hits_per_recipient"]}


def measure(workflow: dict[str, Any] | None = None,
            alternatives: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole cost model: `workflow` is tracking_workflow.measure_units()'s spread over 10 runs (measured
    here when not given). `alternatives`: other workflows' spreads (e.g. another tracking layout's), each
    priced with the same hit path and records under "alternatives"."""
    from bench import tracking_workflow

    prices = cost_model.load_prices()
    settings = deployment_settings()
    schedules = schedules_per_month(prices["hours_per_month"])
    hit_path = measure_hit_path()
    records = record_figures()
    if workflow is None:
        workflow = tracking_workflow.measure_units((10,))[10]
    return {**price(hit_path, records, workflow, settings, schedules, prices), "settings": settings,
            "alternatives": {name: {**price(hit_path, records, units, settings, schedules, prices),
                                    "settings": settings} for name, units in (alternatives or {}).items()}}


def lines(result: dict[str, Any]) -> list[str]:
    """The `cost` line and its detail lines, as `make bench` prints them."""
    def fields(values: dict[str, float]) -> str:
        return " ".join(f"{name}={value:.4f}" for name, value in values.items())

    settings = result["settings"]
    return [
        f"cost usd_per_million_hits={result['usd_per_million_hits']:.3f} {fields(result['breakdown'])} "
        f"floor_usd_per_million_hits={result['floor_usd_per_million_hits']:.3f} "
        f"monthly_usd={result['monthly_usd']:.2f}",
        f"cost_floor {fields(result['floor'])}",
        f"cost_monthly {' '.join(f'{name}={value:.2f}' for name, value in result['monthly'].items())}",
        f"cost_detail front_door={settings['front_door']} architecture={settings['architecture']} "
        f"stream={settings['stream_mode']} hit_memory_mb={result['hit_memory_mb']} "
        f"hit_cpu_us={result['hit_cpu_us']:.0f} hit_billed_ms={result['hit_billed_ms']} "
        f"record_bytes={result['record_bytes']:.0f} log_bytes_per_hit={result['log_bytes']:.0f} "
        f"platform_log_bytes_per_hit={result['platform_log_bytes']} "
        f"workflow_memory_mb={settings['workflow_memory_mb']} workflow_runs={result['workflow_runs']} "
        f"hits_per_recipient={result['hits_per_recipient']:.1f} "
        f"write_units_per_1000_hits={result['write_units_per_1000_hits']:.0f} "
        f"alarm_metrics={settings['alarm_metrics']} load={os.getloadavg()[0]:.1f}",
    ]


def main() -> None:
    for line in lines(measure()):
        print(line, flush=True)


if __name__ == "__main__":
    main()
