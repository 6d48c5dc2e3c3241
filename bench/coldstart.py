"""Cold start of the hit path: importing app.py, against importing boto3 and chalice alone.

Each sample is a fresh interpreter that times its own import with
time.process_time around the import statement (its CPU time: a shared,
busy machine slows it less than the wall clock; the files are in the OS
cache after the warm-up run; interpreter start-up, the same for both, is
left out), laid out as Lambda runs it:

- a task directory unpacked from the deployment package `make package`
  builds (infra/package.py, the one source of truth: app.py, chalicelib/,
  Chalice's runtime and the vendored requirements, each with the bytecode
  the package ships), with bytecode writing disabled (/var/task is
  read-only);
- boto3/botocore from site-packages with their bytecode, as the Lambda
  runtime provides them.

`floor` imports boto3 and chalice from the same layout; `import_ms` imports
app. Medians over interleaved runs. `python -X importtime` breaks a single
import down by module when the ratio needs explaining.

`first_hit_ms` is the rest of a cold start a click waits for: importing app
and serving one /r click in-process (Kinesis and the URL table stubbed, the
key ring inline), with Powertools (its Logger, imported by the first
invocation) as the package holds it.
The two harness modules (the event and the network stub) get bytecode
too: building the event is the runtime's work, not the function's.

`first_hit_put_ms` is the same first click with the hit path's real Kinesis
client (created by the click, as in a new container) and only the network
stubbed (bench/hitpath.py's `before-send` answer), against `put_floor_ms`:
importing boto3 and Chalice, creating a plain `boto3.client("kinesis")` and
making the same put, stubbed the same way (`first_hit_vs_put_floor`).
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import tempfile
import zipfile
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


def _task_directory(into: Path) -> Path:
    """/var/task as Lambda unpacks infra/package's deployment.zip, with the harness modules added."""
    from infra.package import OUT, bytecode, package

    architecture = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
    template = package("dev", architecture, out=OUT / "coldstart", require_layers=False)
    task = into / "task"
    with zipfile.ZipFile(template.parent / "deployment.zip") as deployment:
        deployment.extractall(task)
    for name, text in (("bench_first_hit.py", FIRST_HIT), ("bench_network.py", NETWORK_STUB)):
        (task / name).write_text(text)
        compiled = bytecode(name, text.encode())
        assert compiled is not None, name
        (task / compiled[0]).parent.mkdir(exist_ok=True)
        (task / compiled[0]).write_bytes(compiled[1])
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
        shipped = sorted(task.rglob("*.pyc"))
        for statement in ("import app", "import boto3, chalice"):  # warm the OS file cache
            _sample(task, statement)
        app_ms, floor_ms, first_hit_ms, first_hit_put_ms, put_floor_ms = [], [], [], [], []
        for _ in range(runs):
            app_ms.append(_sample(task, "import app"))
            floor_ms.append(_sample(task, "import boto3, chalice"))
            first_hit_ms.append(_sample(task, "import bench_first_hit; bench_first_hit.run()"))
            first_hit_put_ms.append(_sample(task, "import bench_first_hit; bench_first_hit.run(real_client=True)"))
            put_floor_ms.append(_sample(task, PUT_FLOOR))
        assert sorted(task.rglob("*.pyc")) == shipped, "bytecode was written: the measurement would not be a cold start"
    import_ms, floor = statistics.median(app_ms), statistics.median(floor_ms)
    return {"import_ms": import_ms, "floor_ms": floor, "ratio": import_ms / floor,
            "first_hit_ms": statistics.median(first_hit_ms), "first_hit_put_ms": statistics.median(first_hit_put_ms),
            "put_floor_ms": statistics.median(put_floor_ms)}
