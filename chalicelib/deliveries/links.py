"""Tracked links: prepare a delivery's content once, render it once per recipient.

Preparing (once per delivery) finds the links with the standard library's HTML
parser, gives every distinct tracked target one URL id, and turns the content
into a *template*: the original document, byte for byte, except that tracked
hrefs became markers, `data-track="off"` attributes were dropped and the open
pixel was inserted. Rendering (once per recipient, possibly 100,000 times) never
parses HTML again: a template is compiled once into segments (cached by its
text) and each recipient costs one walk over those segments.

Template syntax
    {{name}}           a recipient attribute (HTML-escaped in HTML, raw in text); refused at
                       preparation where escaping cannot make a value safe: in <script> or
                       <style>, event handlers, style=, URL attributes other than <a>/<area>
                       href, unquoted attribute values, tag and attribute names
    {{@link:N}}        the tracked URL of url id N (LinkMaker.click)
    {{@open}}          the open pixel URL (LinkMaker.open)
    {{@unsubscribe}}   the unsubscribe URL (LinkMaker.unsubscribe)
    {{@mirror}}        the mirror page URL (LinkMaker.mirror)
    {{@fill}}..{{@/fill}}  an untracked URL: values inside are URL-quoted (urltemplate.fill_url rules)

Why markers with "@": a placeholder name can never start with "@", so a marker
cannot be mistaken for (or written as) a recipient attribute, and content that
contains "{{@" is refused so an author cannot forge one either. Why one pass:
values are substituted while walking the compiled segments, never by scanning
the substituted text again, so an attribute value such as "{{@open}}" or
"{{other}}" always comes out literally.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

from chalicelib.deliveries.mime import HEADER_UNSAFE
from chalicelib.urltemplate import PLACEHOLDER_RE, host_is_personalised, placeholders_in, quote_param

URL_ID_HONEYPOT = 0  # the hidden link no person sees (chalicelib/tracking/classify.py: HONEYPOT_URL_ID)
URL_ID_OPEN = 1
URL_ID_UNSUBSCRIBE = 2
URL_ID_MIRROR = 3
FIRST_LINK_URL_ID = 4
HONEYPOT_LABEL = "Hidden link (honeypot)"

URL_TYPE_OPEN = "open"
URL_TYPE_CLICK = "click"
URL_TYPE_OPTOUT = "optout"
URL_TYPE_MIRROR = "mirror"
OVERRIDE_URL_TYPES = (URL_TYPE_CLICK, URL_TYPE_OPTOUT, URL_TYPE_MIRROR)

MODE_TRACKED = "tracked"
MODE_UNTRACKED = "untracked"
MODES = (MODE_TRACKED, MODE_UNTRACKED)

LABEL_MAX_LENGTH = 100

OPEN_MARKER = "{{@open}}"
UNSUBSCRIBE_MARKER = "{{@unsubscribe}}"
MIRROR_MARKER = "{{@mirror}}"
FILL_START_MARKER = "{{@fill}}"
FILL_END_MARKER = "{{@/fill}}"
MARKER_PREFIX = "{{@"

OPEN_PIXEL = ('<img src="' + OPEN_MARKER + '" width="1" height="1" alt="" '
              'style="display:block;border:0;height:1px;width:1px" />')


def link_marker(url_id: int) -> str:
    """The template marker of a tracked link."""
    return "{{@link:%d}}" % url_id


# Invisible to a person in every client (hidden, no text, out of the tab order and the accessibility tree);
# a scanner that follows every href follows it too.
HONEYPOT_LINK = ('<a href="' + link_marker(URL_ID_HONEYPOT) + '" style="display:none;mso-hide:all;font-size:0;'
                 'max-height:0;overflow:hidden" aria-hidden="true" tabindex="-1"></a>')


class ContentError(ValueError):
    """Content that cannot be sent as written; `field` says where (API field path)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class UrlOverride:
    """Per-link tracking settings, matched against a link's URL or its label."""

    match: str
    mode: str = MODE_TRACKED
    type: str = URL_TYPE_CLICK
    label: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class TrackedUrl:
    """One url id of a delivery. `url` is "" for the internal endpoints (ids 1-3)."""

    url_id: int
    url: str
    label: str
    type: str
    placeholders: tuple[str, ...]
    category: str = ""  # the sender's classification (Campaign's URL category), for the URL report

    def to_dict(self) -> dict[str, Any]:
        return {"url_id": self.url_id, "url": self.url, "label": self.label, "type": self.type,
                "placeholders": list(self.placeholders), "category": self.category}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrackedUrl:
        # int(): DynamoDB hands numbers back as Decimal.
        return cls(url_id=int(d["url_id"]), url=str(d["url"]), label=str(d["label"]), type=str(d["type"]),
                   placeholders=tuple(str(name) for name in d.get("placeholders") or ()),
                   category=str(d.get("category") or ""))


@dataclass(frozen=True)
class PreparedContent:
    """The templates of one delivery and its url ids (ids 1, 2, 3 first)."""

    html: str
    text: str | None
    urls: tuple[TrackedUrl, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"html": self.html, "text": self.text, "urls": [url.to_dict() for url in self.urls]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PreparedContent:
        text = d.get("text")
        return cls(html=str(d["html"]), text=None if text is None else str(text),
                   urls=tuple(TrackedUrl.from_dict(url) for url in d.get("urls") or ()))


class LinkMaker(Protocol):
    """Absolute URLs of one recipient's tracked links (tokens are the maker's business)."""

    def click(self, url_id: int, params: Mapping[str, str]) -> str: ...

    def open(self) -> str: ...

    def unsubscribe(self) -> str: ...

    def mirror(self) -> str: ...


FIXED_URLS = (
    TrackedUrl(URL_ID_OPEN, "", "Open", URL_TYPE_OPEN, ()),
    TrackedUrl(URL_ID_UNSUBSCRIBE, "", "Unsubscribe", URL_TYPE_OPTOUT, ()),
    TrackedUrl(URL_ID_MIRROR, "", "Mirror page", URL_TYPE_MIRROR, ()),
)

# --------------------------------------------------------------------------- preparing

_RESERVED_RE = re.compile(r"\{\{\s*(unsubscribe_url|mirror_url)\s*\}\}")
_RESERVED_MARKERS = {"unsubscribe_url": UNSUBSCRIBE_MARKER, "mirror_url": MIRROR_MARKER}
_INERT_PREFIXES = ("mailto:", "tel:", "sms:", "javascript:", "#")
_WEB_URL_RE = re.compile(r"https?://([^/?#\\]*)", re.IGNORECASE)


def prepare_content(html: str, text: str | None, *, tracking_enabled: bool = True, track_opens: bool = True,
                    overrides: Sequence[UrlOverride] = (), honeypot: bool = False) -> PreparedContent:
    """Validate the content, number its links and turn it into templates (once per delivery).

    With `honeypot`, a hidden tracked link (url id 0) goes where the pixel
    goes, leading to the site of the message's first tracked link: a click on
    it is a machine's. Messages without a tracked link get none (nothing to
    hide it among).

    Raises ContentError naming the field ("html", "text", "tracking.urls[i].mode", ...).
    """
    _check_overrides(overrides)
    _refuse_marker_syntax(html, "html")
    if text is not None:
        _refuse_marker_syntax(text, "text")
    rewriter = _LinkRewriter(tracking_enabled, tuple(overrides))
    html_template = _prepare_html(html, rewriter, with_pixel=tracking_enabled and track_opens)
    text_template = None if text is None else _prepare_text(text, rewriter)
    urls = FIXED_URLS + rewriter.tracked_urls()
    site = next((_site(url.url) for url in urls if url.type == URL_TYPE_CLICK and url.url), None)
    if honeypot and tracking_enabled and site:
        html_template = _with_honeypot(html_template)
        urls += (TrackedUrl(URL_ID_HONEYPOT, site, HONEYPOT_LABEL, URL_TYPE_CLICK, ()),)
    return PreparedContent(html=html_template, text=text_template, urls=urls)


def _site(url: str) -> str | None:
    """The root of a tracked URL's site (its host is never personalised: prepare refuses that)."""
    match = _WEB_URL_RE.match(url)
    return f"{url[:match.end()]}/" if match and "{{" not in match.group(0) else None


def _with_honeypot(template: str) -> str:
    """The hidden link just before the body's end (or the document's), where the pixel goes."""
    scanner = _LinkScanner(template).scan()
    at = len(template) if scanner.body_end is None else scanner.body_end
    return template[:at] + HONEYPOT_LINK + template[at:]


def _check_overrides(overrides: Sequence[UrlOverride]) -> None:
    for index, override in enumerate(overrides):
        where = f"tracking.urls[{index}]"
        if not isinstance(override.match, str) or not override.match.strip():
            raise ContentError(f"{where}.match", "match must be a URL or a link label, not empty")
        if override.mode not in MODES:
            raise ContentError(f"{where}.mode", f"mode must be one of {', '.join(MODES)}")
        if override.type not in OVERRIDE_URL_TYPES:
            raise ContentError(f"{where}.type", f"type must be one of {', '.join(OVERRIDE_URL_TYPES)}")


def _refuse_marker_syntax(content: str, field_name: str) -> None:
    """Refuse "{{@": otherwise an author could forge a marker (e.g. someone else's link id)."""
    if MARKER_PREFIX in content:
        raise ContentError(field_name, "'{{@' is reserved for sendtrail's link markers and cannot appear in content")


def _replace_reserved_placeholders(template: str) -> str:
    """{{unsubscribe_url}} / {{mirror_url}} become markers wherever they are (href, text, attributes)."""
    return _RESERVED_RE.sub(lambda match: _RESERVED_MARKERS[match.group(1)], template)


def _normalise_label(label: str | None) -> str:
    return " ".join((label or "").split())[:LABEL_MAX_LENGTH].rstrip()


class _UrlRegistry:
    """One url id per distinct target URL, numbered in order of first appearance."""

    def __init__(self) -> None:
        self._by_url: dict[str, TrackedUrl] = {}

    def url_id(self, url: str, label: str, url_type: str, category: str = "") -> int:
        known = self._by_url.get(url)
        if known is not None:
            return known.url_id  # first occurrence wins: its label, type and category are kept
        tracked = TrackedUrl(FIRST_LINK_URL_ID + len(self._by_url), url, label, url_type, placeholders_in(url),
                             category)
        self._by_url[url] = tracked
        return tracked.url_id

    def tracked_urls(self) -> tuple[TrackedUrl, ...]:
        return tuple(self._by_url.values())


class _LinkRewriter:
    """Decides what one link target becomes in the template; shared by the HTML and text parts
    so that the same URL gets the same id in both."""

    def __init__(self, tracking_enabled: bool, overrides: tuple[UrlOverride, ...]) -> None:
        self._tracking_enabled = tracking_enabled
        self._overrides = overrides
        self._registry = _UrlRegistry()

    def tracked_urls(self) -> tuple[TrackedUrl, ...]:
        return self._registry.tracked_urls()

    def target_template(self, url: str, written: str, natural_label: Callable[[], str], *,
                        track_off: bool, field_name: str) -> str:
        """The template text replacing `written` (the target as it appears in the source).

        `url` is the decoded, stripped target; `natural_label` is only called when needed.
        """
        reserved = _RESERVED_RE.fullmatch(url)
        if reserved:
            return _RESERVED_MARKERS[reserved.group(1)]  # functional links: always rendered
        if url.lower().startswith("javascript:") and PLACEHOLDER_RE.search(written):
            raise ContentError(field_name, f"a recipient's value cannot stand in a javascript: link: {url}")
        if not _is_inert(url):
            _check_web_url(url, field_name)
            label = natural_label()
            override = self._override_for(url, label)
            if self._is_tracked(track_off, override):
                url_type = override.type if override else URL_TYPE_CLICK
                chosen_label = override.label if override and override.label is not None else label
                category = _normalise_label(override.category) if override else ""
                return link_marker(self._registry.url_id(url, chosen_label, url_type, category))
        return _untracked_template(written)

    def _is_tracked(self, track_off: bool, override: UrlOverride | None) -> bool:
        if not self._tracking_enabled or track_off:
            return False
        return override is None or override.mode == MODE_TRACKED

    def _override_for(self, url: str, label: str) -> UrlOverride | None:
        """The first override (in the given order) whose match is the URL or the label."""
        for override in self._overrides:
            if override.match == url or override.match == label:
                return override
        return None


def _is_inert(url: str) -> bool:
    """Targets we never track nor validate: empty, in-page anchors, mail/phone/SMS, scripts."""
    return not url or url.lower().startswith(_INERT_PREFIXES)


def _check_web_url(url: str, field_name: str) -> None:
    """Only absolute http(s) URLs with a fixed host can be tracked or even sent.

    Relative links are broken in a mailbox; a personalised host would let
    recipient data pick where our redirect endpoint sends people.
    """
    if host_is_personalised(url):
        raise ContentError(field_name, f"personalised hostname not allowed: {url}")
    match = _WEB_URL_RE.match(url)
    if not match:
        raise ContentError(field_name, f"only absolute http:// or https:// links are allowed: {url}")
    if not match.group(1):
        raise ContentError(field_name, f"link without a hostname: {url}")


def _untracked_template(written: str) -> str:
    """An untracked target stays as written; placeholders in it are URL-quoted at render time."""
    if PLACEHOLDER_RE.search(written):
        return FILL_START_MARKER + written + FILL_END_MARKER
    return written


# ----------------------------------------------------------------------------- HTML part

@dataclass(frozen=True)
class _Edit:
    """Replace text[start:end] with `replacement` (an insertion when start == end)."""

    start: int
    end: int
    replacement: str


def _apply_edits(text: str, edits: Iterable[_Edit]) -> str:
    parts = []
    position = 0
    for edit in sorted(edits, key=lambda e: (e.start, e.end)):
        parts.append(text[position:edit.start])
        parts.append(edit.replacement)
        position = edit.end
    parts.append(text[position:])
    return "".join(parts)


# Same expressions as html.parser (Python 3.11) uses to split a start tag, so
# the spans found here are the attributes the parser reported.
_TAG_NAME_RE = re.compile(r"([a-zA-Z][^\t\n\r\f />\x00]*)(?:\s|/(?!>))*")
_ATTRIBUTE_RE = re.compile(
    r"((?<=['\"\s/])[^\s/>][^\s/=>]*)(\s*=+\s*"
    r"('[^']*'|\"[^\"]*\"|(?!['\"])[^>\s]*))?(?:\s|/(?!>))*")


@dataclass(frozen=True)
class _RawAttribute:
    """One attribute of a start tag as written; offsets are relative to the tag text."""

    name: str                # lowercased, like HTMLParser
    removal_start: int       # start of the whitespace before the name
    end: int                 # end of the value (or of the name when valueless)
    value_start: int         # value span without its quotes
    value_end: int
    value: str | None        # decoded like HTMLParser (None when valueless)
    quoted: bool = False     # the value is written between quotes


def _raw_attributes(tag_text: str) -> list[_RawAttribute]:
    name_match = _TAG_NAME_RE.match(tag_text, 1)
    position = name_match.end() if name_match else len(tag_text)
    attributes = []
    while position < len(tag_text):
        match = _ATTRIBUTE_RE.match(tag_text, position)
        if not match:
            break
        attributes.append(_raw_attribute(tag_text, match))
        position = match.end()
    return attributes


def _raw_attribute(tag_text: str, match: re.Match[str]) -> _RawAttribute:
    name_start, name_end = match.span(1)
    removal_start = name_start
    while removal_start > 0 and tag_text[removal_start - 1].isspace():
        removal_start -= 1
    if match.group(2) is None:
        return _RawAttribute(match.group(1).lower(), removal_start, name_end, name_end, name_end, None)
    value_start, value_end = match.span(3)
    written = match.group(3)
    if written[:1] in ("'", '"') and written[:1] == written[-1:]:
        value_start, value_end = value_start + 1, max(value_start + 1, value_end - 1)
    inner = tag_text[value_start:value_end]
    return _RawAttribute(match.group(1).lower(), removal_start, match.end(3), value_start, value_end,
                         html_lib.unescape(inner) if inner else inner, quoted=written[:1] in ("'", '"'))


def _first(attributes: Iterable[_RawAttribute], name: str) -> _RawAttribute | None:
    """Browsers use the first of duplicated attributes; so do we."""
    return next((attribute for attribute in attributes if attribute.name == name), None)


@dataclass
class _LinkTag:
    """An <a href> or <area href> start tag, where it is, and what its label can be made of."""

    start: int
    raw: str
    attributes: list[_RawAttribute]
    text_parts: list[str] = field(default_factory=list)
    image_alt: str | None = None

    @property
    def href(self) -> _RawAttribute | None:
        return _first(self.attributes, "href")

    @property
    def track_off(self) -> bool:
        data_track = _first(self.attributes, "data-track")
        return data_track is not None and (data_track.value or "").strip().lower() == "off"

    def natural_label(self, url: str) -> str:
        """Text content, else the alt of an image inside (or the area's alt), else title, else URL."""
        for candidate in ("".join(self.text_parts), self.image_alt, self._attribute_value("title")):
            label = _normalise_label(candidate)
            if label:
                return label
        return url

    def _attribute_value(self, name: str) -> str | None:
        attribute = _first(self.attributes, name)
        return attribute.value if attribute else None


# Attributes whose value is a URL a browser fetches or follows. Only <a>/<area> href may hold a
# placeholder (the link rewriter pins its scheme and host and URL-quotes the values); in any other
# URL attribute a value could pick the scheme (javascript:, data:) or the host.
_URL_ATTRIBUTES = frozenset({
    "href", "src", "srcset", "action", "formaction", "background", "poster", "cite", "data", "codebase",
    "longdesc", "usemap", "lowsrc", "dynsrc", "manifest", "profile", "icon", "archive", "classid", "ping",
    "xlink:href", "xml:base", "imagesrcset",
})
# Elements none of whose attributes may hold a value: <meta http-equiv=refresh content="0;url=...">
# navigates; <base> re-roots every link; SVG animations set other attributes (href included) from theirs.
_UNSAFE_ELEMENTS = frozenset({"meta", "base", "animate", "set", "animatemotion", "animatetransform"})


def _recipient_placeholders(text: str) -> Iterator[re.Match[str]]:
    """The {{name}} placeholders a recipient's values fill ({{unsubscribe_url}}/{{mirror_url}} are ours)."""
    return (match for match in PLACEHOLDER_RE.finditer(text) if not _RESERVED_RE.fullmatch(match.group(0)))


def _placeholder_problem(tag: str, attribute: _RawAttribute | None) -> str | None:
    """Why a recipient's value cannot stand in this attribute of <tag>, or None when HTML escaping suffices.

    Escaping (&, <, >, both quotes) keeps a value inside a quoted attribute
    value or in text; it does nothing for a value that is itself code (an
    event handler, CSS), a URL (javascript: needs no special character), or
    for an unquoted value (a space ends it and starts a new attribute).
    """
    if attribute is None:
        return "in a tag or attribute name"
    name = attribute.name
    if tag in ("a", "area") and name == "href":
        return None  # the link rewriter's business: fixed scheme and host, values URL-quoted
    if not attribute.quoted:
        return f"in the unquoted value of {name}= (quote it)"
    if name.startswith("on"):
        return f"in the event handler {name}= (script)"
    if name == "style":
        return "in a style attribute (CSS)"
    if name == "srcdoc":
        return "in srcdoc= (a whole HTML document)"
    if name in _URL_ATTRIBUTES:
        return f"in the URL attribute {name}= (only <a>/<area> href may be personalised)"
    if tag in _UNSAFE_ELEMENTS:
        return f"in an attribute of <{tag}>"
    return None


def _line_starts(document: str) -> list[int]:
    """Offset of each line start; HTMLParser.getpos() counts lines by "\\n" only."""
    starts = [0]
    position = document.find("\n")
    while position >= 0:
        starts.append(position + 1)
        position = document.find("\n", position + 1)
    return starts


class _LinkScanner(HTMLParser):
    """Finds link start tags and the last </body> with the standard library parser, and refuses
    placeholders where no escaping could make a recipient's value safe (`_placeholder_problem`).

    Why a parser and not a regex: it knows that "<a href>" inside a comment,
    a <script> or a <style> is not a link, and it copes with any quoting and case.
    """

    _RAW_TEXT_TAGS = ("script", "style")

    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self._document = document
        self._line_starts = _line_starts(document)
        self.links: list[_LinkTag] = []
        self.body_end: int | None = None
        self._open_link: _LinkTag | None = None
        self._in_raw_text = False
        self._raw_text_tag = ""

    def scan(self) -> _LinkScanner:
        try:
            self.feed(self._document)
            self.close()
        except AssertionError as error:  # html.parser's way to give up on broken markup
            raise ContentError("html", f"unreadable HTML: {error}") from None
        self._open_link = None
        return self

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check_tag_placeholders(tag)
        if tag in self._RAW_TEXT_TAGS:
            self._in_raw_text = True
            self._raw_text_tag = tag
        elif tag == "a":
            self._open_link = self._link_tag()  # an <a> closes any <a> still open
            self.links.append(self._open_link)
        elif tag == "area":
            area = self._link_tag()
            area.image_alt = area._attribute_value("alt")
            self.links.append(area)
        elif tag == "img" and self._open_link is not None and not _normalise_label(self._open_link.image_alt):
            self._open_link.image_alt = next((value for name, value in attrs if name == "alt"), None)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":  # browsers ignore the "/" of "<a ... />": the text after it is the link text
            self.handle_starttag(tag, attrs)
        else:
            super().handle_startendtag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._RAW_TEXT_TAGS:
            self._in_raw_text = False
        elif tag == "a":
            self._open_link = None
        elif tag == "body":
            self.body_end = self._offset()

    def handle_data(self, data: str) -> None:
        if self._in_raw_text:
            self._refuse_placeholders(data, f"inside <{self._raw_text_tag}> (script or CSS, where no escaping helps)")
            return
        # "<{{v}}": the parser hands a "<" that starts no tag over as text of its own, but a browser
        # reads the value "img src=x onerror=..." written after it as a tag. Judged on the source as
        # written: a "<" decoded from "&lt;" (before a comment or declaration, say) is harmless.
        start = self._offset()
        after_bare_angle = start > 0 and self._document[start - 1] == "<"
        for match in _recipient_placeholders(data):
            if match.start() == 0 and after_bare_angle:
                self._refuse_placeholders(match.group(0), "right after '<', where a value would name a tag")
        if self._open_link is not None:
            self._open_link.text_parts.append(data)

    def handle_decl(self, decl: str) -> None:
        self._refuse_placeholders(decl, "inside a <!DOCTYPE> declaration")

    def unknown_decl(self, data: str) -> None:
        self._refuse_placeholders(data, "inside a <![CDATA[ ]]> section")

    def handle_pi(self, data: str) -> None:
        self._refuse_placeholders(data, "inside a processing instruction")

    def _refuse_placeholders(self, text: str, where: str) -> None:
        for match in _recipient_placeholders(text):
            raise ContentError("html", f"{match.group(0)} near line {self.getpos()[0]}: {where}: "
                                       "a recipient's value cannot be escaped safely there")

    def _check_tag_placeholders(self, tag: str) -> None:
        raw = self.get_starttag_text() or ""
        found = list(_recipient_placeholders(raw))
        if not found:
            return
        attributes = _raw_attributes(raw)
        for match in found:
            attribute = next((candidate for candidate in attributes
                              if candidate.value_start <= match.start() and match.end() <= candidate.value_end), None)
            problem = _placeholder_problem(tag, attribute)
            if problem:
                line = self.getpos()[0] + raw.count("\n", 0, match.start())
                raise ContentError("html", f"{match.group(0)} at line {line} in <{tag}>: {problem}: "
                                           "a recipient's value cannot be escaped safely there")

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def _link_tag(self) -> _LinkTag:
        start = self._offset()
        raw = self.get_starttag_text() or ""
        if self._document[start:start + len(raw)] != raw:
            raise ContentError("html", f"could not locate the tag {raw[:80]!r}")
        return _LinkTag(start=start, raw=raw, attributes=_raw_attributes(raw))


@dataclass(frozen=True)
class LinkHref:
    """Where one link's href is in a document: its start tag and the href value, as offsets."""

    tag_start: int
    tag_end: int
    href_start: int  # the value, without its quotes
    href_end: int
    href: str  # decoded, stripped


def link_hrefs(document: str) -> list[LinkHref]:
    """Every <a href> and <area href> of a document, found with the HTML parser as preparing finds them."""
    found = []
    for link in _LinkScanner(document).scan().links:
        href = link.href
        if href is not None:
            found.append(LinkHref(link.start, link.start + len(link.raw), link.start + href.value_start,
                                  link.start + href.value_end, (href.value or "").strip()))
    return found


def _prepare_html(document: str, rewriter: _LinkRewriter, *, with_pixel: bool) -> str:
    scanner = _LinkScanner(document).scan()
    edits = [edit for link in scanner.links if (edit := _link_edit(link, rewriter)) is not None]
    if with_pixel:
        pixel_at = len(document) if scanner.body_end is None else scanner.body_end
        edits.append(_Edit(pixel_at, pixel_at, OPEN_PIXEL))
    return _replace_reserved_placeholders(_apply_edits(document, edits))


def _link_edit(link: _LinkTag, rewriter: _LinkRewriter) -> _Edit | None:
    """The rewritten start tag of one link, or None when it stays exactly as written."""
    tag_edits = []
    href = link.href
    if href is not None:
        written = link.raw[href.value_start:href.value_end]
        url = (href.value or "").strip()
        replacement = rewriter.target_template(url, written, lambda: link.natural_label(url),
                                               track_off=link.track_off, field_name="html")
        if replacement != written:
            tag_edits.append(_Edit(href.value_start, href.value_end, replacement))
    if link.track_off:
        tag_edits.extend(_Edit(attribute.removal_start, attribute.end, "")
                         for attribute in link.attributes if attribute.name == "data-track")
    if not tag_edits:
        return None
    return _Edit(link.start, link.start + len(link.raw), _apply_edits(link.raw, tag_edits))


# ----------------------------------------------------------------------------- text part

_TEXT_URL_RE = re.compile(r"https?://(?:\{\{\s*[A-Za-z_][A-Za-z0-9_.-]*\s*\}\}|[^\s<>\"'])+", re.IGNORECASE)
_TRAILING_PUNCTUATION = ".,;:!?)"


def _split_trailing_punctuation(candidate: str) -> tuple[str, str]:
    """("https://x/a_(b)", ").") from "https://x/a_(b)).": a ")" stays when it closes a "(" of the URL."""
    end = len(candidate)
    while end > 0 and candidate[end - 1] in _TRAILING_PUNCTUATION:
        if candidate[end - 1] == ")" and candidate.count("(", 0, end) >= candidate.count(")", 0, end):
            break
        end -= 1
    return candidate[:end], candidate[end:]


def _prepare_text(text: str, rewriter: _LinkRewriter) -> str:
    def replace(match: re.Match[str]) -> str:
        url, punctuation = _split_trailing_punctuation(match.group(0))
        if url.endswith("://"):  # "https://" alone in prose: not a link
            return match.group(0)
        return rewriter.target_template(url, url, lambda: url, track_off=False, field_name="text") + punctuation

    return _replace_reserved_placeholders(_TEXT_URL_RE.sub(replace, text))


# ----------------------------------------------------------------------------- rendering

_LITERAL, _ATTRIBUTE, _LINK, _SPECIAL = range(4)
_Segment = tuple[int, Any, bool]  # (kind, text | attribute name | url id | special keyword, inside a URL)

_TOKEN_RE = re.compile(r"\{\{@(?:(open|unsubscribe|mirror|fill|/fill)|link:([0-9]+))\}\}|" + PLACEHOLDER_RE.pattern)


@lru_cache(maxsize=256)
def compile_template(template: str) -> tuple[_Segment, ...]:
    """Split a template into segments, once per template text (hence the cache).

    Rendering 100,000 recipients then costs one walk over a few segments each,
    instead of one regex scan (let alone one HTML parse) per recipient.
    """
    segments: list[_Segment] = []
    in_url = False
    position = 0
    for match in _TOKEN_RE.finditer(template):
        _add_literal(segments, template[position:match.start()])
        position = match.end()
        keyword, url_id, name = match.groups()
        if keyword in ("fill", "/fill"):
            if in_url == (keyword == "fill"):
                raise ValueError(f"unbalanced {match.group(0)} in template at offset {match.start()}")
            in_url = keyword == "fill"
        elif keyword:
            segments.append((_SPECIAL, keyword, in_url))
        elif url_id:
            segments.append((_LINK, int(url_id), in_url))
        else:
            segments.append((_ATTRIBUTE, name, in_url))
    _add_literal(segments, template[position:])
    if in_url:
        raise ValueError("unterminated {{@fill}} in template")
    return tuple(segments)


def _add_literal(segments: list[_Segment], text: str) -> None:
    if not text:
        return
    if segments and segments[-1][0] == _LITERAL:
        segments[-1] = (_LITERAL, segments[-1][1] + text, False)
    else:
        segments.append((_LITERAL, text, False))


@lru_cache(maxsize=64)
def _placeholders_by_url_id(urls: tuple[TrackedUrl, ...]) -> dict[int, tuple[str, ...]]:
    return {url.url_id: url.placeholders for url in urls}


def _as_text(value: object) -> str:
    return "" if value is None else str(value)


class _RecipientValues:
    """What each placeholder and marker means for one recipient, each computed at most once.

    Memoised because a LinkMaker usually signs a token per call and the same
    link tends to appear several times (and in both the HTML and text parts).
    """

    def __init__(self, attributes: Mapping[str, object], links: LinkMaker,
                 placeholders_by_url_id: Mapping[int, tuple[str, ...]]) -> None:
        self._attributes = attributes
        self._links = links
        self._placeholders_by_url_id = placeholders_by_url_id
        self._clicks: dict[int, str] = {}
        self._specials: dict[str, str] = {}

    def value(self, kind: int, key: Any) -> str:
        if kind == _ATTRIBUTE:
            return _as_text(self._attributes.get(key))
        if kind == _LINK:
            return self._click(key)
        return self._special(key)

    def _click(self, url_id: int) -> str:
        if url_id not in self._clicks:
            names = self._placeholders_by_url_id.get(url_id, ())
            self._clicks[url_id] = self._links.click(url_id, {name: self._param(name) for name in names})
        return self._clicks[url_id]

    def _param(self, name: str) -> str:
        """A tracked URL's parameter; {{unsubscribe_url}}/{{mirror_url}} inside a URL mean our pages."""
        reserved = {"unsubscribe_url": "unsubscribe", "mirror_url": "mirror"}.get(name)
        return self._special(reserved) if reserved else _as_text(self._attributes.get(name))

    def _special(self, keyword: str) -> str:
        if keyword not in self._specials:
            self._specials[keyword] = getattr(self._links, keyword)()
        return self._specials[keyword]


def _render_template(template: str, escape: Callable[[str], str], values: _RecipientValues) -> str:
    parts = []
    for kind, key, in_url in compile_template(template):
        if kind == _LITERAL:
            parts.append(key)
        else:
            value = values.value(kind, key)
            parts.append(escape(quote_param(value) if in_url else value))
    return "".join(parts)


def _no_escape(value: str) -> str:
    return value


def render(prepared: PreparedContent, attributes: Mapping[str, object],
           links: LinkMaker) -> tuple[str, str | None]:
    """One recipient's HTML and text: values HTML-escaped in HTML, raw in text."""
    values = _RecipientValues(attributes, links, _placeholders_by_url_id(prepared.urls))
    html = _render_template(prepared.html, html_lib.escape, values)
    text = None if prepared.text is None else _render_template(prepared.text, _no_escape, values)
    return html, text


_HEADER_UNSAFE_RUN = re.compile(HEADER_UNSAFE.pattern + "+")


def render_subject(subject: str, attributes: Mapping[str, object]) -> str:
    """Plain one-pass substitution; a run of line breaks or control characters in a value becomes one
    space (a subject is one header line: VT, NEL or U+2028 would break it as surely as CR LF)."""
    def value(match: re.Match[str]) -> str:
        return _HEADER_UNSAFE_RUN.sub(" ", _as_text(attributes.get(match.group(1))))

    return PLACEHOLDER_RE.sub(value, subject)
