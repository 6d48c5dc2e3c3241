"""What botocore's retry modes cannot do, in one place.

Every client retries throttles, 5xx answers and dropped connections itself
(chalicelib/data/aws.py: standard or adaptive mode, max_attempts in the
client's Config), and paginators walk paged results. Two kinds of failure
reach the caller as a successful response or as a plain client error,
which no retry mode sees:

- a batch call that succeeds with part of its work left over (DynamoDB's
  UnprocessedItems and UnprocessedKeys, SQS's Failed entries):
  `until_done` sends the leftover again, with jittered exponential
  backoff, a bounded number of times;
- a DynamoDB transaction cancelled with reasons: a failed condition is an
  answer, a conflict with a concurrent transaction (or a throttled item)
  is worth another try (`transact`).

Standard library only: the hit path imports the data layer.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable, Mapping, Sequence, TypeVar

Pending = TypeVar("Pending")
RETRYABLE_CANCELLATIONS = frozenset({"TransactionConflict", "ThrottlingError"})


class LeftoverError(RuntimeError):
    """AWS kept leaving part of a batch unprocessed."""


class TransactionFailed(RuntimeError):
    """DynamoDB kept cancelling a transaction for conflicts with concurrent ones."""


def backoff(attempt: int, base: float, cap: float) -> float:
    """Full-jitter exponential backoff: a random delay below min(cap, base * 2**attempt) seconds."""
    # bandit B311 (pseudo-random): retry jitter, not a secret.
    return random.uniform(0, min(cap, base * 2**attempt))  # nosec B311


def until_done(send: Callable[[Pending], Pending], pending: Pending, attempts: int, what: str,
               base: float = 0.05, cap: float = 2.0, sleep: Callable[[float], None] = time.sleep) -> None:
    """Call `send(pending)`, which returns what is left over (empty when nothing is), until nothing is.

    LeftoverError (naming `what`) when something is still left after `attempts` calls.
    """
    for attempt in range(attempts):
        pending = send(pending)
        if not pending:
            return
        if attempt + 1 < attempts:
            sleep(backoff(attempt, base, cap))
    raise LeftoverError(f"{what}: still unprocessed after {attempts} attempts")


def cancellation_reasons(error: Any) -> list[str]:
    """The reason codes of a TransactionCanceledException, one per item ('None' for an item that was fine)."""
    return [str(reason.get("Code")) for reason in error.response.get("CancellationReasons", [])]


def transact(dynamodb: Any, items: Sequence[Mapping[str, Any]], attempts: int = 8, what: str = "transaction",
             sleep: Callable[[float], None] = time.sleep) -> bool:
    """TransactWriteItems: True when written, False when an item's condition failed (nothing written).

    A cancellation for conflicts with concurrent transactions (or throttled
    items) is tried again, up to `attempts` times in all, then
    TransactionFailed; any other cancellation is raised as it came.
    """
    for attempt in range(attempts):
        try:
            dynamodb.transact_write_items(TransactItems=list(items))
            return True
        except dynamodb.exceptions.TransactionCanceledException as error:
            reasons = cancellation_reasons(error)
            if "ConditionalCheckFailed" in reasons:
                return False
            if not RETRYABLE_CANCELLATIONS.intersection(reasons):
                raise
        if attempt + 1 < attempts:
            sleep(backoff(attempt, 0.02, 1.0))
    raise TransactionFailed(f"{what}: kept conflicting with concurrent transactions")
