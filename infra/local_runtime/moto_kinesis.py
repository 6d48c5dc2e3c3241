"""moto's Kinesis shards, made safe for the local stack's threads.

moto's Shard.put_record reads the shard's last sequence number and then
inserts after it ("not safe for concurrency", says moto), and get_records
iterates the shard's records: the local stack's threaded server runs the
hit endpoints' puts and the Firehose pump's reads at once, so under the
demo's traffic two puts can take the same sequence number (one hit
overwrites another) and a read fails with "OrderedDict mutated during
iteration". Kinesis itself orders and keeps every put. This patch holds one
lock per shard around moto's own put_record and get_records (nothing else
changes). Lambda code never imports this; the local stack and the tests
install it with moto.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable

_installed: dict[str, Callable[..., Any]] = {}
_locks_guard = threading.Lock()


def _lock(shard: Any) -> threading.Lock:
    lock = shard.__dict__.get("_sendtrail_lock")
    if lock is None:
        with _locks_guard:
            lock = shard.__dict__.setdefault("_sendtrail_lock", threading.Lock())
    return lock


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(shard: Any, *args: Any, **kwargs: Any) -> Any:
        with _lock(shard):
            return method(shard, *args, **kwargs)

    return wrapper


def install() -> None:
    """Idempotent."""
    from moto.kinesis.models import Shard

    for name in ("put_record", "get_records"):
        if name not in _installed:
            _installed[name] = getattr(Shard, name)
            setattr(Shard, name, _locked(_installed[name]))
