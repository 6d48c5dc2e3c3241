"""Cutting a stream of requests into the batches an AWS API takes (25 DynamoDB writes, 10 SQS messages)."""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

Item = TypeVar("Item")


def batches(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Consecutive lists of at most `size` items (the last may be shorter), lazily."""
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
