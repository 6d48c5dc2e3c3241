"""A large, deterministic redirection-log load: many hits over a fixed set of distinct keys."""

from __future__ import annotations

from typing import Any

from chalicelib.data.deliveries import DeliveryStore
from chalicelib.settings import get_settings
from tests.tracking_harness import put_log
from tests.tracking_logs import CHROME, GMAIL_PROXY, IPHONE_MAIL, record

T0 = 1_740_823_200_000  # 2025-03-01 10:00:00 UTC
SPAN_MS = 30 * 60 * 1000  # every hit within 30 minutes: 6 five-minute buckets
USER_AGENTS = (CHROME, IPHONE_MAIL, GMAIL_PROXY,
               "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.5.0",
               "Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
               "Mobile Safari/537.36")
LINKS = (4, 5, 6)


def create_recipients(delivery_id: str, recipients: int) -> None:
    settings = get_settings()
    store = DeliveryStore(settings.deliveries_table, settings.delivery_logs_table)
    store.create(delivery_id, {"name": "load", "state": "finished", "created_at": 1, "recipients": recipients,
                               "counts": {"sent": recipients}},
                 {"subject": "s"}, {"urls": {str(url_id): {"url": f"https://example.com/{url_id}", "type": "click",
                                                           "label": f"link {url_id}", "placeholders": []}
                                             for url_id in (1, 2, 3, *LINKS)}})
    store.put_logs(delivery_id, ({"log_id": log_id, "recipient_id": f"load-{log_id}", "email": f"{log_id}@x.example",
                                  "status": "sent"} for log_id in range(1, recipients + 1)))


def load_records(delivery_id: str, recipients: int, hits_per_recipient: int, salt: int = 0) -> list[dict[str, Any]]:
    """Opens and clicks spread over recipients, links, user agents and 30 minutes; deterministic."""
    records = []
    for log_id in range(1, recipients + 1):
        for index in range(hits_per_recipient):
            serial = (salt * 1_000_003 + log_id) * 1000 + index
            ts = T0 + (log_id * 7919 + index * 104_729 + salt * 15_485_863) % SPAN_MS
            if index % 3 == 0:
                records.append(record(kind="open", delivery_id=delivery_id, log_id=log_id, ts=ts,
                                      ua=USER_AGENTS[(log_id + index) % len(USER_AGENTS)],
                                      the_hit_id=f"{ts:012x}{serial:020x}"))
            else:
                records.append(record(kind="click", delivery_id=delivery_id, log_id=log_id,
                                      url_id=LINKS[(log_id + index) % len(LINKS)], ts=ts,
                                      ua=USER_AGENTS[(log_id * 3 + index) % len(USER_AGENTS)],
                                      the_hit_id=f"{ts:012x}{serial:020x}"))
    return records


def put_load(records: list[dict[str, Any]], objects: int, prefix: str = "load") -> list[str]:
    """The records, round robin, in `objects` gzip log objects."""
    return [put_log(f"{prefix}-{index:04d}", records[index::objects], T0, compress=True) for index in range(objects)]
