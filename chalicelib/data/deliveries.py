"""Deliveries and their delivery logs in DynamoDB.

DeliveriesTable holds three items per delivery (see infra/template.yaml):
`summary`, `content` and `links`. DeliveryLogsTable holds one item per
recipient, keyed by (delivery_id, log_id): Campaign's broadLog. The redirect
endpoint uses this module too, so it imports nothing heavier than boto3.

Counts stay exact: the summary keeps one counter per log status
(`counts.<status>`) and per failure (`failures.<type>.<reason>`), and every
change of a log's status moves those counters in the same DynamoDB
transaction, conditioned on the status the log had (`transition`). A change
that raced with another one fails its condition and changes nothing.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Optional

from chalicelib.data import aws
from chalicelib.data.dynamo import (
    batch_delete,
    batch_get,
    batch_write,
    from_item,
    query_all,
    query_keys,
    query_page,
    to_item,
    to_value,
)

SUMMARY, CONTENT, LINKS = "summary", "content", "links"
BY_CREATED_INDEX = "by-created"  # declared on DeliveriesTable in infra/template.yaml
BY_STATE_INDEX = "by-state"  # DeliveriesTable: (state, state_since)
BY_STATUS_INDEX = "by-status"  # DeliveryLogsTable: (status_key, log_id)
BY_RECIPIENT_INDEX = "by-recipient"  # DeliveryLogsTable: (recipient_id, delivery_id), keys only
LIST_PARTITION = "delivery"
MAX_TRANSACTION_ITEMS = 100


def status_key(delivery_id: str, status: str) -> str:
    """The by-status index's partition key of a log: one delivery's logs in one status."""
    return f"{delivery_id}#{status}"


class TransactionFailed(RuntimeError):
    """DynamoDB kept cancelling a transaction for conflicts with concurrent ones."""


@dataclass
class LogTransition:
    """One delivery log moving from `from_status` to `to_status` (they may be equal: values only).

    `failure` is the (type, reason) the log gets (counted under
    failures.<type>.<reason>); `previous_failure` the one it had, uncounted.
    `condition` adds to the check that the log still has `from_status`.
    """

    log_id: int
    from_status: str
    to_status: str
    values: Mapping[str, Any] = field(default_factory=dict)
    failure: Optional[tuple[str, str]] = None
    previous_failure: Optional[tuple[str, str]] = None
    remove: tuple[str, ...] = ()
    condition: Optional[str] = None
    condition_values: Mapping[str, Any] = field(default_factory=dict)


class _Expression:
    """An update expression built clause by clause, with its names and values."""

    def __init__(self) -> None:
        self.sets: list[str] = []
        self.adds: list[str] = []
        self.removes: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, *parts: str) -> str:
        path = []
        for part in parts:
            placeholder = f"#n{len(self.names)}"
            for existing, value in self.names.items():
                if value == part:
                    placeholder = existing
                    break
            self.names[placeholder] = part
            path.append(placeholder)
        return ".".join(path)

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = to_value(value)
        return placeholder

    def request(self) -> dict[str, Any]:
        clauses = []
        if self.sets:
            clauses.append("SET " + ", ".join(self.sets))
        if self.adds:
            clauses.append("ADD " + ", ".join(self.adds))
        if self.removes:
            clauses.append("REMOVE " + ", ".join(self.removes))
        request: dict[str, Any] = {"UpdateExpression": " ".join(clauses), "ExpressionAttributeNames": self.names}
        if self.values:
            request["ExpressionAttributeValues"] = self.values
        return request


def _summary_counters(transitions: Iterable[LogTransition]) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    statuses: dict[str, int] = {}
    failures: dict[tuple[str, str], int] = {}
    for change in transitions:
        if change.from_status != change.to_status:
            statuses[change.from_status] = statuses.get(change.from_status, 0) - 1
            statuses[change.to_status] = statuses.get(change.to_status, 0) + 1
        if change.failure != change.previous_failure:
            if change.previous_failure:
                failures[change.previous_failure] = failures.get(change.previous_failure, 0) - 1
            if change.failure:
                failures[change.failure] = failures.get(change.failure, 0) + 1
    return ({name: delta for name, delta in statuses.items() if delta},
            {key: delta for key, delta in failures.items() if delta})


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
        return query_page(self._dynamodb, request, start)

    # --- delivery logs ----------------------------------------------------

    def put_logs(self, delivery_id: str, logs: Iterable[Mapping[str, Any]]) -> int:
        return batch_write(self._dynamodb, self.logs_table, (
            {**log, "delivery_id": delivery_id, "status_key": status_key(delivery_id, log["status"])}
            for log in logs))

    def get_log(self, delivery_id: str, log_id: int, consistent: bool = False) -> dict[str, Any] | None:
        response = self._dynamodb.get_item(
            TableName=self.logs_table,
            Key={"delivery_id": {"S": delivery_id}, "log_id": {"N": str(log_id)}},
            ConsistentRead=consistent,
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

    def recipient_logs(self, recipient_id: str) -> list[dict[str, Any]]:
        """Every delivery log of a recipient across deliveries (a Query on the by-recipient index, then gets)."""
        keys = query_keys(self._dynamodb, ("delivery_id", "log_id"), TableName=self.logs_table,
                          IndexName=BY_RECIPIENT_INDEX, KeyConditionExpression="recipient_id = :r",
                          ExpressionAttributeValues={":r": {"S": recipient_id}})
        return batch_get(self._dynamodb, self.logs_table, [to_item(key) for key in keys], consistent=True)

    def delete_delivery(self, delivery_id: str) -> int:
        """Delete a delivery's logs (by its partition key) and then its items; returns how many logs."""
        keys = query_keys(self._dynamodb, ("delivery_id", "log_id"), TableName=self.logs_table,
                          KeyConditionExpression="delivery_id = :d",
                          ExpressionAttributeValues={":d": {"S": delivery_id}})
        deleted = batch_delete(self._dynamodb, self.logs_table, keys)
        batch_delete(self._dynamodb, self.deliveries_table,
                     ({"delivery_id": delivery_id, "part": part} for part in (LINKS, CONTENT, SUMMARY)))
        return deleted

    def set_expiry(self, delivery_id: str, expires_at_epoch: int) -> None:
        """When the delivery's items (summary, content, URL table) expire (DynamoDB TTL)."""
        for part in (SUMMARY, CONTENT, LINKS):
            self._dynamodb.update_item(
                TableName=self.deliveries_table, Key={"delivery_id": {"S": delivery_id}, "part": {"S": part}},
                UpdateExpression="SET expires_at_epoch = :e", ConditionExpression="attribute_exists(delivery_id)",
                ExpressionAttributeValues={":e": {"N": str(expires_at_epoch)}})

    def mark_optout(self, delivery_id: str, log_id: int, at_ms: int) -> dict[str, Any] | None:
        """Mark the recipient's opt-out as begun: the log, unless an earlier request completed it (None).

        The log keeps the first `optout_at`; `optout_pending` stays until the
        opt-out's hit is recorded (`confirm_optout`), so a retry after a
        failure re-records the hit instead of answering "already".
        """
        try:
            response = self._dynamodb.update_item(
                TableName=self.logs_table,
                Key={"delivery_id": {"S": delivery_id}, "log_id": {"N": str(log_id)}},
                UpdateExpression="SET optout_at = if_not_exists(optout_at, :at), optout_pending = :pending",
                ConditionExpression="attribute_exists(delivery_id) AND "
                                    "(attribute_not_exists(optout_at) OR attribute_exists(optout_pending))",
                ExpressionAttributeValues={":at": {"N": str(at_ms)}, ":pending": {"BOOL": True}},
                ReturnValues="ALL_NEW",
            )
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            return None
        return from_item(response["Attributes"])

    def confirm_optout(self, delivery_id: str, log_id: int) -> None:
        """The opt-out's hit is recorded: later requests answer "already unsubscribed"."""
        self._dynamodb.update_item(
            TableName=self.logs_table,
            Key={"delivery_id": {"S": delivery_id}, "log_id": {"N": str(log_id)}},
            UpdateExpression="REMOVE optout_pending",
        )

    # === send jobs: delivery states, chunks of logs, transactional transitions ===

    # --- delivery states ---------------------------------------------------

    def change_state(self, delivery_id: str, to_state: str, from_states: Iterable[str], now_ms: int,
                     values: Mapping[str, Any] | None = None, set_once: Mapping[str, Any] | None = None,
                     extra_condition: str | None = None) -> bool:
        """Move the delivery to `to_state` from one of `from_states`; False when it was in none.

        `set_once` values are written only where the summary has none yet
        (e.g. the first start time).
        """
        expression = _Expression()
        expression.sets.append(f"{expression.name('state')} = {expression.value(to_state)}")
        expression.sets.append(f"{expression.name('state_since')} = {expression.value(now_ms)}")
        for name, value in (values or {}).items():
            expression.sets.append(f"{expression.name(name)} = {expression.value(value)}")
        for name, value in (set_once or {}).items():
            path = expression.name(name)
            expression.sets.append(f"{path} = if_not_exists({path}, {expression.value(value)})")
        states = ", ".join(expression.value(state) for state in from_states)
        condition = f"attribute_exists(delivery_id) AND {expression.name('state')} IN ({states})"
        if extra_condition:
            condition += f" AND ({extra_condition})"
        try:
            self._dynamodb.update_item(TableName=self.deliveries_table, Key=self._summary_key(delivery_id),
                                       ConditionExpression=condition, **expression.request())
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def finish_if_done(self, delivery_id: str, now_ms: int) -> bool:
        """in_progress -> finished once no log is prepared or pending: one conditional write, race-free."""
        try:
            self._dynamodb.update_item(
                TableName=self.deliveries_table, Key=self._summary_key(delivery_id),
                UpdateExpression="SET #state = :finished, state_since = :now, finished_at = :now",
                ConditionExpression="#state = :in_progress AND #counts.#prepared = :zero AND #counts.#pending = :zero",
                ExpressionAttributeNames={"#state": "state", "#counts": "counts", "#prepared": "prepared",
                                          "#pending": "pending"},
                ExpressionAttributeValues={":finished": {"S": "finished"}, ":in_progress": {"S": "in_progress"},
                                           ":zero": {"N": "0"}, ":now": {"N": str(now_ms)}},
            )
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _by_state(self, state: str, oldest_first: bool) -> dict[str, Any]:
        """The Query of the by-state index for the deliveries in `state`, by when they entered it."""
        return {"TableName": self.deliveries_table, "IndexName": BY_STATE_INDEX,
                "KeyConditionExpression": "#state = :state", "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {":state": {"S": state}}, "ScanIndexForward": oldest_first}

    def list_by_state(self, state: str, limit: int = 50, start: Mapping[str, Any] | None = None,
                      oldest_first: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Deliveries in `state`, by when they entered it (newest first unless asked), a page at a time."""
        return query_page(self._dynamodb, {**self._by_state(state, oldest_first), "Limit": limit}, start)

    def oldest_in_state(self, state: str) -> dict[str, Any] | None:
        """The delivery that has been in `state` longest (e.g. start_pending, for the alarm on it): one Query."""
        items, _ = self.list_by_state(state, limit=1, oldest_first=True)
        return items[0] if items else None

    def all_in_state(self, state: str) -> Iterator[dict[str, Any]]:
        """Every delivery in `state`, the longest there first: a Query, page after page (for states few
        deliveries are in at once, such as the sending ones)."""
        return query_all(self._dynamodb, **self._by_state(state, oldest_first=True))

    # --- logs ----------------------------------------------------------------

    def chunk_logs(self, delivery_id: str, first: int, last: int) -> list[dict[str, Any]]:
        """The logs with ids first..last (inclusive), strongly consistent (a Query on the key)."""
        return list(query_all(
            self._dynamodb, TableName=self.logs_table, ConsistentRead=True,
            KeyConditionExpression="delivery_id = :d AND log_id BETWEEN :first AND :last",
            ExpressionAttributeValues={":d": {"S": delivery_id}, ":first": {"N": str(first)},
                                       ":last": {"N": str(last)}},
        ))

    def logs_page(self, delivery_id: str, status: str | None, limit: int, start: Mapping[str, Any] | None = None,
                  reason: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of a delivery's logs by log id: all of them, or one status's (by-status index).

        `reason` filters on failure_reason; a filtered page may hold fewer
        than `limit` items while more follow (DynamoDB filters after reading).
        """
        request: dict[str, Any] = {"TableName": self.logs_table, "Limit": limit}
        if status:
            request.update(IndexName=BY_STATUS_INDEX, KeyConditionExpression="status_key = :k",
                           ExpressionAttributeValues={":k": {"S": status_key(delivery_id, status)}})
        else:
            request.update(KeyConditionExpression="delivery_id = :d",
                           ExpressionAttributeValues={":d": {"S": delivery_id}})
        if reason:
            request["FilterExpression"] = "failure_reason = :reason"
            request["ExpressionAttributeValues"][":reason"] = {"S": reason}
        return query_page(self._dynamodb, request, start)

    # --- transitions ---------------------------------------------------------

    def transition(self, delivery_id: str, transitions: list[LogTransition], now_ms: int,
                   summary_values: Mapping[str, Any] | None = None,
                   summary_add: Mapping[str, int | float] | None = None,
                   summary_set_once: Mapping[str, Any] | None = None,
                   extra_items: Iterable[Mapping[str, Any]] = (), attempts: int = 8) -> bool:
        """Apply log transitions and the summary's counters in one transaction.

        Each log must still have its `from_status` (and pass its own
        condition); otherwise nothing is written and the answer is False.
        `summary_set_once` values are written where the summary has none
        yet. `extra_items` are further TransactWriteItems entries (an address's
        quarantine state) that commit or fail with the rest. Conflicts with
        concurrent transactions on the same items are retried with jitter.
        """
        items: list[Mapping[str, Any]] = [self._log_update(delivery_id, change, now_ms) for change in transitions]
        summary = self._summary_update(delivery_id, transitions, summary_values or {}, summary_add or {},
                                       summary_set_once or {})
        if summary is not None:
            items.append(summary)
        items.extend(extra_items)
        if not items:
            return True
        if len(items) > MAX_TRANSACTION_ITEMS:
            raise ValueError(f"a transaction holds at most {MAX_TRANSACTION_ITEMS} items, not {len(items)}")
        for attempt in range(attempts):
            try:
                self._dynamodb.transact_write_items(TransactItems=items)
                return True
            except self._dynamodb.exceptions.TransactionCanceledException as error:
                reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in reasons:
                    return False
                if "TransactionConflict" not in reasons and "ThrottlingError" not in reasons:
                    raise
            # bandit B311 (pseudo-random): retry jitter, not a secret.
            time.sleep(random.uniform(0, min(1.0, 0.02 * 2**attempt)))  # nosec B311
        raise TransactionFailed(f"delivery {delivery_id}: transaction kept conflicting")

    def _summary_key(self, delivery_id: str) -> dict[str, Any]:
        return {"delivery_id": {"S": delivery_id}, "part": {"S": SUMMARY}}

    def _log_update(self, delivery_id: str, change: LogTransition, now_ms: int) -> dict[str, Any]:
        expression = _Expression()
        status = expression.name("status")
        expression.sets.append(f"{status} = {expression.value(change.to_status)}")
        expression.sets.append(f"{expression.name('status_key')} = "
                               f"{expression.value(status_key(delivery_id, change.to_status))}")
        expression.sets.append(f"{expression.name('updated_at')} = {expression.value(now_ms)}")
        if change.failure:
            expression.sets.append(f"{expression.name('failure_type')} = {expression.value(change.failure[0])}")
            expression.sets.append(f"{expression.name('failure_reason')} = {expression.value(change.failure[1])}")
        for name, value in change.values.items():
            expression.sets.append(f"{expression.name(name)} = {expression.value(value)}")
        for name in change.remove:
            expression.removes.append(expression.name(name))
        condition = f"{status} = {expression.value(change.from_status)}"
        if change.condition:
            condition += f" AND ({change.condition})"
            expression.values.update({name: to_value(value) for name, value in change.condition_values.items()})
        return {"Update": {"TableName": self.logs_table,
                           "Key": {"delivery_id": {"S": delivery_id}, "log_id": {"N": str(change.log_id)}},
                           "ConditionExpression": condition, **expression.request()}}

    def _summary_update(self, delivery_id: str, transitions: list[LogTransition], values: Mapping[str, Any],
                        add: Mapping[str, int | float], set_once: Mapping[str, Any]) -> dict[str, Any] | None:
        statuses, failures = _summary_counters(transitions)
        if not (statuses or failures or values or add):
            return None
        expression = _Expression()
        for status, delta in statuses.items():
            path = expression.name("counts", status)
            expression.sets.append(f"{path} = if_not_exists({path}, {expression.value(0)}) + {expression.value(delta)}")
        for (failure_type, reason), delta in failures.items():
            path = expression.name("failures", failure_type, reason)
            expression.sets.append(f"{path} = if_not_exists({path}, {expression.value(0)}) + {expression.value(delta)}")
        for name, value in values.items():
            expression.sets.append(f"{expression.name(name)} = {expression.value(value)}")
        for name, value in set_once.items():
            path = expression.name(name)
            expression.sets.append(f"{path} = if_not_exists({path}, {expression.value(value)})")
        for name, amount in add.items():
            expression.adds.append(f"{expression.name(name)} {expression.value(amount)}")
        return {"Update": {"TableName": self.deliveries_table, "Key": self._summary_key(delivery_id),
                           "ConditionExpression": "attribute_exists(delivery_id)", **expression.request()}}
