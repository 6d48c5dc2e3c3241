"""How long each kind of record is kept: the one table README.md shows (a test compares them).

Each DynamoDB table of infra/template.yaml is listed with the setting whose
days its items live and the moment they count from; the code that writes
an item sets its `expires_at_epoch` (DynamoDB TTL) from the same setting.
Two kinds of item are kept on purpose, with the reason: an address's
suppression (an opt-out must hold for ever; an erased person's is a hash)
and the tracking workflow's checkpoint (one item, naming nobody).
"""

from __future__ import annotations

from typing import NamedTuple

DAY_SECONDS = 86_400


class Retention(NamedTuple):
    resource: str  # the template's logical id
    holds: str
    setting: str | None  # the Settings field with the days; None: kept (see `counted_from`)
    counted_from: str


RETENTION = (
    Retention("DeliveriesTable", "a delivery: name, content, URL table, counts", "tracking_retention_days",
              "its send start (its creation until then); at least as long as its links work"),
    Retention("DeliveryLogsTable", "a recipient's delivery log: address, attributes, status, SES's answers",
              "delivery_log_retention_days", "its message's sending (the delivery's creation until then)"),
    Retention("TrackingTable", "a recipient's hits in a delivery: URL, time, user agent, IP as configured",
              "tracking_retention_days", "their last hit"),
    Retention("TrackingStatsTable", "a delivery's consolidated tracking (counters, no person)",
              "tracking_retention_days", "their last update"),
    Retention("TrackingRunsTable", "a run's new hits of a range of a delivery's recipients, and its counters",
              "tracking_retention_days", "the run"),
    Retention("TrackingWorkflowTable", "which redirection log objects were processed", "tracking_retention_days",
              "their processing; the checkpoint item is kept"),
    Retention("RedirectionLogBucket", "redirection logs: each hit as recorded (S3 lifecycle)",
              "tracking_retention_days", "the object's writing"),
    Retention("AddressesTable", "an address's opt-out, quarantine, denylist and soft errors", None,
              "kept: a suppression must outlive every delivery; erasing a person keeps it as a keyed hash"),
)


def expires_at_epoch(from_ms: int, days: int) -> int:
    """The TTL attribute of an item kept `days` from `from_ms` (epoch seconds, as DynamoDB TTL wants)."""
    return from_ms // 1000 + days * DAY_SECONDS
