"""Deliveries and their delivery logs in DynamoDB.

DeliveriesTable holds three items per delivery (see infra/template.yaml):
`summary`, `content` and `links`. DeliveryLogsTable holds one item per
recipient, keyed by (delivery_id, log_id): Campaign's broadLog. The redirect
endpoint uses this module too, so it imports nothing heavier than boto3.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

from chalicelib.data import aws
from chalicelib.data.dynamo import batch_write, from_item, query_all, to_item, to_value

SUMMARY, CONTENT, LINKS = "summary", "content", "links"
BY_CREATED_INDEX = "by-created"  # declared on DeliveriesTable in infra/template.yaml
LIST_PARTITION = "delivery"


class DeliveryExists(Exception):
    """The delivery id is taken (ids are random; the caller draws another)."""


class DeliveryStore:
    def __init__(self, deliveries_table: str, logs_table: str, config: Any = aws.DEFAULT) -> None:
        self.deliveries_table = deliveries_table
        self.logs_table = logs_table
        self._config = config

    @property
    def _dynamodb(self) -> Any:
        return aws.client("dynamodb", self._config)

    # --- deliveries -------------------------------------------------------

    def create(self, delivery_id: str, summary: Mapping[str, Any], content: Mapping[str, Any],
               links: Mapping[str, Any]) -> None:
        """Write the three items at once, refusing an id that exists."""
        summary = {**summary, "list_pk": LIST_PARTITION}
        items = ((SUMMARY, summary), (CONTENT, content), (LINKS, links))
        try:
            self._dynamodb.transact_write_items(TransactItems=[
                {"Put": {
                    "TableName": self.deliveries_table,
                    "Item": to_item({**values, "delivery_id": delivery_id, "part": part}),
                    "ConditionExpression": "attribute_not_exists(delivery_id)",
                }}
                for part, values in items
            ])
        except self._dynamodb.exceptions.TransactionCanceledException as error:
            reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
            if "ConditionalCheckFailed" in reasons:
                raise DeliveryExists(delivery_id) from None
            raise

    def _get(self, delivery_id: str, part: str, consistent: bool = False) -> dict[str, Any] | None:
        response = self._dynamodb.get_item(
            TableName=self.deliveries_table,
            Key={"delivery_id": {"S": delivery_id}, "part": {"S": part}},
            ConsistentRead=consistent,
        )
        return from_item(response.get("Item"))

    def get_summary(self, delivery_id: str, consistent: bool = False) -> dict[str, Any] | None:
        return self._get(delivery_id, SUMMARY, consistent)

    def get_content(self, delivery_id: str) -> dict[str, Any] | None:
        return self._get(delivery_id, CONTENT)

    def get_links(self, delivery_id: str) -> dict[str, Any] | None:
        return self._get(delivery_id, LINKS)

    def update_summary(self, delivery_id: str, values: Mapping[str, Any], *,
                       only_if_state_in: Iterable[str] | None = None) -> bool:
        """Set summary attributes; with `only_if_state_in`, only from those states.

        Returns False when the state condition did not hold.
        """
        names = {f"#a{index}": name for index, name in enumerate(values)}
        attribute_values = {f":v{index}": to_value(value) for index, value in enumerate(values.values())}
        request: dict[str, Any] = {
            "TableName": self.deliveries_table,
            "Key": {"delivery_id": {"S": delivery_id}, "part": {"S": SUMMARY}},
            "UpdateExpression": "SET " + ", ".join(f"#a{index} = :v{index}" for index in range(len(values))),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": attribute_values,
            "ConditionExpression": "attribute_exists(delivery_id)",
        }
        if only_if_state_in is not None:
            states = list(only_if_state_in)
            names["#state"] = "state"
            attribute_values.update({f":s{index}": {"S": state} for index, state in enumerate(states)})
            request["ConditionExpression"] += " AND #state IN (" + ", ".join(
                f":s{index}" for index in range(len(states))) + ")"
        try:
            self._dynamodb.update_item(**request)
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def set_links_expiry(self, delivery_id: str, expires_at_ms: int) -> None:
        self._dynamodb.update_item(
            TableName=self.deliveries_table,
            Key={"delivery_id": {"S": delivery_id}, "part": {"S": LINKS}},
            UpdateExpression="SET expires_at = :expires",
            ExpressionAttributeValues={":expires": {"N": str(expires_at_ms)}},
        )

    def list_summaries(self, limit: int = 50, start: Mapping[str, Any] | None = None
                       ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Newest first, a page at a time (a Query on the by-created index)."""
        request: dict[str, Any] = {
            "TableName": self.deliveries_table,
            "IndexName": BY_CREATED_INDEX,
            "KeyConditionExpression": "list_pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": LIST_PARTITION}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start:
            request["ExclusiveStartKey"] = to_item(start)
        page = self._dynamodb.query(**request)
        items = [from_item(item) for item in page.get("Items", [])]
        return items, from_item(page.get("LastEvaluatedKey"))  # type: ignore[return-value]

    # --- delivery logs ----------------------------------------------------

    def put_logs(self, delivery_id: str, logs: Iterable[Mapping[str, Any]]) -> int:
        return batch_write(self._dynamodb, self.logs_table, ({**log, "delivery_id": delivery_id} for log in logs))

    def get_log(self, delivery_id: str, log_id: int) -> dict[str, Any] | None:
        response = self._dynamodb.get_item(
            TableName=self.logs_table,
            Key={"delivery_id": {"S": delivery_id}, "log_id": {"N": str(log_id)}},
        )
        return from_item(response.get("Item"))

    def iter_logs(self, delivery_id: str, consistent: bool = False) -> Iterator[dict[str, Any]]:
        return query_all(
            self._dynamodb,
            TableName=self.logs_table,
            KeyConditionExpression="delivery_id = :d",
            ExpressionAttributeValues={":d": {"S": delivery_id}},
            ConsistentRead=consistent,
        )

    def update_log(self, delivery_id: str, log_id: int, values: Mapping[str, Any]) -> None:
        names = {f"#a{index}": name for index, name in enumerate(values)}
        self._dynamodb.update_item(
            TableName=self.logs_table,
            Key={"delivery_id": {"S": delivery_id}, "log_id": {"N": str(log_id)}},
            UpdateExpression="SET " + ", ".join(f"#a{index} = :v{index}" for index in range(len(values))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":v{index}": to_value(value) for index, value in enumerate(values.values())},
        )

    def mark_optout(self, delivery_id: str, log_id: int, at_ms: int) -> dict[str, Any] | None:
        """Record the recipient's opt-out once: the log on the first call, None after."""
        try:
            response = self._dynamodb.update_item(
                TableName=self.logs_table,
                Key={"delivery_id": {"S": delivery_id}, "log_id": {"N": str(log_id)}},
                UpdateExpression="SET optout_at = :at",
                ConditionExpression="attribute_exists(delivery_id) AND attribute_not_exists(optout_at)",
                ExpressionAttributeValues={":at": {"N": str(at_ms)}},
                ReturnValues="ALL_NEW",
            )
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            return None
        return from_item(response["Attributes"])

    def clear_optout(self, delivery_id: str, log_id: int) -> None:
        """Undo mark_optout when the hit could not be recorded, so a retry records both."""
        self._dynamodb.update_item(
            TableName=self.logs_table,
            Key={"delivery_id": {"S": delivery_id}, "log_id": {"N": str(log_id)}},
            UpdateExpression="REMOVE optout_at",
        )
