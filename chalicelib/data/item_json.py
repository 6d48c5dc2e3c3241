"""Items as DynamoDB JSON: a run's item writes, encoded once from the compute to PutItem.

A workflow run writes tens of thousands of items (recipient tracking items,
log pages). Made as Python dicts of plain values, then converted attribute by
attribute with boto3's TypeSerializer before each PutItem, they cost more
CPU than everything else in a run. So the compute encodes them once, as one
JSON array of items in DynamoDB's attribute-value form (what PutItem's
`Item` takes: `{"S": ...}`, `{"N": "..."}`, `{"L": [...]}`, `{"M": {...}}`),
natively (sendtrail_native.RunHits.compute, native/src/dynamo.rs) or by
`EncodedItems.encode` (the Python reference, the same bytes), with where each
item ends in it. The run record carries that text as it is (`dumps`), and
applying it decodes one item at a time with `json.loads` (`texts`), ready for
the client: a run of half a million hits never holds all its items decoded.

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
    """Items in DynamoDB's attribute-value form, as one JSON array (`text`), and where each item ends in it.

    `text` is bytes, or a memoryview of the native layer's text (tens of megabytes a run, not copied)."""

    text: bytes | memoryview
    ends: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.ends)

    @classmethod
    def encode(cls, items: Sequence[Mapping[str, Any]]) -> "EncodedItems":
        """The items (plain values, as the data layer's to_item takes them) encoded."""
        texts = [json.dumps(to_item(item), separators=_COMPACT).encode("ascii") for item in items]
        ends, at = [], 0
        for text in texts:
            at += len(text) + 1  # after "[" or ","
            ends.append(at)
        return cls(b"[" + b",".join(texts) + b"]", tuple(ends))

    def texts(self) -> list[bytes]:
        """Each item's JSON text (json.loads gives it in DynamoDB's form, ready for PutItem's `Item`)."""
        starts = [1, *(end + 1 for end in self.ends)]  # past "[" or ","; one more than there are items
        return [bytes(self.text[start:end]) for start, end in zip(starts, self.ends, strict=False)]

    def items(self) -> list[dict[str, Any]]:
        """The items in DynamoDB's form, each ready for PutItem's `Item`."""
        items: list[dict[str, Any]] = json.loads(bytes(self.text))
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
