"""The local stack's DynamoDB counts every update when threads write at once (infra/local_runtime/moto_dynamodb.py).

The local stack's moto server answers each request in a thread of its own: the API's hit and send handlers,
the workflow and the MTA emulations all write the same counters at once. moto's update_item reads an item,
computes the new one and stores it without a lock, so two ADDs can both read 5 and both store 6.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Iterator

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


def _table(dynamodb: Any, name: str) -> None:
    """An on-demand table keyed by `pk` alone."""
    dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])

@mock_aws
def test_concurrent_adds_and_transactions_lose_no_update(eager_thread_switches: None) -> None:
    moto_dynamodb.install()
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    _table(dynamodb, "counters-under-load")
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


def _shape(node: Any) -> Any:
    """A parse tree as plain data: each node's type and children, leaves as they print."""
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]

    if isinstance(node, Node):
        return node.type, [_shape(child) for child in node.children or []]
    return repr(node)


@mock_aws
def test_update_expressions_are_parsed_once_and_moto_never_changes_the_tree() -> None:
    """The parse cache is sound only while moto reads its parse trees and validates copies of them."""
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    moto_dynamodb.install()
    expression = "SET #n = if_not_exists(#n, :zero) + :one, #s = :s REMOVE #gone ADD #c :one"
    tree = UpdateExpressionParser.make(expression)
    assert UpdateExpressionParser.make(expression) is tree
    parsed = _shape(tree)
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    _table(dynamodb, "parsed-once")
    update = {"TableName": "parsed-once", "Key": {"pk": {"S": "k"}}, "UpdateExpression": expression,
              "ExpressionAttributeNames": {"#n": "n", "#s": "s", "#gone": "gone", "#c": "c"},
              "ExpressionAttributeValues": {":zero": {"N": "0"}, ":one": {"N": "1"}, ":s": {"S": "x"}}}
    for _ in range(3):
        dynamodb.put_item(TableName="parsed-once", Item={"pk": {"S": "k"}, "gone": {"S": "g"},
                                                         **dynamodb.get_item(TableName="parsed-once", Key={
                                                             "pk": {"S": "k"}}).get("Item", {})})
        dynamodb.update_item(**update)
        dynamodb.transact_write_items(TransactItems=[{"Update": update}])
    item = dynamodb.get_item(TableName="parsed-once", Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]
    assert item == {"pk": {"S": "k"}, "n": {"N": "6"}, "c": {"N": "6"}, "s": {"S": "x"}}
    assert _shape(tree) == parsed  # moto's validation, normalisation and update worked on copies
    with pytest.raises(dynamodb.exceptions.ClientError, match="Syntax error"):
        dynamodb.update_item(**{**update, "UpdateExpression": "SET = oops"})
    with pytest.raises(dynamodb.exceptions.ClientError, match="Syntax error"):  # an error is never kept
        dynamodb.update_item(**{**update, "UpdateExpression": "SET = oops"})


@mock_aws
def test_an_update_past_the_item_size_limit_is_refused_whole() -> None:
    """moto 5.2.5 refuses an UpdateItem that makes an item pass 400 KB, as DynamoDB does, but kept the actions
    it applied before the limit (the SET, the first ADDs): patched, the item is as it was, as in DynamoDB."""
    moto_dynamodb.install()
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    _table(dynamodb, "near-the-limit")
    key = {"pk": {"S": "shard"}}
    for part in range(3):  # ~360 KB: attributes of 1 KB names
        names = {f"#a{index}": f"{part}-{index}-{'f' * 1000}" for index in range(120)}
        dynamodb.update_item(TableName="near-the-limit", Key=key,
                             UpdateExpression="ADD " + ", ".join(f"{name} :one" for name in names),
                             ExpressionAttributeNames=names, ExpressionAttributeValues={":one": {"N": "1"}})
    before = dynamodb.get_item(TableName="near-the-limit", Key=key, ConsistentRead=True)["Item"]
    names = {f"#a{index}": f"new-{index}-{'g' * 1000}" for index in range(60)}
    with pytest.raises(dynamodb.exceptions.ClientError, match="Item size to update has exceeded"):
        dynamodb.update_item(TableName="near-the-limit", Key=key,
                             UpdateExpression="SET last_run = :run ADD " + ", ".join(f"{name} :one" for name in names),
                             ExpressionAttributeNames=names, ExpressionAttributeValues={
                                 ":one": {"N": "1"}, ":run": {"N": "7"}})
    assert dynamodb.get_item(TableName="near-the-limit", Key=key, ConsistentRead=True)["Item"] == before
    names = {f"#a{index}": f"{index}-{'h' * 3500}" for index in range(120)}  # 420 KB at once
    with pytest.raises(dynamodb.exceptions.ClientError, match="Item size to update has exceeded"):
        dynamodb.update_item(TableName="near-the-limit", Key={"pk": {"S": "new"}},  # an item the update creates
                             UpdateExpression="ADD " + ", ".join(f"{name} :one" for name in names),
                             ExpressionAttributeNames=names, ExpressionAttributeValues={":one": {"N": "1"}})
    assert "Item" not in dynamodb.get_item(TableName="near-the-limit", Key={"pk": {"S": "new"}}, ConsistentRead=True)


@mock_aws
def test_moto_refuses_a_full_number_set_and_returns_the_item_as_dynamodb_does() -> None:
    """The family cap (data/tracking.py apply_stat) relies on size() of a number set in a ConditionExpression
    and on ReturnValuesOnConditionCheckFailure=ALL_OLD on UpdateItem: moto 5.2.5 has both, unpatched. Its one
    difference: size() of a missing attribute raises (ValueError) where DynamoDB's condition is false, so the
    cap's condition tests attribute_exists first."""
    moto_dynamodb.install()
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    _table(dynamodb, "family-cap")
    update = {"TableName": "family-cap", "Key": {"pk": {"S": "shard"}}, "UpdateExpression": "ADD fams :marks",
              "ConditionExpression": "attribute_not_exists(fams) OR size(fams) <= :room",
              "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
    dynamodb.update_item(**update, ExpressionAttributeValues={
        ":marks": {"NS": ["18446744073709551615", "1"]}, ":room": {"N": "1"}})
    dynamodb.update_item(**update, ExpressionAttributeValues={":marks": {"NS": ["2"]}, ":room": {"N": "2"}})
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException) as refused:
        dynamodb.update_item(**update, ExpressionAttributeValues={":marks": {"NS": ["3"]}, ":room": {"N": "2"}})
    stored = refused.value.response["Item"]
    assert sorted(stored["fams"]["NS"]) == ["1", "18446744073709551615", "2"]
    assert dynamodb.get_item(TableName="family-cap", Key={"pk": {"S": "shard"}})["Item"] == stored
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException) as refused:
        dynamodb.update_item(**{**update, "Key": {"pk": {"S": "none"}}, "ConditionExpression":
                                "attribute_exists(fams) AND size(fams) <= :room"},
                             ExpressionAttributeValues={":marks": {"NS": ["3"]}, ":room": {"N": "-1"}})
    assert "Item" not in refused.value.response  # no item: nothing to return
