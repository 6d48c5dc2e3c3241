"""links: preparing a delivery's content once and rendering it per recipient."""

from __future__ import annotations

import html
import json
import re
from decimal import Decimal
from html.parser import HTMLParser
from typing import Mapping
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.deliveries import links
from chalicelib.deliveries.links import (
    OPEN_PIXEL,
    URL_ID_MIRROR,
    URL_ID_OPEN,
    URL_ID_UNSUBSCRIBE,
    ContentError,
    PreparedContent,
    TrackedUrl,
    UrlOverride,
    prepare_content,
    render,
    render_subject,
)

MARKER_RE = re.compile(r"\{\{@[^{}]*\}\}")


class FakeLinks:
    """A LinkMaker whose URLs show what they were asked for (and which counts clicks minted)."""

    def __init__(self) -> None:
        self.clicks: list[tuple[int, dict[str, str]]] = []

    def click(self, url_id: int, params: Mapping[str, str]) -> str:
        self.clicks.append((url_id, dict(params)))
        query = "?" + urlencode(sorted(params.items())) if params else ""
        return f"https://t.example/r/{url_id}{query}"

    def open(self) -> str:
        return "https://t.example/o/1"

    def unsubscribe(self) -> str:
        return "https://t.example/u/2?a=1&b=2"

    def mirror(self) -> str:
        return "https://t.example/m/3"


def hrefs(rendered: str) -> list[str]:
    """The href values of <a>/<area>, decoded (what a mail client would follow)."""
    class Collector(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.found: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in ("a", "area"):
                self.found.append(dict(attrs).get("href") or "")

    collector = Collector()
    collector.feed(rendered)
    collector.close()
    return collector.found


def link_urls(prepared: PreparedContent) -> list[tuple[int, str, str, str]]:
    return [(u.url_id, u.url, u.label, u.type) for u in prepared.urls[3:]]


def without_markers(template: str) -> str:
    return MARKER_RE.sub("", template)


NEWSLETTER = """<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
<title>Spring news</title>
<style type="text/css">
  a { color: #0645ad; } /* <a href="/style-link">not a link</a> */
  @media only screen and (max-width: 600px) { .col { width: 100% !important; } }
</style>
<script type="text/javascript">var tpl = '<a href="/script-link">not a link</a>'; if (a < b && c > d) {}</script>
</head>
<body style="margin:0;padding:0;background:#f4f4f4;">
<!--[if mso]><a href="/conditional-comment">outlook only</a><![endif]-->
<!-- old footer: <a href="relative.html">removed</a> -->
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">
  <tr>
    <td align="center" style="padding:20px 0;">
      <table role="presentation" width="600" class="col" style="border-collapse:collapse;">
        <tr>
          <td style="font-family:Arial,sans-serif;font-size:16px;">
            <p>Hello {{first_name}},</p>
            <a href="https://shop.example.com/spring?utm_source=news&amp;utm_medium=email#top"
               style="color:#ffffff;background:#e91e63;padding:10px 20px;text-decoration:none;">Shop   the
               spring   sale</a>
          </td>
        </tr>
        <tr>
          <td><a href="https://shop.example.com/p/{{sku}}?ref={{ref}}"><img src="https://cdn.example.com/p.png" alt="Our product" width="200" /></a></td>
          <td><a href="https://shop.example.com/spring?utm_source=news&#38;utm_medium=email#top">Shop again</a></td>
        </tr>
      </table>
    </td>
  </tr>
</table>
<p style="font-size:11px;">
  <a href="{{unsubscribe_url}}">Unsubscribe</a> |
  <a href="{{ mirror_url }}">View in your browser</a> |
  <a href="mailto:help@example.com">Contact</a>
</p>
</body>
</html>
"""


# ------------------------------------------------------------------ real-world document


def test_newsletter_links_are_numbered_in_order_and_duplicates_share_an_id() -> None:
    prepared = prepare_content(NEWSLETTER, None)

    assert [(u.url_id, u.type, u.label) for u in prepared.urls[:3]] == [
        (URL_ID_OPEN, "open", "Open"), (URL_ID_UNSUBSCRIBE, "optout", "Unsubscribe"), (URL_ID_MIRROR, "mirror", "Mirror page")]
    assert all(u.url == "" for u in prepared.urls[:3])
    assert link_urls(prepared) == [
        (4, "https://shop.example.com/spring?utm_source=news&utm_medium=email#top", "Shop the spring sale", "click"),
        (5, "https://shop.example.com/p/{{sku}}?ref={{ref}}", "Our product", "click"),
    ]
    assert prepared.urls[4].placeholders == ("ref", "sku")


def test_newsletter_links_in_comments_style_and_script_are_left_alone() -> None:
    """Those hrefs are relative: had they been taken for links, preparing would have failed."""
    prepared = prepare_content(NEWSLETTER, None)

    for untouched in ('<a href="/style-link">', "<a href=\"/script-link\">", '<a href="/conditional-comment">',
                      '<a href="relative.html">'):
        assert untouched in prepared.html


def test_newsletter_renders_tracked_links_and_keeps_everything_else() -> None:
    prepared = prepare_content(NEWSLETTER, None)
    maker = FakeLinks()

    rendered, text = render(prepared, {"first_name": "Ana", "sku": "A 1/2", "ref": "x&y"}, maker)

    assert text is None
    assert hrefs(rendered) == [
        "https://t.example/r/4",
        "https://t.example/r/5?ref=x%26y&sku=A+1%2F2",
        "https://t.example/r/4",
        "https://t.example/u/2?a=1&b=2",
        "https://t.example/m/3",
        "mailto:help@example.com",
    ]
    assert 'href="https://t.example/r/5?ref=x%26y&amp;sku=A+1%2F2"' in rendered
    assert "<p>Hello Ana,</p>" in rendered
    assert maker.clicks == [(4, {}), (5, {"sku": "A 1/2", "ref": "x&y"})]


def test_template_outside_rewritten_hrefs_is_the_input_byte_for_byte() -> None:
    prepared = prepare_content(NEWSLETTER, None, track_opens=False)

    expected = NEWSLETTER
    for written in ("https://shop.example.com/spring?utm_source=news&amp;utm_medium=email#top",
                    "https://shop.example.com/p/{{sku}}?ref={{ref}}",
                    "https://shop.example.com/spring?utm_source=news&#38;utm_medium=email#top",
                    "{{unsubscribe_url}}", "{{ mirror_url }}"):
        assert expected.count(f'"{written}"') == 1
        expected = expected.replace(f'"{written}"', '""')
    assert without_markers(prepared.html) == expected


def test_crlf_document_keeps_its_line_endings() -> None:
    document = NEWSLETTER.replace("\n", "\r\n")

    prepared = prepare_content(document, None, track_opens=False)

    assert link_urls(prepare_content(NEWSLETTER, None)) == link_urls(prepared)
    assert prepared.html.count("\r\n") == document.count("\r\n")
    assert '<a href="{{@link:4}}"\r\n               style=' in prepared.html


# ------------------------------------------------------------------ hrefs as written


def test_entities_in_hrefs_are_decoded_for_the_url_and_kept_in_untracked_output() -> None:
    document = ('<a href="https://x.example/?a=1&amp;b=2">one</a>'
                '<a href="https://x.example/?a=1&#38;b=2">two</a>'
                '<a href="https://x.example/q?s=&quot;hi&quot;&amp;t=&#x27;">three</a>')

    prepared = prepare_content(document, None)

    assert link_urls(prepared) == [(4, "https://x.example/?a=1&b=2", "one", "click"),
                                   (5, "https://x.example/q?s=\"hi\"&t='", "three", "click")]
    assert prepared.html.count("{{@link:4}}") == 2
    assert prepare_content(document, None, tracking_enabled=False).html == document


def test_uppercase_tags_and_attributes() -> None:
    prepared = prepare_content('<A HREF="https://x.example/A" TITLE="Big">X</A><AREA HREF="https://x.example/B">', None)

    assert prepared.html.startswith('<A HREF="{{@link:4}}" TITLE="Big">X</A><AREA HREF="{{@link:5}}">')
    assert [u.url for u in prepared.urls[3:]] == ["https://x.example/A", "https://x.example/B"]


@pytest.mark.parametrize("tag, rewritten", [
    ("<a href='https://x.example/p?q=\"1\"'>", "<a href='{{@link:4}}'>"),
    ('<a href=https://x.example/p?q=1>', "<a href={{@link:4}}>"),
    ('<a href = "https://x.example/p?q=1" >', '<a href = "{{@link:4}}" >'),
    ('<a class=btn href=https://x.example/p?q=1 target=_blank>', "<a class=btn href={{@link:4}} target=_blank>"),
    ('<a href="https://x.example/p?q=1" href="https://other.example/">', '<a href="{{@link:4}}" href="https://other.example/">'),
    ('<a data-href="https://y.example/" href="https://x.example/p?q=1">', '<a data-href="https://y.example/" href="{{@link:4}}">'),
    ('<a href="  https://x.example/p?q=1\n">', '<a href="{{@link:4}}">'),
])
def test_quoting_styles(tag: str, rewritten: str) -> None:
    prepared = prepare_content(tag + "text</a>", None, track_opens=False)

    assert prepared.html == rewritten + "text</a>"
    assert prepared.urls[3].url.startswith("https://x.example/p?q=")


def test_query_strings_and_fragments_are_kept_exactly() -> None:
    url = "https://x.example/a/b;p=1?z=9&a=%20&a=2&empty=&flag#section-2?not=query"

    prepared = prepare_content(f'<a href="{html.escape(url)}">x</a>', f"Also {url}")

    assert [u.url for u in prepared.urls[3:]] == [url]
    assert prepared.text == "Also {{@link:4}}"


def test_multi_line_start_tags_and_positions_after_them() -> None:
    document = ('<table>\n<tr><td>\n<a\n   class="button"\n   style="color:red;\n          padding:4px"\n'
                '   href="https://x.example/one">One</a>\n</td></tr>\n</table>\n'
                '<p>later</p><a\thref="https://x.example/two"\n>Two</a>')

    prepared = prepare_content(document, None, track_opens=False)

    assert prepared.html == (document.replace('"https://x.example/one"', '"{{@link:4}}"')
                             .replace('"https://x.example/two"', '"{{@link:5}}"'))


def test_area_in_an_image_map() -> None:
    document = ('<img src="https://cdn.example/map.png" usemap="#m">'
                '<map name="m"><area shape="rect" coords="0,0,10,10" href="https://x.example/left" alt="Left side">'
                '<area shape="rect" coords="10,0,20,10" href="https://x.example/right" title="Right side" />'
                '<area shape="default" nohref></map>')

    prepared = prepare_content(document, None, track_opens=False)

    assert link_urls(prepared) == [(4, "https://x.example/left", "Left side", "click"),
                                   (5, "https://x.example/right", "Right side", "click")]
    assert hrefs(render(prepared, {}, FakeLinks())[0]) == ["https://t.example/r/4", "https://t.example/r/5", ""]


# ------------------------------------------------------------------ labels


def test_label_sources_in_order_of_preference() -> None:
    long_text = "word " * 40
    document = (f'<a href="https://x.example/1" title="T1">  Read\n\n  <b>more</b>&nbsp;now </a>'
                f'<a href="https://x.example/2" title="T2"><img src="i.png" alt=" "><img src="j.png" alt="Second image"></a>'
                f'<a href="https://x.example/3" title="  The   title ">   </a>'
                f'<a href="https://x.example/4"></a>'
                f'<a href="https://x.example/5">{long_text}</a>'
                f'<a href="https://x.example/6" />Text after a self-closed a</a>'
                f'<a href="https://x.example/7"><style>.b{{color:red}}</style><script>var x;</script>Styled</a>')

    labels = [u.label for u in prepare_content(document, None).urls[3:]]

    assert labels == ["Read more now", "Second image", "The title", "https://x.example/4",
                      ("word " * 20).rstrip(), "Text after a self-closed a", "Styled"]
    assert len(labels[4]) == 99  # cut at 100 characters, then the dangling space


def test_same_url_twice_keeps_the_first_label() -> None:
    prepared = prepare_content('<a href="https://x.example/">First</a><a href="https://x.example/">Second</a>', None)

    assert link_urls(prepared) == [(4, "https://x.example/", "First", "click")]


def test_unclosed_link_label_stops_at_the_next_link() -> None:
    prepared = prepare_content('<a href="https://x.example/1">One<a href="https://x.example/2">Two</a> tail', None)

    assert [u.label for u in prepared.urls[3:]] == ["One", "Two"]


# ------------------------------------------------------------------ what is not tracked


@pytest.mark.parametrize("href", ["mailto:someone@example.com?subject=Hi%20there", "MAILTO:X@EXAMPLE.COM", "tel:+33123456789",
                                  "sms:+33123456789", "#top", "  #section ", "javascript:void(0)",
                                  " JavaScript:alert(1)", "", "   "])
def test_inert_targets_are_left_exactly_as_written(href: str) -> None:
    document = f'<p><a href="{href}">x</a><a href>bare</a></p>'

    prepared = prepare_content(document, None, track_opens=False)

    assert prepared.html == document
    assert prepared.urls == links.FIXED_URLS


def test_data_track_off_keeps_the_link_and_drops_the_attribute() -> None:
    document = ('<a href="https://x.example/a" data-track="off">A</a>'
                "<a DATA-TRACK='OFF' class=x href=https://x.example/b>B</a>"
                '<a href="https://x.example/c"\n   data-track=off\n>C</a>'
                '<a data-track="on" href="https://x.example/d">D</a>')

    prepared = prepare_content(document, None, track_opens=False)

    assert prepared.html == ('<a href="https://x.example/a">A</a>'
                             "<a class=x href=https://x.example/b>B</a>"
                             '<a href="https://x.example/c"\n>C</a>'
                             '<a data-track="on" href="{{@link:4}}">D</a>')
    assert link_urls(prepared) == [(4, "https://x.example/d", "D", "click")]


def test_untracked_personalised_link_is_filled_with_quoted_values() -> None:
    document = '<a data-track="off" href="https://x.example/p/{{ id }}?n={{name}}&amp;k=1">x</a>'

    rendered, _ = render(prepare_content(document, None), {"id": "a/b", "name": 'Zoë "<&>"'}, FakeLinks())

    assert rendered.startswith('<a href="https://x.example/p/a%2Fb?n=Zo%C3%AB%20%22%3C%26%3E%22&amp;k=1">x</a>')


def test_overrides_by_url_and_by_label() -> None:
    document = ('<a href="https://x.example/terms">Terms</a>'
                '<a href="https://x.example/blog">Blog</a>'
                '<a href="https://x.example/news">News</a>'
                '<a href="https://x.example/leave">Leave list</a>'
                '<a href="https://x.example/share">Share</a>')
    overrides = [
        UrlOverride(match="https://x.example/terms", mode="untracked"),
        UrlOverride(match="Blog", mode="untracked"),
        UrlOverride(match="https://x.example/news", label="Newsroom"),
        UrlOverride(match="Leave list", type="optout"),
        UrlOverride(match="Share", type="mirror", label="Web copy"),
        UrlOverride(match="https://nowhere.example/", mode="untracked"),
    ]

    prepared = prepare_content(document, None, overrides=overrides, track_opens=False)

    assert prepared.html.startswith('<a href="https://x.example/terms">Terms</a><a href="https://x.example/blog">Blog</a>')
    assert link_urls(prepared) == [(4, "https://x.example/news", "Newsroom", "click"),
                                   (5, "https://x.example/leave", "Leave list", "optout"),
                                   (6, "https://x.example/share", "Web copy", "mirror")]
    assert hrefs(render(prepared, {}, FakeLinks())[0])[2:] == [
        "https://t.example/r/4", "https://t.example/r/5", "https://t.example/r/6"]


def test_override_by_label_is_per_occurrence_and_first_match_wins() -> None:
    document = '<a href="https://x.example/">Skip me</a><a href="https://x.example/">Keep me</a>'
    overrides = [UrlOverride(match="Skip me", mode="untracked"), UrlOverride(match="Skip me", label="never used")]

    prepared = prepare_content(document, None, overrides=overrides)

    assert prepared.html.startswith('<a href="https://x.example/">Skip me</a><a href="{{@link:4}}">Keep me</a>')
    assert link_urls(prepared) == [(4, "https://x.example/", "Keep me", "click")]


@pytest.mark.parametrize("override, field", [
    (UrlOverride(match=""), "tracking.urls[1].match"),
    (UrlOverride(match="x", mode="sometimes"), "tracking.urls[1].mode"),
    (UrlOverride(match="x", type="open"), "tracking.urls[1].type"),
])
def test_invalid_overrides_name_their_field(override: UrlOverride, field: str) -> None:
    with pytest.raises(ContentError) as raised:
        prepare_content("<p>x</p>", None, overrides=[UrlOverride(match="ok"), override])
    assert raised.value.field == field


# ------------------------------------------------------------------ refused content


@pytest.mark.parametrize("href", ["ftp://files.example/a.zip", "data:text/html,hi", "file:///etc/passwd", "/x",
                                  "page.html", "../up.html", "//cdn.example/x", "https:/x.example", "https:///nohost",
                                  "www.example.com", "java\tscript:alert(1)"])
def test_non_http_targets_are_refused_naming_the_href(href: str) -> None:
    with pytest.raises(ContentError) as raised:
        prepare_content(f'<p>ok <a href="https://x.example/">fine</a> <a href="{href}">bad</a></p>', None)

    assert raised.value.field == "html"
    assert href.strip() in str(raised.value)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize("href", ["https://{{domain}}/x", "https://www.{{ domain }}/x", "{{site}}/x",
                                  "http{{s}}://x.example/", "https://{{user}}@x.example/"])
def test_personalised_hostnames_are_refused(href: str) -> None:
    with pytest.raises(ContentError) as raised:
        prepare_content(f'<a href="{href}">x</a>', None)

    assert raised.value.field == "html"
    assert str(raised.value) == f"personalised hostname not allowed: {href}"


@pytest.mark.parametrize("kwargs", [{"tracking_enabled": False}, {"overrides": [UrlOverride(match="x", mode="untracked")]}])
def test_refusals_do_not_depend_on_tracking(kwargs: dict) -> None:
    with pytest.raises(ContentError):
        prepare_content('<a href="/relative">x</a>', None, **kwargs)
    with pytest.raises(ContentError):
        prepare_content('<a data-track="off" href="https://{{d}}/">x</a>', None, **kwargs)


def test_marker_syntax_in_content_is_refused() -> None:
    with pytest.raises(ContentError) as raised:
        prepare_content("<p>{{@link:4}}</p>", None)
    assert raised.value.field == "html"
    with pytest.raises(ContentError) as raised:
        prepare_content("<p>x</p>", "{{@open}}")
    assert raised.value.field == "text"


# ------------------------------------------------------------------ reserved links


def test_unsubscribe_and_mirror_links_and_text() -> None:
    document = ('<a href="{{unsubscribe_url}}">Stop</a> <a HREF=\'{{  mirror_url }}\'>Web</a> '
                '<p>Copy: {{mirror_url}} and {{ unsubscribe_url }}</p>'
                '<a href="mailto:?body={{mirror_url}}">Mail it</a>')

    for tracking in (True, False):
        prepared = prepare_content(document, "Leave: {{unsubscribe_url}}", tracking_enabled=tracking, track_opens=False)
        rendered, text = render(prepared, {"unsubscribe_url": "https://evil.example/"}, FakeLinks())

        assert hrefs(rendered) == ["https://t.example/u/2?a=1&b=2", "https://t.example/m/3",
                                   "mailto:?body=https%3A%2F%2Ft.example%2Fm%2F3"]
        assert "<p>Copy: https://t.example/m/3 and https://t.example/u/2?a=1&amp;b=2</p>" in rendered
        assert text == "Leave: https://t.example/u/2?a=1&b=2"
        assert prepared.urls == links.FIXED_URLS


def test_reserved_placeholder_inside_a_tracked_url_is_passed_as_a_param() -> None:
    prepared = prepare_content('<a href="https://social.example/share?u={{mirror_url}}">Share</a>', None)
    maker = FakeLinks()

    render(prepared, {}, maker)

    assert maker.clicks == [(4, {"mirror_url": "https://t.example/m/3"})]


# ------------------------------------------------------------------ open pixel


def test_pixel_goes_before_the_last_real_body_end_tag() -> None:
    document = ('<html><body><script>document.write("</body>")</script>'
                '<!-- </body> -->x</body>\n<!-- </BODY> --></BODY></html>')

    prepared = prepare_content(document, None)

    assert prepared.html == document[:document.rindex("</BODY>")] + OPEN_PIXEL + "</BODY></html>"
    rendered, _ = render(prepared, {}, FakeLinks())
    assert '<img src="https://t.example/o/1" width="1" height="1" alt="" ' in rendered


def test_pixel_is_appended_without_a_body_end_tag() -> None:
    assert prepare_content("<p>hi</p>", None).html == "<p>hi</p>" + OPEN_PIXEL


@pytest.mark.parametrize("kwargs", [{"track_opens": False}, {"tracking_enabled": False}])
def test_no_pixel_when_opens_or_tracking_are_off(kwargs: dict) -> None:
    document = "<html><body><p>hi</p></body></html>"
    assert prepare_content(document, None, **kwargs).html == document


def test_tracking_disabled_rewrites_no_link() -> None:
    prepared = prepare_content(NEWSLETTER, "Go to https://shop.example.com/x", tracking_enabled=False)

    assert prepared.urls == links.FIXED_URLS
    assert "{{@link:" not in prepared.html + (prepared.text or "")
    assert 'href="https://shop.example.com/spring?utm_source=news&amp;utm_medium=email#top"' in prepared.html


# ------------------------------------------------------------------ text part


def test_text_part_shares_ids_with_html_and_strips_trailing_punctuation() -> None:
    text = ("Shop: https://shop.example.com/spring?utm_source=news&utm_medium=email#top.\n"
            "New: https://x.example/new, and (https://x.example/paren). Wiki: https://w.example/A_(b)!\n"
            "<https://x.example/angle> 'https://x.example/quoted' \"https://x.example/dq\"? "
            "Product: https://shop.example.com/p/{{sku}}?ref={{ref}}; ref: https://x.example/r?x={{ ref }}.")

    prepared = prepare_content(NEWSLETTER, text)

    assert prepared.text == ("Shop: {{@link:4}}.\n"
                             "New: {{@link:6}}, and ({{@link:7}}). Wiki: {{@link:8}}!\n"
                             "<{{@link:9}}> '{{@link:10}}' \"{{@link:11}}\"? "
                             "Product: {{@link:5}}; ref: {{@link:12}}.")
    assert [u.url for u in prepared.urls[5:]] == [
        "https://x.example/new", "https://x.example/paren", "https://w.example/A_(b)", "https://x.example/angle",
        "https://x.example/quoted", "https://x.example/dq", "https://x.example/r?x={{ ref }}"]
    assert prepared.urls[5].label == "https://x.example/new"


def test_text_part_renders_raw_values_and_raw_urls() -> None:
    prepared = prepare_content("<p>x</p>", "Hi {{name}}, see https://x.example/p?id={{id}}&x=1 or https://x.example/")
    maker = FakeLinks()

    _, text = render(prepared, {"name": '<b>&"', "id": "7 & 8"}, maker)

    assert text == 'Hi <b>&", see https://t.example/r/4?id=7+%26+8 or https://t.example/r/5'


def test_text_part_rules() -> None:
    with pytest.raises(ContentError) as raised:
        prepare_content("<p>x</p>", "Go https://{{domain}}/x now")
    assert (raised.value.field, str(raised.value)) == ("text", "personalised hostname not allowed: https://{{domain}}/x")

    prepared = prepare_content("<p>x</p>", "https://x.example/a https://x.example/b ftp://x.example/ https:// done",
                               overrides=[UrlOverride(match="https://x.example/a", mode="untracked")])
    assert prepared.text == "https://x.example/a {{@link:4}} ftp://x.example/ https:// done"


def test_untracked_text_url_is_filled_like_an_href() -> None:
    prepared = prepare_content("<p>x</p>", "https://x.example/{{p}} {{p}}", tracking_enabled=False)

    assert render(prepared, {"p": "a b"}, FakeLinks())[1] == "https://x.example/a%20b a b"


def test_empty_text_stays_empty_and_missing_text_stays_none() -> None:
    assert prepare_content("<p>x</p>", "").text == ""
    assert render(prepare_content("<p>x</p>", None), {}, FakeLinks())[1] is None


# ------------------------------------------------------------------ personalisation


def test_values_are_escaped_in_html_and_raw_in_text() -> None:
    prepared = prepare_content('<p title="{{name}}">Hi {{ name }}</p>', "Hi {{name}}")

    rendered, text = render(prepared, {"name": '<b>&"'}, FakeLinks())

    assert rendered.startswith('<p title="&lt;b&gt;&amp;&quot;">Hi &lt;b&gt;&amp;&quot;</p>')
    assert text == 'Hi <b>&"'


@pytest.mark.parametrize("value", ["{{@open}}", "{{@link:4}}", "{{other}}", "{{unsubscribe_url}}", "{{@fill}}"])
def test_values_are_never_reinterpreted(value: str) -> None:
    prepared = prepare_content('<a href="https://x.example/">x</a><p>{{name}}</p>', "{{name}}")
    maker = FakeLinks()

    rendered, text = render(prepared, {"name": value, "other": "SECRET"}, maker)

    assert f"<p>{html.escape(value)}</p>" in rendered
    assert text == value
    assert "SECRET" not in rendered + text
    assert maker.clicks == [(4, {})]


def test_missing_and_none_attributes_are_empty_and_other_types_are_strings() -> None:
    prepared = prepare_content("<p>[{{a}}][{{b}}][{{c}}][{{d}}]</p>", None, track_opens=False)

    assert render(prepared, {"b": None, "c": 3, "d": Decimal("2.50")}, FakeLinks())[0] == "<p>[][][3][2.50]</p>"


def test_personalised_tracked_url_passes_its_params_to_click_once_per_recipient() -> None:
    document = ('<a href="https://x.example/u/{{id}}?lang={{lang}}">Account</a>'
                '<a href="https://x.example/u/{{id}}?lang={{lang}}">Again</a>')
    prepared = prepare_content(document, "Account: https://x.example/u/{{id}}?lang={{lang}}")
    maker = FakeLinks()

    rendered, text = render(prepared, {"id": "42", "name": "not a param"}, maker)

    assert maker.clicks == [(4, {"id": "42", "lang": ""})]
    assert hrefs(rendered) == ["https://t.example/r/4?id=42&lang="] * 2
    assert 'href="https://t.example/r/4?id=42&amp;lang="' in rendered
    assert text == "Account: https://t.example/r/4?id=42&lang="


def test_render_subject_substitutes_plainly_in_one_pass() -> None:
    subject = "{{first_name}}, your {{ item }} & more {{missing}}"

    assert render_subject(subject, {"first_name": "<Ana>", "item": "{{first_name}}"}) == \
        "<Ana>, your {{first_name}} & more "
    assert render_subject("Hi {{name}}", {"name": "A\r\nBcc: x@example.com"}) == "Hi A Bcc: x@example.com"


# ------------------------------------------------------------------ storage and speed


def test_prepared_content_round_trips_through_json() -> None:
    prepared = prepare_content(NEWSLETTER, "See https://x.example/{{a}}")

    stored = json.loads(json.dumps(prepared.to_dict()))

    assert PreparedContent.from_dict(stored) == prepared
    assert stored["urls"][4] == {"url_id": 5, "url": "https://shop.example.com/p/{{sku}}?ref={{ref}}",
                                 "label": "Our product", "type": "click", "placeholders": ["ref", "sku"],
                                 "category": ""}


def test_an_override_gives_a_url_its_category_for_the_url_report() -> None:
    prepared = prepare_content('<a href="https://x.example/a">A</a> <a href="https://x.example/b">B</a>', None,
                               overrides=[UrlOverride(match="B", category="  Social   media ")])

    assert [(url.url_id, url.category) for url in prepared.urls[3:]] == [(4, ""), (5, "Social media")]


def test_prepared_content_from_dynamodb_numbers_and_missing_text() -> None:
    stored = {"html": "<p/>", "urls": [{"url_id": Decimal("4"), "url": "https://x.example/{{a}}", "label": "x",
                                         "type": "click", "placeholders": ["a"]}]}

    prepared = PreparedContent.from_dict(stored)

    assert prepared == PreparedContent("<p/>", None, (TrackedUrl(4, "https://x.example/{{a}}", "x", "click", ("a",)),))


def test_rendering_never_parses_html_again(monkeypatch: pytest.MonkeyPatch) -> None:
    prepared = prepare_content(NEWSLETTER, "https://x.example/")
    first = render(prepared, {"first_name": "A"}, FakeLinks())

    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("HTML parsed while rendering")

    monkeypatch.setattr(HTMLParser, "feed", no_parsing)
    before = links.compile_template.cache_info()
    for index in range(200):
        render(prepared, {"first_name": str(index)}, FakeLinks())
    after = links.compile_template.cache_info()

    assert after.misses == before.misses
    assert after.hits - before.hits == 400
    assert render(prepared, {"first_name": "A"}, FakeLinks()) == first


def test_compiled_template_is_segments_of_literals_values_and_links() -> None:
    segments = links.compile_template('<a href="{{@link:4}}">Hi {{ name }}</a>{{@fill}}x{{y}}{{@mirror}}{{@/fill}}')

    assert segments == ((0, '<a href="', False), (2, 4, False), (0, '">Hi ', False), (1, "name", False),
                        (0, "</a>x", False), (1, "y", True), (3, "mirror", True))
    with pytest.raises(ValueError):
        links.compile_template("{{@fill}}never closed")


# ------------------------------------------------------------------ properties

NAMES = {"name": 'Zoë <&> "q"', "city": "a b/c?d"}


class Piece:
    """A fragment of generated HTML, what rendering it with tracking disabled must give, and facts about it."""

    def __init__(self, source: str, expected: str, *, bad: bool = False, tracked: tuple[str, ...] = ()) -> None:
        self.source = source
        self.expected = expected
        self.bad = bad
        self.tracked = tracked  # decoded URLs that tracking would rewrite, in order


def _fill_written(written: str) -> str:
    return links.PLACEHOLDER_RE.sub(lambda m: quote(NAMES.get(m.group(1), ""), safe=""), written)


def _escape_text(source: str) -> str:
    return links.PLACEHOLDER_RE.sub(lambda m: html.escape(NAMES.get(m.group(1), "")), source)


_GOOD_URLS = ["https://example.com/", "http://Example.com/p?q=1&r=2#f", "https://example.com/p/{{name}}?c={{city}}",
              "https://example.com/p?q=1&r=2#f"]
_INERT_URLS = ["mailto:a@b.example", "tel:+1234", "#top", "javascript:void(0)", "mailto:{{name}}"]
_RESERVED_URLS = ["{{unsubscribe_url}}", "{{ mirror_url }}"]
_BAD_URLS = ["/relative", "ftp://x.example/", "https://{{name}}/", "{{name}}/x", "//cdn.example/x", "page.html"]
_RESERVED_RENDERED = {"{{unsubscribe_url}}": FakeLinks().unsubscribe(), "{{ mirror_url }}": FakeLinks().mirror()}


@st.composite
def link_pieces(draw: st.DrawFn) -> Piece:
    url = draw(st.sampled_from(_GOOD_URLS + _INERT_URLS + _RESERVED_URLS + _BAD_URLS))
    amp = draw(st.sampled_from(["&amp;", "&#38;", "&"]))
    written = url.replace("&", amp)
    quoting = draw(st.sampled_from(['"', "'", ""]) if url and " " not in url else st.sampled_from(['"', "'"]))
    tag = draw(st.sampled_from(["a", "A", "area"]))
    off = draw(st.booleans())
    attributes = [(draw(st.sampled_from([" ", "\n   "])), f"{draw(st.sampled_from(['href', 'HREF']))}={quoting}{written}{quoting}")]
    if draw(st.booleans()):
        attributes.insert(0, (" ", 'class="btn"'))
    if off:
        attributes.insert(draw(st.integers(0, len(attributes))), (draw(st.sampled_from([" ", "\n"])), 'data-track="off"'))
    source_tag = f"<{tag}" + "".join(sep + text for sep, text in attributes) + ">"
    expected_tag = f"<{tag}" + "".join(sep + text for sep, text in attributes if not text.startswith("data-track"))
    expected_tag = expected_tag.replace(f"{quoting}{written}{quoting}", f"{quoting}{_href_expected(url, written)}{quoting}")
    body = draw(st.sampled_from(["Read more", "{{name}}", "<b>bold</b>", ""]))
    end_tag = f"</{draw(st.sampled_from(['a', 'A']))}>"
    closing = "" if tag == "area" else body + end_tag
    expected_closing = "" if tag == "area" else _escape_text(body) + end_tag
    trackable = url in _GOOD_URLS and not off
    return Piece(source_tag + closing, expected_tag + ">" + expected_closing, bad=url in _BAD_URLS,
                 tracked=(url,) if trackable else ())


def _href_expected(url: str, written: str) -> str:
    if url in _RESERVED_RENDERED:
        return html.escape(_RESERVED_RENDERED[url])
    return _fill_written(written)


_plain_pieces = st.one_of(
    st.text(alphabet="abcXYZ .,;!?-\n\t", max_size=12).map(lambda s: Piece(s, s)),
    st.sampled_from(["&amp;", "&lt;", "&nbsp;", "&#169;", " & ", "<p>", "</p>", "<br/>", "<td style=\"a:b\">",
                     "<!DOCTYPE html>", "<!-- <a href=\"/relative\">x</a> -->", "</body>", "<BODY>",
                     "<script>var a = '<a href=\"/nope\">';</script>", "<style>a[href^='/x']{}</style>"])
    .map(lambda s: Piece(s, s)),
    st.sampled_from(["{{name}}", "{{ city }}", "{{missing}}"]).map(lambda s: Piece(s, _escape_text(s))),
    st.sampled_from(list(_RESERVED_RENDERED)).map(lambda s: Piece(s, html.escape(_RESERVED_RENDERED[s]))),
)

documents = st.lists(st.one_of(_plain_pieces, link_pieces()), max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=documents)
def test_property_rendering_without_tracking_gives_back_the_input_filled(pieces: list[Piece]) -> None:
    source = "".join(piece.source for piece in pieces)
    try:
        prepared = prepare_content(source, None, tracking_enabled=False)
    except ContentError as error:
        assert any(piece.bad for piece in pieces), error
        assert error.field == "html"
        return
    assert not any(piece.bad for piece in pieces)
    maker = FakeLinks()
    rendered, _ = render(prepared, NAMES, maker)
    assert rendered == "".join(piece.expected for piece in pieces)
    assert maker.clicks == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=documents)
def test_property_tracking_numbers_each_distinct_url_once_in_order(pieces: list[Piece]) -> None:
    if any(piece.bad for piece in pieces):
        return
    source = "".join(piece.source for piece in pieces)
    prepared = prepare_content(source, None, track_opens=False)

    occurrences = [url for piece in pieces for url in piece.tracked]
    assert [u.url for u in prepared.urls[3:]] == list(dict.fromkeys(occurrences))
    assert [u.url_id for u in prepared.urls] == list(range(1, 4 + len(prepared.urls[3:])))
    assert len(re.findall(r"\{\{@link:\d+\}\}", prepared.html)) == len(occurrences)
    rendered, _ = render(prepared, NAMES, FakeLinks())
    assert rendered.count("https://t.example/r/") == len(occurrences)


_attribute_soup = st.lists(st.sampled_from([
    ' href="https://x.example/?a=1&amp;b=2"', " HREF='https://x.example/q'", " href=https://x.example/u", " href",
    " href=", ' title="a &quot;b&quot;"', " data-track=off", ' DATA-TRACK="OFF"', "\n\tclass = 'c d'", " =x",
    ' a"b=c', " checked", "/", ' alt="&#169; &copy"', " x=\"'\" ", " y='\"'",
]), max_size=6)


@given(soup=_attribute_soup, close=st.sampled_from([">", "/>", " >"]))
def test_property_raw_attributes_agree_with_html_parser(soup: list[str], close: str) -> None:
    """The spans we rewrite are exactly the attributes the standard parser reports."""
    tag_text = "<a" + "".join(soup) + close
    seen: list[list[tuple[str, str | None]]] = []

    class Recorder(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            seen.append(attrs)

    recorder = Recorder()
    recorder.feed(tag_text)
    recorder.close()
    if not seen or recorder.get_starttag_text() != tag_text:
        return  # not a start tag at all for the parser: nothing to agree on
    assert [(a.name, a.value) for a in links._raw_attributes(tag_text)] == seen[0]


def test_a_honeypot_link_is_hidden_where_the_pixel_goes_and_leads_to_the_site() -> None:
    html = '<html><body><p><a href="https://shop.example.com/x?utm=1">Shop</a></p></body></html>'
    prepared = prepare_content(html, None, honeypot=True)
    assert prepared.html.index(links.HONEYPOT_LINK) < prepared.html.index("</body>")
    honeypot = prepared.urls[-1]
    assert (honeypot.url_id, honeypot.url, honeypot.type) == (links.URL_ID_HONEYPOT, "https://shop.example.com/",
                                                              "click")
    rendered, _ = render(prepared, {}, FakeLinks())
    hidden = re.search(r'<a href="([^"]+)" style="display:none[^>]*aria-hidden="true" tabindex="-1"></a>', rendered)
    assert hidden and hidden.group(1) == "https://t.example/r/0"
    assert links.HONEYPOT_LINK not in prepare_content(html, None).html  # only when the delivery asks
    assert prepare_content("<p>no links</p>", None, honeypot=True).urls == links.FIXED_URLS
