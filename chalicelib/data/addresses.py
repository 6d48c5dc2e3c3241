"""Per-address state in AddressesTable: opt-outs (and later quarantine)."""

from __future__ import annotations

from typing import Any

from chalicelib.data import aws
from chalicelib.data.dynamo import from_item


class AddressStore:
    def __init__(self, table: str, config: Any = aws.DEFAULT) -> None:
        self.table = table
        self._config = config

    @property
    def _dynamodb(self) -> Any:
        return aws.client("dynamodb", self._config)

    def record_unsubscribe(self, address: str, delivery_id: str, at_ms: int) -> None:
        """Remember that `address` opted out (the first opt-out's time and delivery stay)."""
        self._dynamodb.update_item(
            TableName=self.table,
            Key={"address": {"S": address.strip().lower()}},
            UpdateExpression="SET unsubscribed_at = if_not_exists(unsubscribed_at, :at), "
                             "unsubscribed_delivery = if_not_exists(unsubscribed_delivery, :delivery)",
            ExpressionAttributeValues={":at": {"N": str(at_ms)}, ":delivery": {"S": delivery_id}},
        )

    def get(self, address: str) -> dict[str, Any] | None:
        response = self._dynamodb.get_item(TableName=self.table, Key={"address": {"S": address.strip().lower()}})
        return from_item(response.get("Item"))
