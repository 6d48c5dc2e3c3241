"""Hot clicks: the message as sent, each link with its share of the delivery's clicks.

The message is the prepared template (what every recipient got, before
their values): placeholders stay `{{name}}`, never one recipient's data;
the open pixel is taken out; sendtrail's own links become the
`{{unsubscribe_url}}` / `{{mirror_url}}` the author wrote. Links are found
with the HTML parser (deliveries.links.link_hrefs, the one that prepared
them). Each tracked click link gets its target back and a
`data-sendtrail-link="<url id>"` attribute where the page can put a badge.

Campaign's rule: opt-out and mirror links count in the total (the 100%)
but are not shown; their share is given apart so that the badges and it
add up to 100%. Four reads: summary, content, links, URL counters.
"""

from __future__ import annotations

import html as html_lib
import re
from typing import Any

from chalicelib.deliveries.links import (
    FILL_END_MARKER,
    FILL_START_MARKER,
    MIRROR_MARKER,
    OPEN_PIXEL,
    UNSUBSCRIBE_MARKER,
    URL_ID_OPEN,
    URL_TYPE_CLICK,
    link_hrefs,
)
from chalicelib.errors import NotFound
from chalicelib.reports.common import stores
from chalicelib.reports.models import HOT_LINK_ATTRIBUTE, HotClicks, HotLink, TextSegment
from chalicelib.reports.urls import url_counters
from chalicelib.settings import Settings
from chalicelib.tracking.indicators import percentage

_LINK_MARKER = re.compile(r"\{\{@link:([0-9]+)\}\}")
_AUTHOR_SPELLING = ((UNSUBSCRIBE_MARKER, "{{unsubscribe_url}}"), (MIRROR_MARKER, "{{mirror_url}}"),
                    (FILL_START_MARKER, ""), (FILL_END_MARKER, ""))


def _as_written(template: str) -> str:
    """Markers that are not click links, as the author wrote them (markers are fixed strings: content
    cannot hold "{{@", preparing refuses it)."""
    for marker, written in _AUTHOR_SPELLING:
        template = template.replace(marker, written)
    return template


def annotate_html(template: str, shown: set[int], urls: dict[int, str]) -> tuple[str, set[int]]:
    """The HTML template with every link's target restored, the shown ones marked; the shown url ids found."""
    parts, position, found = [], 0, set()
    for link in link_hrefs(template):
        match = _LINK_MARKER.fullmatch(link.href)
        if not match:
            continue
        url_id = int(match.group(1))
        quote = template[link.href_end:link.href_end + 1]
        quoted = quote in ("'", '"') and template[link.href_start - 1:link.href_start] == quote
        target = html_lib.escape(urls.get(url_id, ""), quote=True)
        parts += [template[position:link.href_start], target if quoted else f'"{target}"', quote if quoted else ""]
        if url_id in shown:
            found.add(url_id)
            parts.append(f' {HOT_LINK_ATTRIBUTE}="{url_id}"')
        position = link.href_end + (1 if quoted else 0)
    parts.append(template[position:])
    return _as_written("".join(parts).replace(OPEN_PIXEL, "")), found


def text_segments(template: str, shown: set[int], urls: dict[int, str]) -> tuple[list[TextSegment], set[int]]:
    """The text template in segments: literal text, and each link with its url id when shown."""
    segments: list[TextSegment] = []
    found: set[int] = set()
    position = 0
    for match in _LINK_MARKER.finditer(template):
        url_id = int(match.group(1))
        if match.start() > position:
            segments.append(TextSegment(text=_as_written(template[position:match.start()])))
        if url_id in shown:
            found.add(url_id)
            segments.append(TextSegment(text=urls.get(url_id, ""), url_id=url_id))
        else:
            segments.append(TextSegment(text=urls.get(url_id, "")))
        position = match.end()
    if position < len(template):
        segments.append(TextSegment(text=_as_written(template[position:])))
    return segments, found


def hot_clicks(delivery_id: str, settings: Settings | None = None) -> HotClicks:
    context = stores(settings)
    summary = context.summary(delivery_id)
    content = context.deliveries.get_content(delivery_id) or {}
    prepared = content.get("prepared")
    if not prepared:
        raise NotFound(f"delivery {delivery_id} has no content")
    links: dict[str, Any] = (context.deliveries.get_links(delivery_id) or {}).get("urls") or {}
    counters = url_counters(delivery_id, context)
    total = sum(counts[0] for url_id, counts in counters.items() if url_id != URL_ID_OPEN)
    urls = {int(key): str(entry.get("url", "")) for key, entry in links.items()}
    shown = {int(key) for key, entry in links.items()
             if entry.get("type", URL_TYPE_CLICK) == URL_TYPE_CLICK and int(key) != URL_ID_OPEN}
    html, in_html = annotate_html(str(prepared.get("html") or ""), shown, urls)
    text, in_text = (None, set()) if prepared.get("text") is None else text_segments(str(prepared["text"]), shown,
                                                                                      urls)
    rows = []
    for url_id in sorted(in_html | in_text):
        clicks, unique = counters.get(url_id, (0, 0, 0, 0))[:2]
        rows.append(HotLink(url_id=url_id, url=urls[url_id], label=str(links[str(url_id)].get("label", "")),
                            clicks_total=clicks, clicks_unique=unique, percent=percentage(clicks, total),
                            in_html=url_id in in_html, in_text=url_id in in_text))
    shown_clicks = sum(row.clicks_total for row in rows)
    return HotClicks(delivery_id=delivery_id, subject=str(summary.get("subject", "")), clicks_total=total,
                     links=rows, shown_percent=percentage(shown_clicks, total), hidden_clicks=total - shown_clicks,
                     hidden_percent=percentage(total - shown_clicks, total), html=html, text=text)

