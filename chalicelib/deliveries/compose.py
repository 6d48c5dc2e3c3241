"""One recipient's message, from the delivery's prepared content."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from chalicelib.deliveries.links import PreparedContent, render, render_subject
from chalicelib.deliveries.tracked_links import RecipientLinks


@dataclass(frozen=True)
class ComposedMessage:
    subject: str
    html: str
    text: str | None
    headers: dict[str, str] = field(default_factory=dict)


def compose(content: Mapping[str, Any], log: Mapping[str, Any], links: RecipientLinks) -> ComposedMessage:
    """Render subject, HTML and text, and the RFC 8058 one-click unsubscribe headers."""
    prepared = PreparedContent.from_dict(content["prepared"])
    attributes = log.get("attributes") or {}
    html, text = render(prepared, attributes, links)
    return ComposedMessage(
        subject=render_subject(content["subject"], attributes),
        html=html,
        text=text,
        headers={
            "List-Unsubscribe": f"<{links.unsubscribe()}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
