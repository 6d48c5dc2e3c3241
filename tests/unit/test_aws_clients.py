"""The shared boto3 clients: one per service and configuration, each sending sendtrail's fixed User-Agent."""

from __future__ import annotations

from typing import Any

import pytest

from bench.hitpath import stub_network
from chalicelib.data import aws


@pytest.fixture(autouse=True)
def fresh_clients() -> Any:
    aws.reset_clients()
    yield
    aws.reset_clients()


@pytest.mark.parametrize("config", [aws.HIT_PATH, aws.DEFAULT, aws.PROBE], ids=["hit_path", "default", "probe"])
def test_every_client_sends_the_fixed_user_agent(config: Any) -> None:
    """botocore would rebuild its default User-Agent twice per call (a quarter of a put's CPU)."""
    client = aws.client("kinesis", config)
    headers: list[Any] = []
    client.meta.events.register("before-send", lambda request, **_: headers.append(dict(request.headers)))
    stub_network(client)
    response = client.put_record(StreamName="hits", Data=b"{}\n", PartitionKey="d:1")
    assert response["SequenceNumber"]
    [sent] = headers
    user_agent = sent["User-Agent"].decode() if isinstance(sent["User-Agent"], bytes) else sent["User-Agent"]
    assert user_agent.startswith(aws.USER_AGENT)
    assert "Authorization" in sent  # signed as ever


def test_a_client_is_created_once_per_service_and_configuration() -> None:
    assert aws.client("kinesis", aws.HIT_PATH) is aws.client("kinesis", aws.HIT_PATH)
    assert aws.client("kinesis", aws.HIT_PATH) is not aws.client("kinesis", aws.DEFAULT)
