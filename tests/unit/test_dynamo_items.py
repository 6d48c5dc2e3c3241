"""chalicelib.data.dynamo's item conversion gives what boto3's TypeSerializer gives, for every value."""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.data import dynamo

# Values as items hold them, and the ones only boto3 handles: floats, Decimals, sets, bytes, ints past
# DynamoDB's 38 digits, a bool inside a number set, subclasses of dict and str.
_scalars = st.one_of(
    st.none(), st.booleans(), st.text(max_size=20), st.binary(max_size=8),
    st.integers(min_value=-10**40, max_value=10**40), st.integers(min_value=-10**6, max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True), st.decimals(allow_nan=False, places=3),
    st.frozensets(st.integers(min_value=-10**6, max_value=10**6), min_size=1, max_size=4),
    st.sets(st.text(max_size=5), min_size=1, max_size=4),
    st.sets(st.one_of(st.booleans(), st.integers(min_value=0, max_value=9)), min_size=1, max_size=3),
)
_values = st.recursive(_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.tuples(children, children),
    st.dictionaries(st.text(max_size=6), children, max_size=4),
    st.dictionaries(st.text(max_size=6), children, max_size=3).map(OrderedDict)), max_leaves=12)


def _reference(value: Any) -> Any:
    """boto3's answer, as to_value gave it before (or the exception it raised)."""
    try:
        return TypeSerializer().serialize(dynamo._to_dynamo_value(value))  # noqa: SLF001 - the reference path
    except Exception as error:  # noqa: BLE001 - the same failure either way
        return type(error)


def _ours(value: Any) -> Any:
    try:
        return dynamo.to_value(value)
    except Exception as error:  # noqa: BLE001
        return type(error)


@settings(max_examples=400, deadline=None)
@given(_values)
def test_every_value_converts_as_boto3_converts_it(value: Any) -> None:
    assert _ours(value) == _reference(value)


def test_the_edges_of_the_fast_path() -> None:
    exact = 10**38 - 1
    for value in (exact, -exact, 10**38, -(10**38), 0, True, False, None, "", [], (), {}, 1.5, Decimal("1.10")):
        assert _ours(value) == _reference(value), value
    assert dynamo.to_value(exact) == {"N": str(exact)}
    past = _reference(10**38)  # 39 digits: boto3 raises (decimal's Rounded), and so does to_value
    assert isinstance(past, type) and issubclass(past, Exception) and _ours(10**38) is past
    item = {"delivery_id": "d", "log_id": 7, "hits": ["a\\tb"], "evicted": {"count": 3, "flags": "opened"}}
    assert dynamo.to_item(item) == {key: _reference(value) for key, value in item.items()}


def _read_reference(raw: dict[str, Any]) -> Any:
    """from_item's answer as it was: boto3's TypeDeserializer, then _from_dynamo_value (or the exception)."""
    try:
        return {key: dynamo._from_dynamo_value(TypeDeserializer().deserialize(value))  # noqa: SLF001
                for key, value in raw.items()}
    except Exception as error:  # noqa: BLE001
        return type(error)


def _read(raw: dict[str, Any]) -> Any:
    try:
        return dynamo.from_item(raw)
    except Exception as error:  # noqa: BLE001
        return type(error)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _values, max_size=4))
def test_every_stored_value_reads_as_boto3_reads_it(values: dict[str, Any]) -> None:
    raw = {key: _reference(value) for key, value in values.items()}
    raw = {key: value for key, value in raw.items() if isinstance(value, dict)}  # what boto3 could write
    assert _read(raw) == _read_reference(raw)


def test_numbers_and_odd_values_read_as_boto3_reads_them() -> None:
    numbers = ["0", "-0", "007", "-12", "1E+3", "1e2", "0.50", "-1.5E-3", "9" * 38, "-" + "9" * 38, "1" + "0" * 40,
               "", "-", "--5", "+5", " 5", "1_000", "²", "NaN", "Infinity"]
    odd = [{"N": 5}, {"L": "not a list"}, {"M": []}, {"BOOL": 1}, {"NULL": False}, {"S": "a", "N": "1"}, {},
           {"SS": ["a", "b"]}, {"NS": ["1", "2.5"]}, {"B": b"\x00"}, {"L": [{"SS": ["x"]}, {"N": "1.0"}]}]
    for value in [{"N": number} for number in numbers] + odd:
        assert repr(_read({"a": value})) == repr(_read_reference({"a": value})), value  # repr: NaN is not NaN
