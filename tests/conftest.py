"""Shared fixtures: fake AWS credentials always, moto in-process per test.

No test can reach a real AWS account: credentials are fake, profiles are
unset, and every AWS-using test runs inside moto's mock with the resources
of infra/template.yaml provisioned by the same code as the local stack.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from typing import Any, Iterator

import boto3
import hypothesis
import pytest

from infra.local_runtime import environment, moto_dynamodb, moto_kinesis

# Properties check results, never speed (speed lives in `make bench`): Hypothesis's default 200 ms deadline
# per example failed a property test on a loaded CI machine.
hypothesis.settings.register_profile("sendtrail", deadline=None)
hypothesis.settings.load_profile("sendtrail")

environment.apply(environment.fake_aws(), remove=("AWS_ENDPOINT_URL",))
moto_dynamodb.install()  # transactions that copy their items, not whole tables (see the module)
moto_kinesis.install()  # shards safe for the threaded live servers (see the module)

API_TOKEN = "test-api-token-0123456789"  # admin scope
READ_TOKEN = "test-read-token-0123456789"  # read scope
PUBLIC_BASE_URL = "https://t.example.com"
KEYRING_V1 = ('{"active": 1, "keys": {"1": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, '
              '"suppression_key": "c3VwcHJlc3Npb24ta2V5LTAxMjM0NTY3ODlhYmNkZWY="}')


@pytest.fixture
def aws() -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


@functools.lru_cache(maxsize=1)
def _parsed_template() -> dict[str, Any]:
    """infra/template.yaml parsed once per process (a fifth of a provisioning's CPU); each test gets a copy."""
    from infra.template import load_template

    return load_template()


@pytest.fixture
def resources(aws: None) -> Any:
    """The template's resources on moto, and the Lambda environment pointing at them."""
    from chalicelib.auth import ADMIN, READ, token_entry
    from infra.local_runtime import ses_account, ses_outbox
    from infra.local_runtime.provision import provision

    ses_outbox.OUTBOX.clear()
    ses_outbox.install()
    ses_account.reset()
    ses_account.install()
    provisioned = provision(boto3.session.Session(), stage="local", template=copy.deepcopy(_parsed_template()))
    saved = dict(os.environ)
    environment.apply({
        **provisioned.environment,
        "SENDTRAIL_API_TOKENS": f"{token_entry(ADMIN, API_TOKEN)},{token_entry(READ, READ_TOKEN)}",
        "SENDTRAIL_SIGNING_KEYS": KEYRING_V1,
        "SENDTRAIL_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
    })
    boto3.client("sesv2").create_email_identity(EmailIdentity="example.com")
    yield provisioned
    ses_outbox.uninstall()
    ses_account.uninstall()
    ses_outbox.OUTBOX.clear()
    os.environ.clear()
    os.environ.update(saved)
    environment.forget_cached_configuration()


@pytest.fixture
def mta(resources: Any) -> Any:
    """The send worker, SES's events and their consumer, run in-process until their queues are quiet."""
    from tests.mta_harness import MtaRunner

    return MtaRunner(resources)


@pytest.fixture
def app_object() -> Any:
    from app import app

    return app


@pytest.fixture
def client(resources: Any, app_object: Any) -> Any:
    """HTTP into the app through the API Gateway emulation (authorizer included)."""
    from infra.local_runtime.gateway import GatewayClient

    return GatewayClient(app_object)


@pytest.fixture
def api(client: Any) -> Any:
    """Like `client`, with the API bearer token on every request."""
    return AuthedClient(client)


class AuthedClient:
    def __init__(self, client: Any) -> None:
        self.client = client

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_TOKEN}", **(headers or {})}

    def get(self, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self._headers(headers), **kwargs)

    def post(self, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return self.client.post(path, headers=self._headers(headers), **kwargs)

    def delete(self, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return self.client.request("DELETE", path, headers=self._headers(headers), **kwargs)


def read_stream(stream_name: str) -> list[dict[str, Any]]:
    """Every record in a Kinesis stream, decoded (each must be one JSON line)."""
    kinesis = boto3.client("kinesis")
    records = []
    for shard in kinesis.list_shards(StreamName=stream_name)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=stream_name, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                data = record["Data"]
                assert data.endswith(b"\n") and data.count(b"\n") == 1, data
                records.append(json.loads(data))
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return records
