"""The mirror page: a recipient's message as HTML, rendered as it was sent."""

from __future__ import annotations

from chalicelib.deliveries.compose import compose
from chalicelib.deliveries.service import delivery_store
from chalicelib.deliveries.tracked_links import RecipientLinks
from chalicelib.settings import get_settings


def render_mirror(delivery_id: str, log_id: int, base_url: str) -> str | None:
    """The HTML of (delivery, log id)'s message, or None if either is unknown."""
    settings = get_settings()
    store = delivery_store(settings)
    content = store.get_content(delivery_id)
    log = store.get_log(delivery_id, log_id)
    if content is None or log is None:
        return None
    keyring = settings.keyring()
    return compose(content, log, RecipientLinks(base_url, keyring, delivery_id, log_id)).html
