"""Per-address state in AddressesTable: opt-outs, soft-error counts, quarantine and the denylist.

The hit path records opt-outs here (so this module imports nothing heavier
than boto3); the send worker reads which addresses to skip; the SES events
consumer moves an address's quarantine state inside the transaction that
moves its delivery log (`quarantine_update`), guarded by the item's version
so concurrent events for one address cannot lose an error.

Quarantined and denylisted items carry `quarantine_list`, the partition key
of the sparse by-quarantine index: listing them is a Query on that index.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from chalicelib.data import aws
from chalicelib.data.dynamo import batch_get, from_item, query_page, to_value

BY_QUARANTINE_INDEX = "by-quarantine"  # declared on AddressesTable in infra/template.yaml
QUARANTINE_LIST = "quarantine"
QUARANTINE_FIELDS = ("quarantine_status", "quarantine_reason", "quarantine_since", "quarantine_delivery",
                     "error_count", "last_error_at", "last_counted_error_at", "last_error_reason")


def address_key(address: str) -> dict[str, Any]:
    return {"address": {"S": address.strip().lower()}}


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
            Key=address_key(address),
            UpdateExpression="SET unsubscribed_at = if_not_exists(unsubscribed_at, :at), "
                             "unsubscribed_delivery = if_not_exists(unsubscribed_delivery, :delivery)",
            ExpressionAttributeValues={":at": {"N": str(at_ms)}, ":delivery": {"S": delivery_id}},
        )

    def get(self, address: str, consistent: bool = False) -> dict[str, Any] | None:
        response = self._dynamodb.get_item(TableName=self.table, Key=address_key(address), ConsistentRead=consistent)
        return from_item(response.get("Item"))

    def get_many(self, addresses: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored items of these addresses (lower-cased), by address; absent ones are missing (BatchGetItem)."""
        keys = [address_key(address) for address in sorted({address.strip().lower() for address in addresses})]
        fields = ("address", "quarantine_status", "quarantine_reason", "unsubscribed_at")
        items = batch_get(self._dynamodb, self.table, keys, consistent=True,
                          projection=", ".join(f"#p{index}" for index in range(len(fields))),
                          names={f"#p{index}": name for index, name in enumerate(fields)})
        return {item["address"]: item for item in items}

    def quarantine_update(self, address: str, values: Mapping[str, Any], expected_version: int) -> dict[str, Any]:
        """A TransactWriteItems entry that sets the address's quarantine state, if nobody changed it meanwhile.

        `values` holds QUARANTINE_FIELDS; None removes a field. The index key
        follows the status: present while quarantined or denylisted.
        """
        sets, removes = ["version = :next"], []
        names: dict[str, str] = {}
        attribute_values: dict[str, Any] = {":next": {"N": str(expected_version + 1)}}
        listed = bool(values.get("quarantine_status"))
        fields = {**values, "quarantine_list": QUARANTINE_LIST if listed else None}
        for index, (name, value) in enumerate(fields.items()):
            names[f"#f{index}"] = name
            if value is None:
                removes.append(f"#f{index}")
            else:
                sets.append(f"#f{index} = :f{index}")
                attribute_values[f":f{index}"] = to_value(value)
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        if expected_version:
            condition = "version = :expected"
            attribute_values[":expected"] = {"N": str(expected_version)}
        else:
            condition = "attribute_not_exists(version)"
        return {"Update": {"TableName": self.table, "Key": address_key(address), "UpdateExpression": expression,
                           "ConditionExpression": condition, "ExpressionAttributeNames": names,
                           "ExpressionAttributeValues": attribute_values}}

    def list_quarantine(self, limit: int = 50, start: Mapping[str, Any] | None = None
                        ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Quarantined and denylisted addresses, most recent first, a page at a time (a Query on the index)."""
        request: dict[str, Any] = {
            "TableName": self.table, "IndexName": BY_QUARANTINE_INDEX,
            "KeyConditionExpression": "quarantine_list = :list",
            "ExpressionAttributeValues": {":list": {"S": QUARANTINE_LIST}}, "ScanIndexForward": False, "Limit": limit,
        }
        return query_page(self._dynamodb, request, start)
