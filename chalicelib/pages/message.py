"""The message shown by hot clicks: the author's HTML with a percentage badge on each link.

The HTML is shown in a sandboxed iframe (srcdoc, no scripts, no same
origin), so nothing in it can act on the dashboard. It is also made quiet
for the preview: nothing in it may load from elsewhere (an image fetched
from the sender's server would tell it someone looked, and the page's
policy forbids it anyway), and what the sandbox would refuse (scripts,
event handlers, embedded frames, refreshes) is left out rather than
refused noisily. The rest of the markup is kept byte for byte.
"""

from __future__ import annotations

import re
from html import escape
from html.parser import HTMLParser

DROPPED_ELEMENTS = frozenset({"script", "iframe", "frame", "frameset", "object", "embed", "applet", "base",
                              "link", "noscript", "template", "portal"})
REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
CSS_REMOTE_URL = re.compile(r"url\(\s*(['\"]?)\s*(https?:)?//[^)]*\)", re.IGNORECASE)
DOCTYPE = re.compile(r"\s*<!doctype[^>]*>", re.IGNORECASE)
CSS_IMPORT = re.compile(r"@import[^;]*;?", re.IGNORECASE)
BADGE_CSS = (".sendtrail-badge{display:inline-block;margin:0 4px;padding:1px 6px;border-radius:9px;background:#cf222e;"
             "color:#fff;font:700 12px/1.5 'Liberation Sans',Arial,sans-serif;text-decoration:none;"
             "vertical-align:middle;white-space:nowrap}"
             "img[data-sendtrail-remote]{outline:1px dashed #9aa5b1;background:#eef2f6;min-height:24px}")


def _attribute_text(name: str, value: str | None) -> str:
    return f" {name}" if value is None else f' {name}="{escape(value, quote=True)}"'


class _Preview(HTMLParser):
    def __init__(self, source: str, marker: str, badges: dict[str, str]) -> None:
        super().__init__(convert_charrefs=False)
        self.source = source
        self.marker = marker
        self.badges = badges
        self.line_starts = [0] + [match.end() for match in re.finditer("\n", source)]
        self.edits: list[tuple[int, int, str]] = []
        self.dropping: str | None = None
        self.drop_from = 0
        self.head_end: int | None = None

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def _start(self, tag: str, attributes: list[tuple[str, str | None]], closed: bool) -> None:
        start = self._offset()
        text = self.get_starttag_text() or ""
        end = start + len(text)
        if self.dropping:
            return
        if tag in DROPPED_ELEMENTS or (tag == "meta" and any(name == "http-equiv" for name, _ in attributes)):
            if closed or tag in ("base", "link", "meta", "embed", "frame"):
                self.edits.append((start, end, ""))
            else:
                self.dropping, self.drop_from = tag, start
            return
        kept: list[tuple[str, str | None]] = []
        changed = False
        for name, value in attributes:
            if name.startswith("on") or name in ("srcset", "background", "ping", "formaction") or (
                    name == "src" and value is not None and REMOTE.match(value)):
                changed = True
                if name == "src":
                    kept.append(("data-sendtrail-remote", None))
                continue
            if name == "style" and value and (CSS_REMOTE_URL.search(value) or "@import" in value.lower()):
                changed = True
                value = CSS_IMPORT.sub("", CSS_REMOTE_URL.sub("none", value))
            kept.append((name, value))
        badge = self.badges.get(dict(attributes).get(self.marker) or "") if tag == "a" else None
        if changed:
            text = f"<{tag}{''.join(_attribute_text(name, value) for name, value in kept)}{' /' if closed else ''}>"
        if badge is not None:
            text += f'<span class="sendtrail-badge">{escape(badge)}</span>'
        if changed or badge is not None:
            self.edits.append((start, end, text))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=True)

    def handle_endtag(self, tag: str) -> None:
        start = self._offset()
        if tag == "head" and self.head_end is None:
            self.head_end = start
        if self.dropping == tag:
            close = self.source.find(">", start)
            self.edits.append((self.drop_from, (close + 1) if close >= 0 else len(self.source), ""))
            self.dropping = None
        elif tag in DROPPED_ELEMENTS and not self.dropping:
            self.edits.append((start, start + len(f"</{tag}>"), ""))


def preview(html: str, marker_attribute: str, badges: dict[int, str]) -> str:
    """`html` with `badges[url_id]` after the start tag of each link marked `marker_attribute`, made quiet."""
    parser = _Preview(html, marker_attribute, {str(url_id): text for url_id, text in badges.items()})
    parser.feed(html)
    parser.close()
    if parser.dropping:  # an element never closed: drop to the end
        parser.edits.append((parser.drop_from, len(html), ""))
    out, position = [], 0
    for start, end, replacement in sorted(parser.edits):
        if start < position:
            continue  # inside something already dropped
        out += [html[position:start], replacement]
        position = end
    out.append(html[position:])
    document = "".join(out)
    document = CSS_IMPORT.sub("", CSS_REMOTE_URL.sub("none", document)) if "url(" in document or "@import" in \
        document else document
    style = f"<style>{BADGE_CSS}</style>"
    head_end = document.lower().find("</head>") if parser.head_end is not None else -1
    if head_end < 0:  # no head: after the doctype (before it, the message would render in quirks mode)
        doctype = DOCTYPE.match(document)
        head_end = doctype.end() if doctype else 0
    return document[:head_end] + style + document[head_end:]
