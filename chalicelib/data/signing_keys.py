"""Until when the links each signing key signed are valid: one small item per key.

The send worker records, per chunk, the latest expiry of what it signs with
the active key (`record`); the status check and `sendtrail keys rotate` read
every key's date (`valid_until`) to say when a key may leave the ring. The
items live in the deliveries table under a partition no delivery can have
(delivery ids are 16 hex digits), with neither `list_pk` nor `state`, so no
delivery listing or index sees them; they expire (TTL) when their key may go.
"""

from __future__ import annotations

from typing import Any

from chalicelib.data import aws
from chalicelib.data.dynamo import query_all

PARTITION = "signing-keys"
_PREFIX = "key#"
_recorded: dict[tuple[str, int], int] = {}  # (table, key id) -> the latest date this container recorded


def forget_recorded() -> None:
    """Clear this container's memory of what it recorded (tests: a new table)."""
    _recorded.clear()


class SigningKeyUses:
    def __init__(self, deliveries_table: str, config: Any = aws.DEFAULT) -> None:
        self.table = deliveries_table
        self._config = config

    @property
    def _dynamodb(self) -> Any:
        return aws.client("dynamodb", self._config)

    def record(self, key_id: int, valid_until_ms: int, expires_at_ms: int) -> None:
        """Key `key_id` signed links valid until `valid_until_ms` (only ever moves later)."""
        if _recorded.get((self.table, key_id), 0) >= valid_until_ms:
            return
        try:
            self._dynamodb.update_item(
                TableName=self.table,
                Key={"delivery_id": {"S": PARTITION}, "part": {"S": f"{_PREFIX}{key_id}"}},
                UpdateExpression="SET valid_until = :until, expires_at_epoch = :expires",
                ConditionExpression="attribute_not_exists(valid_until) OR valid_until < :until",
                ExpressionAttributeValues={":until": {"N": str(valid_until_ms)},
                                           ":expires": {"N": str(expires_at_ms // 1000)}},
            )
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            pass  # an equal or later date is recorded already
        _recorded[(self.table, key_id)] = valid_until_ms

    def valid_until(self) -> dict[int, int]:
        """Every key that signed anything still kept: key id -> until when its links are valid (epoch ms)."""
        items = query_all(self._dynamodb, TableName=self.table, KeyConditionExpression="delivery_id = :p",
                          ExpressionAttributeValues={":p": {"S": PARTITION}}, ConsistentRead=True)
        return {int(item["part"][len(_PREFIX):]): int(item["valid_until"]) for item in items}
