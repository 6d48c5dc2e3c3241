"""Where a recipient's value may stand in HTML: escaped where escaping works, refused where it cannot.

A hostile value is rendered in every context preparation accepts, and the
result is parsed back with the standard library's parser (as a browser
would tokenise it): the value must come back as exactly one text node or
one attribute value, never as a tag, an attribute or a URL scheme of its own.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser

import pytest

from chalicelib.deliveries.links import ContentError, prepare_content, render
from tests.unit.test_links import FakeLinks as Links

HOSTILE = [
    "x onerror=alert(1)",
    "\" onmouseover=\"alert(1)",
    "' onmouseover='alert(1)",
    "<script>alert(1)</script>",
    "</textarea><img src=x onerror=alert(1)>",
    "--><img src=x onerror=alert(1)><!--",
    "javascript:alert(1)",
    "&lt;script&gt;",
    "{{other}}",
]


class Tokens(HTMLParser):
    """What a tokeniser sees: tags with their attributes, and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


def tokens(document: str) -> Tokens:
    parser = Tokens()
    parser.feed(document)
    parser.close()
    return parser


SAFE_TEMPLATES = {
    "text": ("<p>{{v}}</p>", lambda t, v: t.tags == [("p", [])] and "".join(t.text) == v),
    "double-quoted attribute": ('<img alt="{{v}}" src="https://cdn.example/a.png">',
                                lambda t, v: t.tags == [("img", [("alt", v), ("src", "https://cdn.example/a.png")])]),
    "single-quoted attribute": ("<p title='{{v}}'>x</p>", lambda t, v: t.tags == [("p", [("title", v)])]),
    "class and data attributes": ('<div class="c {{v}}" data-x="{{v}}">x</div>',
                                  lambda t, v: t.tags == [("div", [("class", f"c {v}"), ("data-x", v)])]),
    "textarea": ("<textarea>{{v}}</textarea>",
                 lambda t, v: [tag for tag, _ in t.tags] == ["textarea"] and "".join(t.text) == v),
    "title": ("<title>{{v}}</title>", lambda t, v: [tag for tag, _ in t.tags] == ["title"] and "".join(t.text) == v),
    "comment": ("<!-- {{v}} --><p>x</p>", lambda t, v: [tag for tag, _ in t.tags] == ["p"] and len(t.comments) == 1),
    "untracked link path": ('<a data-track="off" href="https://shop.example/p/{{v}}">x</a>',
                            lambda t, v: t.tags[0][1][0][1].startswith("https://shop.example/p/")
                            and " " not in t.tags[0][1][0][1]),
    "untracked unquoted link": ("<a data-track=off href=https://shop.example/p/{{v}}>x</a>",
                                lambda t, v: len(t.tags[0][1]) == 1 and t.tags[0][1][0][0] == "href"),
    "tracked link query": ('<a href="https://shop.example/p?x={{v}}">x</a>',
                           lambda t, v: len(t.tags) == 1 and len(t.tags[0][1]) == 1
                           and t.tags[0][1][0][1].startswith("https://t.example/r/4?")),
}


@pytest.mark.parametrize("context", list(SAFE_TEMPLATES))
@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_stay_one_text_or_attribute_value(context: str, value: str) -> None:
    template, holds = SAFE_TEMPLATES[context]
    rendered, _ = render(prepare_content(template.replace("{{v}}", "{{name}}"), None, track_opens=False),
                         {"name": value, "other": "SECRET"}, Links())
    assert holds(tokens(rendered), value), rendered
    assert "SECRET" not in rendered


REFUSED = {
    '<img alt={{name}} src="https://cdn.example/a.png">': "unquoted value of alt=",
    "<p title=x{{name}}>x</p>": "unquoted value of title=",
    "<script>var name = '{{name}}';</script>": "inside <script>",
    "<style>.c { color: {{name}} }</style>": "inside <style>",
    '<p onclick="greet(\'{{name}}\')">x</p>': "event handler onclick=",
    '<body onload="go({{name}})">': "event handler onload=",
    '<p style="color: {{name}}">x</p>': "style attribute",
    '<img src="https://cdn.example/{{name}}.png">': "URL attribute src=",
    '<img srcset="https://cdn.example/{{name}}.png 2x">': "URL attribute srcset=",
    '<form action="https://x.example/{{name}}"></form>': "URL attribute action=",
    '<td background="{{name}}">x</td>': "URL attribute background=",
    '<iframe srcdoc="{{name}}"></iframe>': "srcdoc=",
    '<meta http-equiv="refresh" content="0;url={{name}}">': "attribute of <meta>",
    '<svg><animate attributeName="href" values="{{name}}"/></svg>': "attribute of <animate>",
    "<p {{name}}>x</p>": "tag or attribute name",
    '<p title="a" {{name}}="b">x</p>': "tag or attribute name",
    "<{{name}}>x": "right after '<'",
    "<p>1 <{{ name }}</p>": "right after '<'",
    '<a href="javascript:go(\'{{name}}\')">x</a>': "javascript: link",
    "<!DOCTYPE {{name}}><p>x</p>": "<!DOCTYPE>",
}


@pytest.mark.parametrize(("document", "place"), list(REFUSED.items()))
def test_contexts_escaping_cannot_protect_are_refused_naming_the_place(document: str, place: str) -> None:
    with pytest.raises(ContentError) as refused:
        prepare_content(document, None)
    assert refused.value.field == "html"
    assert place in refused.value.message, refused.value.message
    assert "{{name}}" in refused.value.message or "{{ name }}" in refused.value.message


def test_the_place_says_the_line() -> None:
    with pytest.raises(ContentError, match=r"line 4 in <img>: in the unquoted value of alt="):
        prepare_content("<p>\nHi {{name}}\n<img\n alt={{name}}></p>", None)


@pytest.mark.parametrize("document", [
    '<img src="{{mirror_url}}" alt="">',  # our own URLs are not a recipient's values
    "<script>var unsubscribe = '{{unsubscribe_url}}';</script>",
    '<p style="color:red" title="{{name}}">x</p>',  # a safe attribute next to an unsafe one
    '<img alt="{{name}}" onerror="this.remove()" src="https://cdn.example/a.png">',
    "<style>p { color: red }</style><p>{{name}}</p>",
])
def test_placeholders_elsewhere_in_the_same_tags_are_fine(document: str) -> None:
    prepare_content(document, None)


def test_values_render_escaped_for_both_quote_styles() -> None:
    rendered, _ = render(prepare_content("<p title='{{name}}' lang=\"{{name}}\">{{name}}</p>", None,
                                         track_opens=False), {"name": "'\"<&>"}, Links())
    escaped = html.escape("'\"<&>")
    assert rendered == f"<p title='{escaped}' lang=\"{escaped}\">{escaped}</p>"


@pytest.mark.parametrize("document", ["<p>&lt;{{name}}&gt;</p>",
                                      # found by test_links' property test: the "<" decoded from "&lt;" was
                                      # taken for a bare one when a declaration or comment stood between
                                      "<p>&lt;<!DOCTYPE html>{{name}}</p>", "<p>&lt;<!-- x -->{{name}}</p>"])
def test_an_escaped_angle_bracket_before_a_placeholder_is_text(document: str) -> None:
    rendered, _ = render(prepare_content(document, None, track_opens=False),
                         {"name": "img src=x onerror=alert(1)"}, Links())
    assert [tag for tag in tokens(rendered).tags if tag[0] != "!doctype"] == [("p", [])]
