"""Creating and sending deliveries.

Creation validates and prepares once: links found and numbered, the content
turned into a template, one delivery log per recipient. Sending renders each
recipient's message from that template (tokens minted per recipient) and
hands it to SES.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from chalicelib.data.deliveries import DeliveryExists, DeliveryStore
from chalicelib.data.mailer import send_raw
from chalicelib.deliveries.compose import compose
from chalicelib.deliveries.links import ContentError, UrlOverride, prepare_content
from chalicelib.deliveries.mime import build_mime
from chalicelib.deliveries.models import DeliveryIn
from chalicelib.deliveries.tracked_links import RecipientLinks
from chalicelib.errors import Conflict, InvalidField, NotFound
from chalicelib.settings import Settings

logger = logging.getLogger("sendtrail.deliveries")

DAY_MS = 86_400_000
DRAFT = "draft"


def delivery_store(settings: Settings) -> DeliveryStore:
    return DeliveryStore(settings.deliveries_table, settings.delivery_logs_table)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _check_limits(delivery: DeliveryIn, settings: Settings) -> None:
    if len(delivery.html.encode("utf-8")) > settings.max_html_bytes:
        raise InvalidField("html", f"html is larger than {settings.max_html_bytes} bytes")
    if delivery.text is not None and len(delivery.text.encode("utf-8")) > settings.max_html_bytes:
        raise InvalidField("text", f"text is larger than {settings.max_html_bytes} bytes")
    if len(delivery.recipients) > settings.max_recipients_per_request:
        raise InvalidField("recipients", f"at most {settings.max_recipients_per_request} recipients per request")
    repeated = delivery.repeated_recipient_index()
    if repeated is not None:
        raise InvalidField(f"recipients[{repeated}].id", "this recipient id is already used in this delivery")


def create_delivery(delivery: DeliveryIn, settings: Settings, store: DeliveryStore | None = None) -> str:
    """Validate, prepare and store a delivery; returns its id."""
    _check_limits(delivery, settings)
    overrides = [UrlOverride(match=o.match, mode=o.mode, type=o.type, label=o.label) for o in delivery.tracking.urls]
    try:
        prepared = prepare_content(delivery.html, delivery.text, tracking_enabled=delivery.tracking.enabled,
                                   track_opens=delivery.tracking.opens, overrides=overrides)
    except ContentError as error:
        raise InvalidField(error.field, str(error)) from None
    store = store or delivery_store(settings)
    created_at = _now_ms()
    summary = {
        "name": delivery.name,
        "subject": delivery.subject,
        "from_address": delivery.from_address,
        "affinity": delivery.affinity,
        "validity_days": delivery.validity_days or settings.default_validity_days,
        "tracking": {"enabled": delivery.tracking.enabled, "opens": delivery.tracking.opens},
        "state": DRAFT,
        "created_at": created_at,
        "recipients": len(delivery.recipients),
    }
    content = {"subject": delivery.subject, "from_address": delivery.from_address, "prepared": prepared.to_dict()}
    links = {"urls": {
        str(url.url_id): {"url": url.url, "type": url.type, "label": url.label, "placeholders": list(url.placeholders)}
        for url in prepared.urls
    }}
    for _ in range(5):
        delivery_id = secrets.token_hex(8)
        try:
            store.create(delivery_id, summary, content, links)
            break
        except DeliveryExists:
            continue
    else:  # pragma: no cover - five collisions of 64 random bits
        raise RuntimeError("could not draw an unused delivery id")
    store.put_logs(delivery_id, (
        {"log_id": index, "recipient_id": recipient.id, "email": recipient.email,
         "attributes": recipient.attributes, "status": "prepared"}
        for index, recipient in enumerate(delivery.recipients, start=1)
    ))
    logger.info("delivery created", extra={"delivery_id": delivery_id, "recipients": len(delivery.recipients)})
    return delivery_id


def send_delivery(delivery_id: str, base_url: str, settings: Settings,
                  store: DeliveryStore | None = None) -> dict[str, Any]:
    """Send one message per recipient through SES; returns the updated summary."""
    store = store or delivery_store(settings)
    summary = store.get_summary(delivery_id, consistent=True)
    if summary is None:
        raise NotFound(f"no delivery {delivery_id}")
    started_at = _now_ms()
    if not store.update_summary(delivery_id, {"state": "in_progress", "started_at": started_at,
                                              "base_url": base_url}, only_if_state_in=[DRAFT]):
        raise Conflict(f"delivery {delivery_id} is {summary.get('state')}, not {DRAFT}: it was already sent")
    store.set_links_expiry(delivery_id, started_at + int(summary["validity_days"]) * DAY_MS)
    content = store.get_content(delivery_id) or {}
    keyring = settings.keyring()
    counts = {"sent": 0, "failed": 0}
    for log in store.iter_logs(delivery_id, consistent=True):
        links = RecipientLinks(base_url, keyring, delivery_id, int(log["log_id"]))
        message = compose(content, log, links)
        raw = build_mime(content["from_address"], log["email"], message.subject, message.html, message.text,
                         message.headers)
        try:
            message_id = send_raw(content["from_address"], log["email"], raw, summary.get("affinity"),
                                  {"delivery_id": delivery_id, "log_id": str(log["log_id"])})
        except Exception as error:  # noqa: BLE001 - one refused message must not stop the others
            logger.warning("SES refused a message", extra={"delivery_id": delivery_id, "log_id": log["log_id"]})
            store.update_log(delivery_id, int(log["log_id"]), {"status": "failed", "failure_type": "soft",
                                                               "failure_detail": str(error)[:500]})
            counts["failed"] += 1
            continue
        store.update_log(delivery_id, int(log["log_id"]), {"status": "sent", "message_id": message_id,
                                                           "sent_at": _now_ms()})
        counts["sent"] += 1
    store.update_summary(delivery_id, {"state": "finished", "finished_at": _now_ms(), "counts": counts})
    return store.get_summary(delivery_id, consistent=True) or {}
