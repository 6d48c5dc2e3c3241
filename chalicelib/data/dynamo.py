"""DynamoDB item conversion for the low-level client.

The low-level client is used rather than boto3's resource layer because it
is cheaper to import and create on a cold start. Numbers come back as int
when integral, float otherwise, never Decimal.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterable, Iterator, Mapping

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from chalicelib.data.batching import batches
from chalicelib.data.leftovers import until_done

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_dynamo_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {key: _to_dynamo_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_dynamo_value(item) for item in value]
    return value


def _from_dynamo_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _from_dynamo_value(item) for key, item in value.items()}
    if isinstance(value, (list, set)):
        return [_from_dynamo_value(item) for item in value]
    return value


# Below it an int is exact in DynamoDB's 38 digits, and str() is how boto3 spells it.
_EXACT_INT_LIMIT = 10**38


def _serialized(value: Any) -> dict[str, Any]:
    """What boto3's TypeSerializer gives for `value` (after _to_dynamo_value), without its per-value
    isinstance chain for the types items are made of (str, int, bool, None, dict, list, tuple): that chain
    was most of the Python workflow's CPU. Anything else (floats, Decimals, sets, bytes, ints past 38
    digits, subclasses) goes through boto3 as before."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is int and -_EXACT_INT_LIMIT < value < _EXACT_INT_LIMIT:
        return {"N": str(value)}
    if kind is dict:
        return {"M": {key: _serialized(item) for key, item in value.items()}}
    if kind is list or kind is tuple:
        return {"L": [_serialized(item) for item in value]}
    if kind is bool:
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    return _serializer.serialize(_to_dynamo_value(value))


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _serialized(value) for key, value in values.items()}


def to_value(value: Any) -> dict[str, Any]:
    return _serialized(value)


def _plain(value: Mapping[str, Any]) -> Any:
    """What boto3's TypeDeserializer and _from_dynamo_value give for one attribute, without boto3 for the
    types items are made of (S, N holding an integer of at most 38 digits, L, M, BOOL, NULL): its
    Decimal per number was most of a read's CPU (a run reads every touched recipient's item). Anything
    else (fractions, exponents, sets, binary, malformed values) goes through boto3 as before."""
    if len(value) == 1:
        [(tag, inner)] = value.items()
        if tag == "S":
            return inner
        if tag == "N" and type(inner) is str and inner.isascii() and len(inner.lstrip("-")) <= 38 and (
                inner.isdigit() or (inner[:1] == "-" and inner[1:].isdigit())):
            return int(inner)
        if tag == "L" and type(inner) is list:
            return [_plain(element) for element in inner]
        if tag == "M" and type(inner) is dict:
            return {key: _plain(element) for key, element in inner.items()}
        if tag == "BOOL":
            return inner
        if tag == "NULL" and inner is True:
            return None
    return _from_dynamo_value(_deserializer.deserialize(value))


def from_item(item: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {key: _plain(value) for key, value in item.items()}


def query_all(dynamodb: Any, **request: Any) -> Iterator[dict[str, Any]]:
    """Every item of a Query, page after page (botocore's paginator)."""
    for page in dynamodb.get_paginator("query").paginate(**request):
        for item in page.get("Items", []):
            yield from_item(item)  # type: ignore[misc]


def query_page(dynamodb: Any, request: dict[str, Any], start: Mapping[str, Any] | None = None
               ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One page of a Query from `start` (a key a previous page returned): its items and the next key."""
    if start:
        request = {**request, "ExclusiveStartKey": to_item(start)}
    page = dynamodb.query(**request)
    items = [from_item(item) for item in page.get("Items", [])]
    return items, from_item(page.get("LastEvaluatedKey"))  # type: ignore[return-value]


def batch_write(dynamodb: Any, table: str, items: Iterable[Mapping[str, Any]]) -> int:
    """Put items 25 at a time, sending again what DynamoDB leaves unprocessed."""
    requests = ({"PutRequest": {"Item": to_item(item)}} for item in items)
    return sum(_flush(dynamodb, table, batch) for batch in batches(requests, 25))


def batch_delete(dynamodb: Any, table: str, keys: Iterable[Mapping[str, Any]]) -> int:
    """Delete items by key 25 at a time, sending again what DynamoDB leaves unprocessed."""
    requests = ({"DeleteRequest": {"Key": to_item(key)}} for key in keys)
    return sum(_flush(dynamodb, table, batch) for batch in batches(requests, 25))


def query_keys(dynamodb: Any, key_names: tuple[str, ...], **request: Any) -> list[dict[str, Any]]:
    """The primary keys of every item a Query finds (only the keys are read back)."""
    names = {f"#k{index}": name for index, name in enumerate(key_names)}
    request["ExpressionAttributeNames"] = {**request.get("ExpressionAttributeNames", {}), **names}
    return list(query_all(dynamodb, ProjectionExpression=", ".join(names), **request))


def _flush(dynamodb: Any, table: str, batch: list[dict[str, Any]]) -> int:
    """One BatchWriteItem of up to 25 requests, the leftover sent again (chalicelib/data/leftovers.py)."""
    until_done(lambda pending: dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems"),
               {table: batch}, attempts=8, what=f"BatchWriteItem on {table}")
    return len(batch)


def batch_get(dynamodb: Any, table: str, keys: list[dict[str, Any]], consistent: bool,
              projection: str | None = None, names: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Every item of `keys` that exists, 100 keys a request, asking again for the keys DynamoDB leaves."""
    found: list[dict[str, Any]] = []

    def get(pending: dict[str, Any]) -> dict[str, Any]:
        response = dynamodb.batch_get_item(RequestItems=pending)
        found.extend(from_item(item) for item in response.get("Responses", {}).get(table, []))  # type: ignore[misc]
        return response.get("UnprocessedKeys") or {}

    for start in range(0, len(keys), 100):
        request: dict[str, Any] = {"Keys": keys[start:start + 100], "ConsistentRead": consistent}
        if projection:
            request["ProjectionExpression"] = projection
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        until_done(get, {table: request}, attempts=10, what=f"BatchGetItem on {table}")
    return found
