"""moto's DynamoDB transactions, made to cost what they cost in AWS: the items they touch.

moto implements TransactWriteItems by deep-copying every table a
transaction names before applying it, to roll back on failure. A
transaction that moves one delivery log and the delivery's counters then
copies the whole delivery-logs table: 5 s per transaction at 500 logs
(cProfile), so a 5,000-recipient delivery never finished on the local stack.
DynamoDB itself locks and rolls back only the transaction's items.

This patch keeps moto's implementation (its validation, conditions and
errors) and changes only the rollback: while a transaction runs, the
whole-table copy is skipped, and a deep copy of each item the transaction
names is kept instead; on failure those items are put back exactly as they
were (an item that did not exist is removed again). The semantics are
unchanged: a transaction applies completely or not at all. Lambda code never
imports this; the local stack and the tests install it with moto.

And one request at a time: moto's server answers each request in a thread
of its own, and its update_item reads an item, computes the new one and
stores it without a lock, so two concurrent ADDs to one counter could both
read 5 and store 6 (a large demo's counts came out a few short;
tests/unit/test_moto_dynamodb.py lost about 4% of 900 updates). DynamoDB
applies each write atomically; one lock around moto's DynamoDB request
handler does too (the local stack's DynamoDB load is a few hundred
requests a second, well within one thread).

And each update expression parsed once: moto parses an update's
UpdateExpression twice per item (the request's validation, then the update
itself), and the parse was a fifth of a send worker's DynamoDB time
(cProfile of 1,000 recipients: 24 s of 122). sendtrail's expressions name
attributes and values by placeholders (#a0, :v0), so a few hundred texts
recur; their parse trees are kept by text (the parse reads nothing else).
moto never changes a parse tree: its request validation only reads it, and
its UpdateExpressionValidator works on a deep copy (tests/unit/
test_moto_dynamodb.py fails if either stops being true).

And an update refused whole, as DynamoDB refuses it. moto 5.2.5 enforces
the 400 KB item limit on UpdateItem (ValidationException "Item size to
update has exceeded the maximum allowed size", past 405,000 bytes by its
own count), but only while it applies the update to the stored item, one
action at a time: the SETs and ADDs applied before the one that crossed the
limit stay (a refused write would then have written half its counters and
taken the run guard). DynamoDB writes nothing of a refused update; here the
item is put back as it was when moto's update_item fails (an item the
update created is removed again).
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any

_state = threading.local()
_installed: dict[str, Any] = {}
_requests = threading.RLock()  # one DynamoDB request at a time (see the module's docstring)
PARSED_UPDATE_EXPRESSIONS = 4096  # distinct update expression texts whose parse trees are kept


def _item_key(table: Any, operation: dict[str, Any]) -> tuple[Any, Any]:
    from moto.dynamodb.models.dynamo_type import DynamoType

    source = operation.get("Key") or operation.get("Item") or {}
    hash_value = DynamoType(source[table.hash_key_attr])
    range_value = DynamoType(source[table.range_key_attr]) if table.range_key_attr else None
    return hash_value, range_value


def _snapshot(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]]:
    saved = []
    for entry in transact_items:
        _, operation = next(iter(entry.items()))
        table = backend.tables.get(operation.get("TableName"))
        if table is None:
            continue
        try:
            hash_value, range_value = _item_key(table, operation)
        except KeyError:  # a malformed key: moto's own validation answers it, nothing to restore
            continue
        saved.append((table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))))
    return saved


def _restore(saved: list[tuple[Any, Any, Any, Any]]) -> None:
    for table, hash_value, range_value, item in reversed(saved):
        if table.range_key_attr:
            if item is None:
                table.items.get(hash_value, {}).pop(range_value, None)
            else:
                table.items[hash_value][range_value] = item
        elif item is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = item


def install() -> None:
    """Patch moto's DynamoDB backend and Table (idempotent)."""
    if _installed:
        return
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    original_transaction = DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = _snapshot(self, transact_items)
        _state.skip_table_copy = True
        try:
            original_transaction(self, transact_items)
        except Exception:
            _restore(saved)
            raise
        finally:
            _state.skip_table_copy = False

    def table_deepcopy(self: Any, memo: dict[int, Any]) -> Any:
        if getattr(_state, "skip_table_copy", False):
            return self  # moto's whole-table backup: the items are saved instead (above)
        clone = copy._reconstruct(self, memo, *self.__reduce_ex__(4))  # type: ignore[attr-defined]
        return clone

    from moto.dynamodb.responses import DynamoHandler

    original_call_action = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _requests:
            return original_call_action(self)

    # moto's parsing package is untyped (its modules say `type: ignore`), as moto's own import of it notes
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    original_make = UpdateExpressionParser.__dict__["make"]  # a classmethod

    @functools.lru_cache(maxsize=PARSED_UPDATE_EXPRESSIONS)
    def parsed(expression: str) -> Any:
        return original_make.__get__(None, UpdateExpressionParser)(expression)

    def make(cls: Any, expression_str: str) -> Any:
        return parsed(expression_str)  # shared: moto only reads it, or validates a deep copy (docstring)

    original_update = DynamoDBBackend.update_item

    def update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        saved = _snapshot(self, [{"Update": {"TableName": table_name, "Key": key}}])
        try:
            return original_update(self, table_name, key, *args, **kwargs)
        except Exception:
            _restore(saved)  # DynamoDB applies an update whole or not at all (see the module's docstring)
            raise

    _installed["update_item"] = (DynamoDBBackend, original_update)
    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]
    _installed["update_expression"] = (UpdateExpressionParser, original_make)
    UpdateExpressionParser.make = classmethod(make)
    _installed["call_action"] = (DynamoHandler, original_call_action)
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    _installed["transaction"] = (DynamoDBBackend, original_transaction)
    _installed["table"] = (Table, Table.__dict__.get("__deepcopy__"))
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    Table.__deepcopy__ = table_deepcopy  # type: ignore[attr-defined]
