"""urltemplate: the placeholder rules shared by rendering and the redirect endpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.urltemplate import PLACEHOLDER_RE, fill_url, host_is_personalised, placeholders_in, quote_param

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("written, name", [
    ("{{name}}", "name"),
    ("{{ name }}", "name"),
    ("{{\tfirst_name\n}}", "first_name"),
    ("{{_x}}", "_x"),
    ("{{profile.city-2}}", "profile.city-2"),
])
def test_placeholder_re_accepts_names(written: str, name: str) -> None:
    match = PLACEHOLDER_RE.fullmatch(written)
    assert match is not None and match.group(1) == name


@pytest.mark.parametrize("written", ["{{1abc}}", "{{@open}}", "{{ @link:4 }}", "{{a b}}", "{{}}", "{name}", "{{a/b}}"])
def test_placeholder_re_refuses_other_text(written: str) -> None:
    assert PLACEHOLDER_RE.search(written) is None


def test_placeholders_in_is_sorted_and_unique() -> None:
    assert placeholders_in("https://x/{{b}}/{{ a }}?c={{b}}&d={{@open}}") == ("a", "b")
    assert placeholders_in("https://x/") == ()


def test_fill_url_quotes_every_value_completely() -> None:
    url = fill_url("https://x.example/p/{{ path }}?q={{q}}#{{frag}}", {"path": "a/b c", "q": "1&2=3?#@", "frag": "é"})
    assert url == "https://x.example/p/a%2Fb%20c?q=1%262%3D3%3F%23%40#%C3%A9"


def test_fill_url_missing_and_none_are_empty() -> None:
    assert fill_url("https://x/?a={{a}}&b={{b}}", {"b": None}) == "https://x/?a=&b="  # type: ignore[dict-item]


def test_fill_url_never_rescans_substituted_values() -> None:
    assert fill_url("https://x/{{a}}/{{b}}", {"a": "{{b}}", "b": "B"}) == "https://x/%7B%7Bb%7D%7D/B"


def test_quote_param_leaves_nothing_unescaped_but_unreserved_characters() -> None:
    assert quote_param("AZaz09-_.~/?#[]@!$&'()*+,;= ") == "AZaz09-_.~%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D%20"
    assert quote_param(None) == ""
    assert quote_param(42) == "42"


@pytest.mark.parametrize("url", [
    "https://{{domain}}/x",
    "https://www.{{domain}}/x",
    "https://shop.example{{tld}}/x",
    "https://{{user}}@example.com/",
    "https://example.com:{{port}}/",
    "http{{s}}://example.com/",
    "{{site}}/x",
    "  {{ site }}",
    "{{scheme}}://example.com/",
    "//{{cdn}}/x",
    "https:{{domain}}/x",          # browsers read "https:host" as "https://host"
    "https:\\\\{{domain}}/x",       # and backslashes as slashes
    "https://{{host}}?q=1#{{fragment}}",
])
def test_host_is_personalised(url: str) -> None:
    assert host_is_personalised(url)


@pytest.mark.parametrize("url", [
    "https://example.com/{{path}}",
    "https://example.com?q={{q}}",
    "https://example.com#{{fragment}}",
    "https://example.com/a/{{b}}/c?d={{e}}#{{f}}",
    "https://example.com",
    "mailto:{{email}}",
    "tel:{{phone}}",
    "/relative/{{x}}",
    "page-{{x}}.html",
])
def test_host_is_not_personalised(url: str) -> None:
    assert not host_is_personalised(url)


_values = st.text(min_size=0, max_size=30)


@given(path=_values, query=_values, fragment=_values)
def test_filled_values_never_change_scheme_host_or_structure(path: str, query: str, fragment: str) -> None:
    """Whatever a recipient's attributes hold, the filled URL goes to the host the author wrote."""
    filled = fill_url("https://shop.example.com/p/{{path}}?q={{query}}#{{fragment}}",
                      {"path": path, "query": query, "fragment": fragment})
    parts = urlsplit(filled)
    assert (parts.scheme, parts.netloc) == ("https", "shop.example.com")
    assert unquote(parts.path) == "/p/" + path
    assert unquote(parts.query) == "q=" + query
    assert unquote(parts.fragment) == fragment


def test_importing_urltemplate_stays_light() -> None:
    """The redirect path imports it: no delivery code, no HTML parser, no pydantic."""
    probe = ("import json, sys; import chalicelib.urltemplate; "
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('chalicelib.deliveries', 'pydantic', "
             "'html.parser')))))")
    output = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(output.stdout.strip().splitlines()[-1]) == []
