"""Building a delivery with a known hit pattern for the report tests, and counting what a report reads."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from chalicelib.data.deliveries import DeliveryStore
from chalicelib.settings import get_settings
from tests.tracking_harness import FakeClock, put_log, tap, workflow

T0 = 1_740_823_200_000  # 2025-03-01 10:00:00 UTC: a whole hour, so windows and hours align
MINUTE = 60_000
HTML = ('<p>Hello {{first_name}},</p><p><a href="https://shop.example.com/sale?u={{id}}">Sale</a> '
        '<a href="https://shop.example.com/new">New</a></p><p><a href="{{unsubscribe_url}}">stop</a></p>')


def send(api: Any, mta: Any, emails: list[str], html: str = HTML, text: str | None = None, **extra: Any) -> str:
    """A delivery to `emails` (recipient ids r1, r2, ...), sent through the MTA; its id."""
    body = {"name": "reports", "subject": "Hi {{first_name}}", "from_address": "news@example.com", "html": html,
            "recipients": [{"id": f"r{index}", "email": email, "attributes": {"first_name": f"Person {index}"}}
                           for index, email in enumerate(emails, start=1)], **extra}
    if text is not None:
        body["text"] = text
    response = api.post("/api/deliveries", body=body)
    assert response.status_code == 201, response.json_body
    delivery_id = response.json_body["id"]
    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 202
    mta.send()
    return delivery_id


def set_started(delivery_id: str, started_at: int) -> None:
    settings = get_settings()
    DeliveryStore(settings.deliveries_table, settings.delivery_logs_table).update_summary(
        delivery_id, {"started_at": started_at})


def play(records: list[dict[str, Any]], name: str = "hits") -> dict[str, Any]:
    """The records as one redirection log, then one tracking workflow run; its statistics."""
    latest = max(int(record["ts"]) for record in records)
    put_log(name, records, latest)
    statistics = workflow(FakeClock(latest / 1000 + 600)).run()
    assert statistics["status"] == "completed", statistics
    return statistics


@contextmanager
def reads() -> Iterator[dict[str, int]]:
    """The AWS calls made inside the block, as {"Service.Operation": count} (filled when the block ends)."""
    counted: dict[str, int] = {}
    with tap() as observed:
        yield counted
    counted.update({f"{service}.{operation}": count for (service, operation), count in observed.calls.items()})
