"""The local stack's DynamoDB counts every update when threads write at once (infra/local_runtime/moto_dynamodb.py).

The local stack's moto server answers each request in a thread of its own: the API's hit and send handlers,
the workflow and the MTA emulations all write the same counters at once. moto's update_item reads an item,
computes the new one and stores it without a lock, so two ADDs can both read 5 and both store 6.
"""

from __future__ import annotations

import sys
import threading
from typing import Iterator

import boto3
import pytest
from moto import mock_aws

from infra.local_runtime import moto_dynamodb

WRITERS, UPDATES = 6, 150


@pytest.fixture
def eager_thread_switches() -> Iterator[None]:
    """Switch threads as often as the interpreter can, so that an unguarded read-modify-write shows."""
    saved = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(saved)


@mock_aws
def test_concurrent_adds_and_transactions_lose_no_update(eager_thread_switches: None) -> None:
    moto_dynamodb.install()
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.create_table(TableName="counters-under-load", BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    key = {"pk": {"S": "delivery"}}
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            for index in range(UPDATES):
                if index % 2:
                    dynamodb.update_item(TableName="counters-under-load", Key=key, UpdateExpression="ADD clicks :one",
                                         ExpressionAttributeValues={":one": {"N": "1"}})
                else:
                    dynamodb.transact_write_items(TransactItems=[{"Update": {
                        "TableName": "counters-under-load", "Key": key, "UpdateExpression": "ADD clicks :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}}])
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    item = dynamodb.get_item(TableName="counters-under-load", Key=key, ConsistentRead=True)["Item"]
    assert int(item["clicks"]["N"]) == WRITERS * UPDATES
