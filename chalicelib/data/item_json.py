"""Items as DynamoDB JSON: a run's item writes, encoded once from the compute to PutItem.

A workflow run writes tens of thousands of items (recipient tracking items,
log pages). Made as Python dicts of plain values, then converted attribute by
attribute with boto3's TypeSerializer before each PutItem, they cost more
CPU than everything else in a run. So the compute encodes them once, as one
JSON array of items in DynamoDB's attribute-value form (what PutItem's
`Item` takes: `{"S": ...}`, `{"N": "..."}`, `{"L": [...]}`, `{"M": {...}}`),
natively (sendtrail_native.RunHits.compute, native/src/dynamo.rs) or by
`EncodedItems.encode` (the Python reference, the same bytes). The run record
carries that text as it is (`dumps`), and applying it decodes each item with
`json.loads`, ready for the client.

The text is `json.dumps([to_item(item), ...], separators=(",", ":"))`:
ASCII, other characters as \\uXXXX escapes, as every run record was written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from chalicelib.data.dynamo import from_item, to_item

ENCODING = "dynamodb-json"  # a run record's `items_encoding`: its item lists are in DynamoDB's form
_COMPACT = (",", ":")


@dataclass(frozen=True)
class EncodedItems:
    """Items in DynamoDB's attribute-value form, as one JSON array (`text`) of `count` items."""

    text: bytes
    count: int

    def __len__(self) -> int:
        return self.count

    @classmethod
    def encode(cls, items: Sequence[Mapping[str, Any]]) -> "EncodedItems":
        """The items (plain values, as the data layer's to_item takes them) encoded."""
        return cls(json.dumps([to_item(item) for item in items], separators=_COMPACT).encode("ascii"), len(items))

    def items(self) -> list[dict[str, Any]]:
        """The items in DynamoDB's form, each ready for PutItem's `Item`."""
        items: list[dict[str, Any]] = json.loads(self.text)
        return items

    def values(self) -> list[dict[str, Any]]:
        """The items with plain values, as a reader of the table sees them."""
        return [from_item(item) or {} for item in self.items()]


def dumps(record: Mapping[str, Any]) -> bytes:
    """`record` as compact JSON, its EncodedItems values spliced in as the arrays they are: what
    json.dumps(record, separators=(",", ":")) gives with each one decoded, without decoding it."""
    parts = [json.dumps(name).encode("ascii") + b":" + (
        value.text if isinstance(value, EncodedItems) else json.dumps(value, separators=_COMPACT).encode("ascii"))
             for name, value in record.items()]
    return b"{" + b",".join(parts) + b"}"
