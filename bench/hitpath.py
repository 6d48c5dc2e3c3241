"""Per-request cost of the hit path's handlers over a trivial Chalice route.

Both apps are called in-process exactly as Lambda calls them (`app(event,
context)` with an API Gateway proxy event), so Chalice's routing, request
and response handling are in both measurements and the ratio is what the
hit path adds: token verification (HMAC), the URL-table lookup (warm cache),
building the record, and the Kinesis put. The put goes to a stubbed client:

- `overhead`: a stub object with `put_record` (what the put costs the
  handler's own code, network excluded);
- `overhead_botocore`: the real boto3 client with botocore's Stubber, so
  botocore's parameter validation and event machinery are counted too
  (still no network; the Stubber answers before the request is signed);
- `overhead_put`: the whole handler with the hit path's real client
  (chalicelib/data/aws.py) and only the network stubbed, at botocore's
  `before-send` event (the request serialized, its endpoint resolved, signed
  with SigV4, the canned HTTP answer parsed), over the trivial route making
  the same put of the same record with a plain `boto3.client("kinesis")`
  created once per container, stubbed the same way.

The trivial route answers a 302 with a Location, nothing else. The hit
path's own observability is measured with it: the middleware that sets the
log context and flushes the request's metrics, whose EMF line is written
(one write per line, as to Lambda's log pipe) to /dev/null. Every figure is
CPU time of this process (time.process_time), so a busy shared machine
slows the figures less than the wall clock would.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import statistics
import time
from typing import Any, Callable

from bench.inputs import KEY, KEYRING_JSON

DELIVERY = "00112233445566ff"
TARGET = "https://shop.example.com/autumn?utm_source=gazette&utm_medium=email#top"
USER_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0"


class _Context:
    function_name = "bench"
    memory_limit_in_mb = 128
    aws_request_id = "00000000-0000-0000-0000-000000000000"


class StubKinesis:
    def __init__(self) -> None:
        self.puts = 0

    def put_record(self, **kwargs: Any) -> dict[str, str]:
        self.puts += 1
        return {"ShardId": "shardId-000000000000",
                "SequenceNumber": "49590338271490256608559692538361571095921575989136588898"}


def _event(resource: str, path: str, token: str) -> dict[str, Any]:
    return {
        "resource": resource, "path": path, "httpMethod": "GET",
        "headers": {"Host": "t.example.com", "User-Agent": USER_AGENT, "Accept": "text/html"},
        "multiValueHeaders": {"Host": ["t.example.com"], "User-Agent": [USER_AGENT], "Accept": ["text/html"]},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": {"token": token}, "stageVariables": None, "body": None, "isBase64Encoded": False,
        "requestContext": {"resourcePath": resource, "httpMethod": "GET", "path": f"/api{path}", "stage": "api",
                           "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
                           "identity": {"sourceIp": "203.0.113.7", "userAgent": USER_AGENT}},
    }


# What Kinesis answers a PutRecord, as bytes on the wire.
PUT_RECORD_ANSWER = (b'{"ShardId":"shardId-000000000000",'
                     b'"SequenceNumber":"49590338271490256608559692538361571095921575989136588898"}')


class _AnswerBody:
    def stream(self, **_kwargs: Any) -> Any:
        yield PUT_RECORD_ANSWER


def stub_network(client: Any) -> list[bytes]:
    """Answer every request of `client` with PUT_RECORD_ANSWER at `before-send`, after it is signed; the bodies sent."""
    from botocore.awsrequest import AWSResponse

    sent: list[bytes] = []

    def send(request: Any, **_kwargs: Any) -> AWSResponse:
        sent.append(request.body)
        return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.1",
                                              "x-amzn-RequestId": "bench"}, _AnswerBody())

    client.meta.events.register("before-send", send)
    return sent


def _trivial_app(put: Callable[[], Any] | None = None) -> Any:
    """A 302 and nothing else; with `put`, the same after making that put."""
    from chalice import Chalice, Response

    app = Chalice(app_name="trivial")

    @app.route("/r/{token}", methods=["GET"])
    def redirect(token: str) -> Response:
        if put is not None:
            put()
        return Response(body="", status_code=302, headers={"Location": TARGET, "Cache-Control": "no-store"})

    return app


def _per_request_us(call: Callable[[], Any], iterations: int) -> float:
    started = time.process_time_ns()
    for _ in range(iterations):
        call()
    return (time.process_time_ns() - started) / iterations / 1000


def measure(iterations: int = 20_000, rounds: int = 5) -> dict[str, float]:
    os.environ.update({
        "SENDTRAIL_SIGNING_KEYS": KEYRING_JSON, "SENDTRAIL_HIT_STREAM": "sendtrail-bench-hits",
        "SENDTRAIL_DELIVERIES_TABLE": "sendtrail-bench-deliveries", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    })
    from app import app
    from chalicelib import metrics, tokens
    from chalicelib.data import aws
    from chalicelib.hits import endpoints

    log_pipe = open(os.devnull, "w", buffering=1)  # noqa: SIM115 - open for the whole measurement
    metrics.set_output(lambda line: print(line, file=log_pipe))

    endpoints.link_tables._loader = lambda delivery_id: {  # noqa: SLF001 - a warm container's cached URL table
        "urls": {"1": {"url": "", "type": "open"}, "4": {"url": TARGET, "type": "click", "placeholders": []}},
        "expires_at": None}
    click = tokens.mint(tokens.KIND_CLICK, 1, KEY, DELIVERY, 42, 4)
    opened = tokens.mint(tokens.KIND_OPEN, 1, KEY, DELIVERY, 42, 1)
    click_event, open_event = _event("/r/{token}", f"/r/{click}", click), _event("/o/{token}", f"/o/{opened}", opened)
    trivial, trivial_event = _trivial_app(), _event("/r/{token}", f"/r/{click}", click)
    context = _Context()

    stub = StubKinesis()
    kinesis_key = ("kinesis", id(aws.HIT_PATH))
    aws._clients[kinesis_key] = stub  # noqa: SLF001 - the shared client, replaced by the stub

    calls = {
        "r": lambda: app(click_event, context),
        "o": lambda: app(open_event, context),
        "trivial": lambda: trivial(trivial_event, context),
    }
    for name, call in calls.items():  # warm up, and check each answers as it should
        response = call()
        assert response["statusCode"] == (200 if name == "o" else 302), (name, response)
    assert stub.puts == 2, "the hit path did not put its records"

    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            samples[name].append(_per_request_us(call, iterations))
    assert stub.puts == 2 + 2 * rounds * iterations
    medians = {name: statistics.median(values) for name, values in samples.items()}

    # The same with the real boto3 client behind botocore's Stubber.
    from botocore.stub import Stubber

    del aws._clients[kinesis_key]  # noqa: SLF001
    client = aws.client("kinesis", aws.HIT_PATH)
    botocore_samples: dict[str, list[float]] = {"r": [], "o": []}
    botocore_iterations = max(iterations // 4, 1)
    with Stubber(client) as stubber:
        for _ in range(rounds):
            for name in ("r", "o"):
                for _ in range(botocore_iterations):
                    stubber.add_response("put_record", {"ShardId": "shardId-000000000000", "SequenceNumber": "1"})
                botocore_samples[name].append(_per_request_us(calls[name], botocore_iterations))
        stubber.assert_no_pending_responses()
    botocore_medians = {name: statistics.median(values) for name, values in botocore_samples.items()}

    # The real client, only the network stubbed; the trivial route puts the same record with a plain client.
    import boto3

    sent = stub_network(client)
    for call in (calls["r"], calls["o"]):
        call()
    record = json.loads(sent[0])  # the hit path's record and partition key, as it sent them
    plain = boto3.client("kinesis")
    stub_network(plain)
    same_put = functools.partial(plain.put_record, StreamName=record["StreamName"],
                                 Data=base64.b64decode(record["Data"]), PartitionKey=record["PartitionKey"])
    trivial_put = _trivial_app(same_put)
    calls_put = {"r": calls["r"], "o": calls["o"], "trivial": lambda: trivial_put(trivial_event, context)}
    assert calls_put["trivial"]()["statusCode"] == 302
    put_samples: dict[str, list[float]] = {name: [] for name in calls_put}
    for _ in range(rounds):
        for name, call in calls_put.items():
            put_samples[name].append(_per_request_us(call, max(iterations // 10, 1)))
    put_medians = {name: statistics.median(values) for name, values in put_samples.items()}

    trivial_us = medians["trivial"]
    return {
        "r_us": medians["r"], "o_us": medians["o"], "trivial_us": trivial_us,
        "overhead": (medians["r"] + medians["o"]) / 2 / trivial_us,
        "r_overhead": medians["r"] / trivial_us, "o_overhead": medians["o"] / trivial_us,
        "r_botocore_us": botocore_medians["r"], "o_botocore_us": botocore_medians["o"],
        "overhead_botocore": (botocore_medians["r"] + botocore_medians["o"]) / 2 / trivial_us,
        "r_put_us": put_medians["r"], "o_put_us": put_medians["o"], "trivial_put_us": put_medians["trivial"],
        "overhead_put": (put_medians["r"] + put_medians["o"]) / 2 / put_medians["trivial"],
    }
