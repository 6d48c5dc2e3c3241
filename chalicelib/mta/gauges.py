"""The delivery monitor: every minute, how the deliveries that should be sending stand, as metrics.

Campaign alerts on a delivery "too long in start pending", which happens when
no send worker runs: then no worker can say so. This scheduled function
(app.py: `delivery_monitor`, every minute) looks at the deliveries table
instead and emits, every time, even when all are 0 (chalicelib/metrics.py):

    OldestStartPendingSeconds  how long the longest-waiting delivery has been
                               in start_pending (alarm delivery-stuck-start-pending)
    DeliveriesSending          deliveries that should be sending: start_pending
                               or in_progress (paused ones are not). The
                               sending-throughput-low alarm judges throughput
                               only over periods this stayed above 0 throughout
                               (its Minimum), so a trickle of small deliveries
                               that finish in seconds never reads as slow sending
    DeliveriesStalled          of those, the ones that have not moved for
                               `send_stall_seconds` (the API's job_stalled rule,
                               monitoring.stalled_since): a delivery whose
                               workers died while others send normally

Two Queries on the deliveries' by-state index (start_pending, in_progress),
oldest first, never a Scan; few deliveries are sending at any one time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib import metrics
from chalicelib.clock import now_ms as _now_ms  # tests replace _now_ms
from chalicelib.data.deliveries import DeliveryStore
from chalicelib.mta import states
from chalicelib.mta.monitoring import stalled_since
from chalicelib.settings import Settings, get_settings


@dataclass(frozen=True)
class SendingGauges:
    oldest_start_pending_seconds: float
    sending: int
    stalled: int

    def emit(self) -> None:
        metrics.emit(metrics.OLDEST_START_PENDING, self.oldest_start_pending_seconds, metrics.SECONDS)
        metrics.emit(metrics.DELIVERIES_SENDING, self.sending)
        metrics.emit(metrics.DELIVERIES_STALLED, self.stalled)


def measure(store: DeliveryStore, settings: Settings, now_ms: int) -> SendingGauges:
    """The gauges now, from the deliveries in start_pending and in_progress."""
    pending = list(store.all_in_state(states.START_PENDING))
    sending = pending + list(store.all_in_state(states.IN_PROGRESS))
    oldest = max(0, now_ms - int(pending[0]["state_since"])) / 1000 if pending else 0.0
    stalled = sum(1 for summary in sending if stalled_since(summary, settings, now_ms) is not None)
    return SendingGauges(oldest, len(sending), stalled)


def scheduled_run(event: Any, context: Any) -> dict[str, Any]:
    """The scheduled Lambda's entry point (app.py): measure and emit (flushed by the middleware)."""
    settings = get_settings()
    gauges = measure(DeliveryStore(settings.deliveries_table, settings.delivery_logs_table), settings, _now_ms())
    gauges.emit()
    return {"oldest_start_pending_seconds": gauges.oldest_start_pending_seconds, "sending": gauges.sending,
            "stalled": gauges.stalled}
