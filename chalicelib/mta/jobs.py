"""Send jobs, the API's side: start, pause, resume and stop a delivery.

Starting checks the affinity (settings and SES), moves the delivery from
draft to start_pending and puts one message per chunk of recipients on the
send work queue: a chunk is a range of log ids (`{"delivery_id", "first",
"last"}`), so 100,000 recipients are 200 messages and 20 SendMessageBatch
calls, and no invocation ever holds the whole delivery. The workers
(worker.py) do the rest.

Pausing only changes the state: workers check it before each group of
messages and drop their chunk. Resuming queues every chunk again (chunks are
idempotent: a log already sent is skipped) and returns the delivery to
start_pending. Stopping queues every chunk again too: a worker that finds the
delivery stopped cancels the range's prepared logs, so the counts end exact.
Every impossible move is a 409 that says what the delivery is and what it
would need to be.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional

from chalicelib.data import send_queue
from chalicelib.data.deliveries import DeliveryStore
from chalicelib.errors import Conflict, NotFound
from chalicelib.mta import affinities, states
from chalicelib.retention import expires_at_epoch
from chalicelib.settings import Settings

logger = logging.getLogger("sendtrail.mta.jobs")
DAY_MS = 86_400_000
Clock = Callable[[], float]


def chunks(delivery_id: str, recipients: int, chunk_size: int) -> list[dict[str, Any]]:
    """The send work queue's messages for a delivery: consecutive log id ranges of `chunk_size`."""
    return [{"delivery_id": delivery_id, "first": first, "last": min(first + chunk_size - 1, recipients)}
            for first in range(1, recipients + 1, chunk_size)]


class SendJobs:
    def __init__(self, settings: Settings, store: Optional[DeliveryStore] = None, clock: Clock = time.time) -> None:
        self.settings = settings
        self.store = store or DeliveryStore(settings.deliveries_table, settings.delivery_logs_table)
        self.clock = clock

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _summary(self, delivery_id: str) -> dict[str, Any]:
        summary = self.store.get_summary(delivery_id, consistent=True)
        if summary is None:
            raise NotFound(f"no delivery {delivery_id}")
        return summary

    def _refuse(self, action: str, delivery_id: str) -> Conflict:
        state = self._summary(delivery_id).get("state", "")
        return Conflict(states.refusal(action, delivery_id, state))

    def _enqueue_all(self, delivery_id: str, summary: dict[str, Any]) -> None:
        send_queue.enqueue(self.settings.send_queue_url,
                           chunks(delivery_id, int(summary["recipients"]), self.settings.send_chunk_size))

    def start(self, delivery_id: str, base_url: str) -> dict[str, Any]:
        """draft -> start_pending, and its chunks on the queue."""
        summary = self._summary(delivery_id)
        if summary.get("state") != states.DRAFT:
            raise Conflict(states.refusal("send", delivery_id, summary.get("state", "")))
        if not summary.get("logs_ready", True):
            raise Conflict(f"delivery {delivery_id} was not completely created (its recipients were not all "
                           "stored): create it again")
        affinity = affinities.check(summary.get("affinity"), self.settings)
        now = self._now_ms()
        if not self.store.change_state(delivery_id, states.START_PENDING, [states.DRAFT], now, values={
                "base_url": base_url, "affinity": affinity.name, "configuration_set": affinity.configuration_set,
                "start_requested_at": now}):
            raise self._refuse("send", delivery_id)
        self.store.set_links_expiry(delivery_id, now + int(summary["validity_days"]) * DAY_MS)
        # Kept with its consolidated tracking, and at least as long as its links and unsubscribe links work.
        self.store.set_expiry(delivery_id, expires_at_epoch(now, max(
            self.settings.tracking_retention_days, int(summary["validity_days"]),
            self.settings.delivery_log_retention_days)))
        try:
            self._enqueue_all(delivery_id, summary)
        except Exception:
            self.store.change_state(delivery_id, states.DRAFT, [states.START_PENDING], self._now_ms())
            raise
        logger.info("send job started", extra={"delivery_id": delivery_id, "recipients": summary["recipients"]})
        return self._summary(delivery_id)

    def pause(self, delivery_id: str) -> dict[str, Any]:
        source, target = states.ACTIONS["pause"]
        if not self.store.change_state(delivery_id, target, source, self._now_ms(),
                                       values={"paused_at": self._now_ms()}):
            raise self._refuse("pause", delivery_id)
        return self._summary(delivery_id)

    def resume(self, delivery_id: str) -> dict[str, Any]:
        source, target = states.ACTIONS["resume"]
        summary = self._summary(delivery_id)
        if not self.store.change_state(delivery_id, target, source, self._now_ms(),
                                       values={"resumed_at": self._now_ms()}):
            raise self._refuse("resume", delivery_id)
        try:
            self._enqueue_all(delivery_id, summary)
        except Exception:
            self.store.change_state(delivery_id, states.PAUSED, [states.START_PENDING], self._now_ms())
            raise
        return self._summary(delivery_id)

    def stop(self, delivery_id: str) -> dict[str, Any]:
        """-> stopped (final); its chunks queued again for the workers to cancel what was not sent.

        The state changes first: a chunk a worker takes after that cancels. If
        queuing then fails (the API answers 503), the unsent logs stay
        prepared in the stopped delivery: nothing sends them, the counts say so.
        """
        source, target = states.ACTIONS["stop"]
        summary = self._summary(delivery_id)
        if not self.store.change_state(delivery_id, target, source, self._now_ms(),
                                       values={"stopped_at": self._now_ms()}):
            raise self._refuse("stop", delivery_id)
        self._enqueue_all(delivery_id, summary)
        return self._summary(delivery_id)
