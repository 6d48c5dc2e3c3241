"""Each delivery's URL table, cached in the container.

When warm, the redirect endpoint makes one network call (the Kinesis put)
and no database read. The target cannot travel in the link itself (a click
token is at most 48 characters), so the URL table is read once per delivery
per container and kept: it is written once, when the delivery is prepared,
and never changes afterwards. The only later change is the expiry date, set
when sending starts, which is why entries live `ttl_seconds` rather than for
ever.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Callable

Loader = Callable[[str], "dict[str, Any] | None"]


class LinkTableCache:
    def __init__(self, loader: Loader, ttl_seconds: float = 300.0, missing_ttl_seconds: float = 30.0,
                 max_entries: int = 512, clock: Callable[[], float] = time.monotonic) -> None:
        self._loader = loader
        self._ttl = ttl_seconds
        self._missing_ttl = missing_ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, dict[str, Any] | None]] = OrderedDict()

    def get(self, delivery_id: str) -> dict[str, Any] | None:
        now = self._clock()
        entry = self._entries.get(delivery_id)
        if entry is not None and entry[0] > now:
            self._entries.move_to_end(delivery_id)
            return entry[1]
        table = self._loader(delivery_id)
        self._entries[delivery_id] = (now + (self._ttl if table is not None else self._missing_ttl), table)
        self._entries.move_to_end(delivery_id)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return table

    def clear(self) -> None:
        self._entries.clear()
