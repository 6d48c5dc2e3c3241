"""Per-address state in AddressesTable: opt-outs, soft-error counts, quarantine and the denylist.

The hit path records opt-outs here (so this module imports nothing heavier
than boto3); the send worker reads which addresses to skip; the SES events
consumer moves an address's quarantine state inside the transaction that
moves its delivery log (`quarantine_update`), guarded by the item's version
so concurrent events for one address cannot lose an error.

Quarantined and denylisted items carry `quarantine_list`, the partition key
of the sparse by-quarantine index: listing them is a Query on that index.

Erasing a person (chalicelib/privacy.py) removes their address; if it was
opted out, quarantined or denylisted, the suppression stays, under a keyed
one-way hash of the address instead (`suppression_hash`: HMAC-SHA256 with
the key ring's suppression key), which `get_many` looks up next to the
address, so erasing someone never mails them again.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Iterable, Mapping

from chalicelib.data import aws
from chalicelib.data.dynamo import batch_get, from_item, query_page, to_value

BY_QUARANTINE_INDEX = "by-quarantine"  # declared on AddressesTable in infra/template.yaml
QUARANTINE_LIST = "quarantine"
QUARANTINE_FIELDS = ("quarantine_status", "quarantine_reason", "quarantine_since", "quarantine_delivery",
                     "error_count", "last_error_at", "last_counted_error_at", "last_error_reason")


HASH_PREFIX = "hmac-sha256:"
SUPPRESSION_FIELDS = ("unsubscribed_at", "unsubscribed_delivery", "quarantine_status", "quarantine_reason",
                      "quarantine_since", "quarantine_list")


def address_key(address: str) -> dict[str, Any]:
    return {"address": {"S": address.strip().lower()}}


def suppression_hash(key: bytes, address: str) -> str:
    """The erased form of an address: a keyed one-way hash (no dictionary of addresses reverses it without the key)."""
    return HASH_PREFIX + hmac.new(key, address.strip().lower().encode("utf-8"), hashlib.sha256).hexdigest()


def suppresses(item: Mapping[str, Any] | None) -> bool:
    """Does this address item keep the address from being mailed (opted out, quarantined or denylisted)?"""
    return bool(item and (item.get("unsubscribed_at") or item.get("quarantine_status")))


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

    def get_many(self, addresses: Iterable[str], suppression_key: bytes | None = None) -> dict[str, dict[str, Any]]:
        """The stored items of these addresses (lower-cased), by address; absent ones are missing (BatchGetItem).

        With `suppression_key`, an address erased while suppressed is found by its hash too.
        """
        wanted = sorted({address.strip().lower() for address in addresses})
        hashed = {suppression_hash(suppression_key, address): address for address in wanted} if suppression_key else {}
        keys = [address_key(address) for address in [*wanted, *hashed]]
        fields = ("address", "quarantine_status", "quarantine_reason", "unsubscribed_at")
        items = batch_get(self._dynamodb, self.table, keys, consistent=True,
                          projection=", ".join(f"#p{index}" for index in range(len(fields))),
                          names={f"#p{index}": name for index, name in enumerate(fields)})
        found = {item["address"]: item for item in items if item["address"] not in hashed}
        for item in items:
            if item["address"] in hashed:
                found.setdefault(hashed[item["address"]], item)
        return found

    def erase(self, address: str, suppression_key: bytes, at_ms: int) -> str | None:
        """Remove the address; a suppression it carried stays under its hash. What was done, or None (unknown)."""
        item = self.get(address, consistent=True)
        if item is None:
            return None
        if not suppresses(item):
            self._dynamodb.delete_item(TableName=self.table, Key=address_key(address))
            return "deleted"
        delete = {"Delete": {"TableName": self.table, "Key": address_key(address)}}
        kept = {name: item[name] for name in SUPPRESSION_FIELDS if item.get(name) is not None}
        kept.update(address=suppression_hash(suppression_key, address), erased_at=at_ms)
        self._dynamodb.transact_write_items(TransactItems=[
            {"Put": {"TableName": self.table, "Item": {name: to_value(value) for name, value in kept.items()}}},
            delete])
        return "suppressed_as_hash"

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
