"""Creating deliveries.

Creation validates and prepares once: links found and numbered, the content
turned into a template and one message rendered and encoded with the first
usable recipient's values (what cannot be sent is refused now, not at
sending time), the affinity checked, one delivery log per
recipient (prepared, or ignored with its reason: chalicelib/mta/recipients.py).
Sending is a job of the MTA (chalicelib/mta/): jobs.py starts it, worker.py
renders each recipient's message from the template and hands it to SES.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from chalicelib.clock import now_ms
from chalicelib.data.deliveries import DeliveryExists, DeliveryStore
from chalicelib.deliveries.compose import trial_encode
from chalicelib.deliveries.links import ContentError, UrlOverride, prepare_content
from chalicelib.deliveries.models import DeliveryIn
from chalicelib.errors import AffinityNotConfigured, InvalidField, NotFound
from chalicelib.mta import affinities, recipients, states, statuses
from chalicelib.mta.reasons import FAILURE_TYPES, Failure
from chalicelib.retention import expires_at_epoch
from chalicelib.settings import Settings

logger = logging.getLogger("sendtrail.deliveries")

DRAFT = states.DRAFT


def delivery_store(settings: Settings) -> DeliveryStore:
    return DeliveryStore(settings.deliveries_table, settings.delivery_logs_table)


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
    overrides = [UrlOverride(match=o.match, mode=o.mode, type=o.type, label=o.label, category=o.category)
                 for o in delivery.tracking.urls]
    excluded = recipients.exclusions(recipient.email for recipient in delivery.recipients)
    content: dict[str, Any] = {"subject": delivery.subject, "from_address": delivery.from_address}
    try:
        prepared = prepare_content(delivery.html, delivery.text, tracking_enabled=delivery.tracking.enabled,
                                   track_opens=delivery.tracking.opens, overrides=overrides,
                                   honeypot=delivery.tracking.honeypot)
        content["prepared"] = prepared.to_dict()
        usable = [recipient for recipient, failure in zip(delivery.recipients, excluded, strict=True)
                  if failure is None]
        sample = usable[0] if usable else delivery.recipients[0]
        trial_encode(content, sample.attributes, sample.email if usable else "sample@example.com")
    except ContentError as error:
        raise InvalidField(error.field, str(error)) from None
    try:
        affinity = affinities.check(delivery.affinity, settings)
    except AffinityNotConfigured as error:
        raise InvalidField("affinity", str(error)) from None
    counts = {status: 0 for status in statuses.STATUSES}
    failures: dict[str, dict[str, int]] = {failure_type: {} for failure_type in FAILURE_TYPES}
    for failure in excluded:
        if failure is None:
            counts[statuses.PREPARED] += 1
        else:
            counts[statuses.IGNORED_STATUS] += 1
            failures[failure.type][failure.reason] = failures[failure.type].get(failure.reason, 0) + 1
    store = store or delivery_store(settings)
    created_at = now_ms()
    summary = {
        "name": delivery.name,
        "subject": delivery.subject,
        "from_address": delivery.from_address,
        "affinity": affinity.name,
        "configuration_set": affinity.configuration_set,
        "validity_days": delivery.validity_days or settings.default_validity_days,
        "tracking": {"enabled": delivery.tracking.enabled, "opens": delivery.tracking.opens,
                     "forward_query_params": delivery.tracking.forward_query_params,
                     "honeypot": delivery.tracking.honeypot},
        "state": DRAFT,
        "state_since": created_at,
        "created_at": created_at,
        "recipients": len(delivery.recipients),
        "counts": counts,
        "failures": failures,
        "logs_ready": False,
    }
    links: dict[str, Any] = {"urls": {
        str(url.url_id): {"url": url.url, "type": url.type, "label": url.label, "placeholders": list(url.placeholders),
                          "category": url.category}
        for url in prepared.urls
    }}
    if delivery.tracking.forward_query_params:
        links["forward_query_params"] = True  # read by the redirect (chalicelib/hits/endpoints.py)
    # Until it is sent (jobs.start sets the expiry again from then).
    expiry: dict[str, Any] = {"expires_at_epoch": expires_at_epoch(created_at, settings.tracking_retention_days)}
    log_expiry = expires_at_epoch(created_at, settings.delivery_log_retention_days)
    for _ in range(5):
        delivery_id = secrets.token_hex(8)
        try:
            store.create(delivery_id, {**summary, **expiry}, {**content, **expiry}, {**links, **expiry})
            break
        except DeliveryExists:
            continue
    else:  # pragma: no cover - five collisions of 64 random bits
        raise RuntimeError("could not draw an unused delivery id")
    store.put_logs(delivery_id, (
        {**_log(index, recipient, excluded[index - 1], created_at), "expires_at_epoch": log_expiry}
        for index, recipient in enumerate(delivery.recipients, start=1)
    ))
    store.update_summary(delivery_id, {"logs_ready": True})
    logger.info("delivery created", extra={"delivery_id": delivery_id, "recipients": len(delivery.recipients)})
    return delivery_id


MAX_QUERIES_PER_PAGE = 10


@dataclass(frozen=True)
class LogsPage:
    items: list[dict[str, Any]]
    next: dict[str, Any] | None  # where the following page starts, or None on the last


def logs_page(store: DeliveryStore, delivery_id: str, limit: int, status: str | None = None,
              reason: str | None = None, cursor: Mapping[str, Any] | None = None) -> LogsPage:
    """A delivery's logs by log id, a page at a time; `status` reads one status (an index), `reason` filters.

    A reason without a status reads the failed logs, then the ignored ones
    (the statuses that carry a reason). Pages are filled up to `limit`, with
    at most MAX_QUERIES_PER_PAGE reads (a rare reason may give a short page
    and a `next`). NotFound for an unknown delivery.
    """
    if store.get_summary(delivery_id) is None:
        raise NotFound(f"no delivery {delivery_id}")
    cursor = cursor or {}
    order: list[str | None] = [status] if status else ([statuses.FAILED, statuses.IGNORED_STATUS] if reason else [None])
    position = order.index(cursor.get("s")) if cursor.get("s") in order else 0
    start = cursor.get("k")
    items: list[dict[str, Any]] = []
    for _ in range(MAX_QUERIES_PER_PAGE):
        if position >= len(order) or len(items) >= limit:
            break
        page, start = store.logs_page(delivery_id, order[position], limit - len(items), start, reason)
        items.extend(page)
        if start is None:
            position, start = position + 1, None
    more = position < len(order)
    following = {"s": order[position], "k": start} if more and start else {"s": order[position]} if more else None
    return LogsPage(items, following)


def _log(log_id: int, recipient: Any, failure: Optional[Failure], created_at: int) -> dict[str, Any]:
    """A new delivery log: prepared, or ignored with its failure (type, reason, detail)."""
    log: dict[str, Any] = {"log_id": log_id, "recipient_id": recipient.id, "email": recipient.email,
                           "attributes": recipient.attributes, "status": statuses.PREPARED, "updated_at": created_at}
    if failure is not None:
        log.update(status=statuses.IGNORED_STATUS, failure_type=failure.type, failure_reason=failure.reason,
                   failure_detail=failure.detail)
    return log
