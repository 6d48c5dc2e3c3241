"""Cold start of the hit path: importing app.py, against importing boto3 and chalice alone.

Each sample is a fresh interpreter that times its own import with
time.process_time around the import statement (its CPU time: a shared,
busy machine slows it less than the wall clock; the files are in the OS
cache after the warm-up run; interpreter start-up, the same for both, is
left out), laid out as Lambda runs it:

- a task directory like the deployment package Chalice builds, holding
  app.py, chalicelib/ and chalice/ as source WITHOUT bytecode (the package
  has no .pyc and /var/task is read-only, so Lambda compiles them on every
  cold start), with bytecode writing disabled;
- boto3/botocore from site-packages with their bytecode, as the Lambda
  runtime provides them.

`floor` imports boto3 and chalice from the same layout; `import_ms` imports
app. Medians over interleaved runs. `python -X importtime` breaks a single
import down by module when the ratio needs explaining.

`first_hit_ms` is the rest of a cold start a click waits for: importing app
and serving one /r click in-process (Kinesis and the URL table stubbed, the
key ring inline), with Powertools (imported by the first invocation's
logging and metrics, and in AWS by the SSM key-ring read) copied into the
task directory without bytecode, as the deployment package holds it.

`first_hit_put_ms` is the same first click with the hit path's real Kinesis
client (created by the click, as in a new container) and only the network
stubbed (bench/hitpath.py's `before-send` answer), against `put_floor_ms`:
importing boto3 and Chalice, creating a plain `boto3.client("kinesis")` and
making the same put, stubbed the same way (`first_hit_vs_put_floor`).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = "import time; started = time.process_time(); {statement}; print((time.process_time() - started) * 1000)"


FIRST_HIT = """
def run(real_client=False):
    import app
    from chalicelib import tokens
    from chalicelib.data import aws
    from chalicelib.hits import endpoints

    class StubKinesis:
        def put_record(self, **kwargs):
            return {"ShardId": "shardId-000000000000", "SequenceNumber": "1"}

    if real_client:
        import bench_network
        import botocore.session
        bench_network.stub_every_client(botocore.session.Session)
    else:
        aws._clients[("kinesis", id(aws.HIT_PATH))] = StubKinesis()
    endpoints.link_tables._loader = lambda delivery_id: {"urls": {"4": {"url": "https://shop.example.com/"}}}
    token = tokens.mint(tokens.KIND_CLICK, 1, b"k" * 32, "00112233445566ff", 42, 4)
    event = {"resource": "/r/{token}", "path": "/r/" + token, "httpMethod": "GET", "headers": {"Host": "t"},
             "multiValueHeaders": {"Host": ["t"]}, "queryStringParameters": None,
             "multiValueQueryStringParameters": None, "pathParameters": {"token": token}, "stageVariables": None,
             "body": None, "isBase64Encoded": False,
             "requestContext": {"resourcePath": "/r/{token}", "httpMethod": "GET", "path": "/api/r/" + token,
                                "stage": "api", "requestId": "r-1", "identity": {"sourceIp": "203.0.113.7"}}}
    response = app.app(event, None)
    assert response["statusCode"] == 302, response
"""
# The network, stubbed for every client a session creates: botocore's `before-send` answers a PutRecord.
NETWORK_STUB = """
from botocore.awsrequest import AWSResponse

ANSWER = b'{"ShardId":"shardId-000000000000","SequenceNumber":"49590338271490256608559692538361571095921"}'


class Body:
    def stream(self, **kwargs):
        yield ANSWER


def send(request, **kwargs):
    return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.1"}, Body())


def stub_every_client(session_class):
    create_client = session_class.create_client

    def create_stubbed_client(self, *args, **kwargs):
        client = create_client(self, *args, **kwargs)
        client.meta.events.register("before-send", send)
        return client

    session_class.create_client = create_stubbed_client
"""
# The floor's put: a record of the hit path's size (about 345 bytes), to the same stream, with the same partition key.
PUT_FLOOR = ("import boto3, chalice, bench_network, botocore.session; "
             "bench_network.stub_every_client(botocore.session.Session); "
             "boto3.client('kinesis').put_record(StreamName='hits', Data=b'x' * 345, "
             "PartitionKey='00112233445566ff:42')")
FIRST_HIT_ENVIRONMENT = {"SENDTRAIL_SIGNING_KEYS": '{"active": 1, "keys": {"1": "%s"}}' % ("a2tr" * 10 + "a2s="),
                         "SENDTRAIL_HIT_STREAM": "hits", "SENDTRAIL_DELIVERIES_TABLE": "deliveries",
                         "POWERTOOLS_SERVICE_NAME": "sendtrail",
                         "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
DEPLOYED_WITH_THE_APP = ("aws_lambda_powertools", "jmespath", "typing_extensions")  # requirements.txt, as imported


def _task_directory(into: Path) -> Path:
    import importlib

    import chalice

    task = into / "task"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "chalicelib", task / "chalicelib", ignore=ignore)
    shutil.copytree(Path(chalice.__file__).parent, task / "chalice", ignore=ignore)
    shutil.copy2(ROOT / "app.py", task / "app.py")
    for name in DEPLOYED_WITH_THE_APP:
        source = Path(importlib.import_module(name).__file__)
        if source.name == "__init__.py":
            shutil.copytree(source.parent, task / name, ignore=ignore)
        else:
            shutil.copy2(source, task / source.name)
    (task / "bench_first_hit.py").write_text(FIRST_HIT)
    (task / "bench_network.py").write_text(NETWORK_STUB)
    return task


def _sample(task: Path, statement: str) -> float:
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(task), "PYTHONDONTWRITEBYTECODE": "1",
                   "AWS_DEFAULT_REGION": "us-east-1", "HOME": str(task), **FIRST_HIT_ENVIRONMENT}
    output = subprocess.run([sys.executable, "-c", PROBE.format(statement=statement)], cwd=task, env=environment,
                            capture_output=True, text=True, check=True).stdout
    return float(output.strip().splitlines()[-1])


def measure(runs: int = 15) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="sendtrail-coldstart-") as scratch:
        task = _task_directory(Path(scratch))
        for statement in ("import app", "import boto3, chalice"):  # warm the OS file cache
            _sample(task, statement)
        app_ms, floor_ms, first_hit_ms, first_hit_put_ms, put_floor_ms = [], [], [], [], []
        for _ in range(runs):
            app_ms.append(_sample(task, "import app"))
            floor_ms.append(_sample(task, "import boto3, chalice"))
            first_hit_ms.append(_sample(task, "import bench_first_hit; bench_first_hit.run()"))
            first_hit_put_ms.append(_sample(task, "import bench_first_hit; bench_first_hit.run(real_client=True)"))
            put_floor_ms.append(_sample(task, PUT_FLOOR))
        assert not list(task.rglob("*.pyc")), "bytecode was written: the measurement would not be a cold start"
    import_ms, floor = statistics.median(app_ms), statistics.median(floor_ms)
    return {"import_ms": import_ms, "floor_ms": floor, "ratio": import_ms / floor,
            "first_hit_ms": statistics.median(first_hit_ms), "first_hit_put_ms": statistics.median(first_hit_put_ms),
            "put_floor_ms": statistics.median(put_floor_ms)}
