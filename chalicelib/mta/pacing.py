"""Keeping to a send rate, and backing off when SES throttles anyway.

`Pacer` spaces calls `1 / rate` seconds apart (no bursts: SES measures the
max send rate per second). `Backoff` is exponential backoff with full
jitter (AWS's recommendation: each wait is uniform in [0, min(cap, base x
2^attempt)]), so workers throttled together do not retry together. Both take
the clock, the sleep and the random source as arguments, so tests run them
on a fake clock.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass
class Pacer:
    rate_per_second: float
    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep
    _next: float | None = None

    def wait(self) -> None:
        """Return when the next call may go (at once for the first)."""
        now = self.clock()
        if self._next is not None and now < self._next:
            self.sleep(self._next - now)
            now = self._next
        self._next = now + 1.0 / self.rate_per_second


@dataclass
class Backoff:
    base_seconds: float
    max_seconds: float
    sleep: Sleep = time.sleep
    random: Callable[[], float] = field(default=random.random)
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** self.attempt))
        self.attempt += 1
        return ceiling * self.random()

    def reset(self) -> None:
        self.attempt = 0
