"""One recipient's message, from the delivery's prepared content."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from chalicelib.deliveries.links import ContentError, LinkMaker, PreparedContent, render, render_subject
from chalicelib.deliveries.mime import build_mime


@dataclass(frozen=True)
class ComposedMessage:
    subject: str
    html: str
    text: str | None
    headers: dict[str, str] = field(default_factory=dict)


def compose(content: Mapping[str, Any], log: Mapping[str, Any], links: LinkMaker) -> ComposedMessage:
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


class SampleLinks:
    """A LinkMaker whose URLs have the shape of real ones, for the trial encoding at creation."""

    _BASE = "https://tracking.example/"
    _TOKEN = "A" * 40  # as long as a click token

    def click(self, url_id: int, params: Mapping[str, str]) -> str:
        return f"{self._BASE}r/{self._TOKEN}" + ("?p=" + self._TOKEN if params else "")

    def open(self) -> str:
        return f"{self._BASE}o/{self._TOKEN}"

    def unsubscribe(self) -> str:
        return f"{self._BASE}u/{self._TOKEN}"

    def mirror(self) -> str:
        return f"{self._BASE}m/{self._TOKEN}"


def trial_encode(content: Mapping[str, Any], attributes: Mapping[str, Any], to_address: str) -> None:
    """Render and encode one message with sample values, as the send worker will.

    Catches at creation what would otherwise fail at sending time (e.g. a
    lone surrogate in the HTML); raises ContentError naming the part.
    """
    message = compose(content, {"attributes": attributes}, SampleLinks())
    for part, value in (("subject", message.subject), ("html", message.html), ("text", message.text)):
        try:
            (value or "").encode("utf-8")
        except UnicodeEncodeError as error:
            raise ContentError(part, f"{part} cannot be encoded as UTF-8 (U+{ord(error.object[error.start]):04X} "
                                     f"at position {error.start} of the rendered {part})") from None
    try:
        build_mime(content["from_address"], to_address, message.subject, message.html, message.text, message.headers)
    except ValueError as error:
        raise ContentError("body", f"the message cannot be encoded: {error}") from None
