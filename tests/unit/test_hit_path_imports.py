"""The hit path cold-starts lean: it imports neither pydantic nor the delivery code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, sys
from chalicelib import tokens
from chalicelib.hits import endpoints
sent = []
endpoints.put_hit = lambda stream, record, key: sent.append(record) or "1"
endpoints.link_tables._loader = lambda delivery_id: {"urls": {"4": {"url": "https://example.com/", "type": "click"}}}
from app import app
from chalice.test import Client
secret = b"k" * 32
with Client(app) as client:
    click = tokens.mint(tokens.KIND_CLICK, 1, secret, "0123456789abcdef", 1, 4)
    opened = tokens.mint(tokens.KIND_OPEN, 1, secret, "0123456789abcdef", 1, 1)
    answers = [client.http.get("/r/" + click).status_code, client.http.get("/o/" + opened).status_code]
heavy = sorted(name for name in sys.modules
               if name.split(".")[0] in ("pydantic", "pydantic_core", "pydantic_settings")
               or name.startswith(("chalicelib.deliveries", "chalicelib.api", "chalicelib.settings")))
print(json.dumps({"answers": answers, "records": len(sent), "heavy": heavy}))
"""


def test_redirect_and_pixel_run_without_pydantic_or_delivery_code() -> None:
    environment = {
        "PATH": "/usr/bin:/bin",
        "SENDTRAIL_SIGNING_KEYS": '{"active": 1, "keys": {"1": "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="}}',
        "SENDTRAIL_HIT_STREAM": "hits",
        "SENDTRAIL_DELIVERIES_TABLE": "deliveries",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    output = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=environment, capture_output=True,
                            text=True, check=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    assert result["answers"] == [302, 200]
    assert result["records"] == 2
    assert result["heavy"] == []


def test_importing_the_app_leaves_powertools_to_the_first_invocation() -> None:
    """Cold start: Powertools (logger, metrics) is imported by the first invocation, not by `import app`."""
    probe = "import sys, app; print(sorted({name.split('.')[0] for name in sys.modules} & {'aws_lambda_powertools'}))"
    environment = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"}
    output = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=environment, capture_output=True,
                            text=True, check=True).stdout
    assert output.strip().splitlines()[-1] == "[]"


SSM_PROBE = r"""
import json, sys
import botocore.session
from botocore.awsrequest import AWSResponse
RING = sys.argv[1]

class Body:
    def stream(self, **kwargs):
        yield json.dumps({"Parameter": {"Name": "/ring", "Type": "SecureString", "Value": RING}}).encode()

create_client = botocore.session.Session.create_client

def create_stubbed_client(self, *args, **kwargs):  # SSM answers without a network
    client = create_client(self, *args, **kwargs)
    client.meta.events.register("before-send", lambda request, **_: AWSResponse(
        request.url, 200, {"Content-Type": "application/x-amz-json-1.1"}, Body()))
    return client

botocore.session.Session.create_client = create_stubbed_client
from chalicelib import tokens
from chalicelib.hits import endpoints
endpoints.put_hit = lambda stream, record, key: "1"
endpoints.link_tables._loader = lambda delivery_id: {"urls": {"4": {"url": "https://example.com/", "type": "click"}}}
from app import app
from chalice.test import Client
with Client(app) as client:
    answer = client.http.get("/r/" + tokens.mint(tokens.KIND_CLICK, 1, b"k" * 32, "0123456789abcdef", 1, 4)).status_code
print(json.dumps({"answer": answer, "powertools": sorted(name for name in sys.modules
                                                         if name.startswith("aws_lambda_powertools.utilities.parameters"))}))
"""


def test_the_key_ring_from_ssm_is_read_without_powertools_parameters() -> None:
    """In AWS the first click reads the ring from SSM: with the hit path's boto3 client, not a Powertools provider."""
    ring = '{"active": 1, "keys": {"1": "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="}}'
    environment = {"PATH": "/usr/bin:/bin", "SENDTRAIL_SIGNING_KEYS_PARAMETER": "/ring", "SENDTRAIL_HIT_STREAM": "hits",
                   "SENDTRAIL_DELIVERIES_TABLE": "deliveries", "AWS_DEFAULT_REGION": "us-east-1",
                   "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    output = subprocess.run([sys.executable, "-c", SSM_PROBE, ring], cwd=ROOT, env=environment, capture_output=True,
                            text=True, check=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    assert result == {"answer": 302, "powertools": []}
