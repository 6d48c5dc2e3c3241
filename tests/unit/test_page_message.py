"""Hot clicks' preview of the message: badges where the links are, nothing that loads or runs."""

from __future__ import annotations

from chalicelib.pages.message import BADGE_CSS, preview

MARK = "data-sendtrail-link"


def test_each_marked_link_gets_its_badge_and_the_rest_stays_byte_for_byte() -> None:
    html = ('<!DOCTYPE html><html><head><title>t</title></head><body>\n'
            f'<p>Read <a href="https://a.example/x?y=1&amp;z=2" {MARK}="2">the news</a> and '
            f'<a href="https://b.example/" {MARK}="3" class="c">more</a>, <a href="mailto:x@y">write</a>.</p>\n'
            '</body></html>')
    shown = preview(html, MARK, {2: "12.50 %", 3: "0.00 %"})
    badge = '<span class="sendtrail-badge">12.50 %</span>'
    assert f'<a href="https://a.example/x?y=1&amp;z=2" {MARK}="2">{badge}the news</a>' in shown
    assert f'{MARK}="3" class="c"><span class="sendtrail-badge">0.00 %</span>more</a>' in shown
    assert '<a href="mailto:x@y">write</a>' in shown
    assert shown.startswith("<!DOCTYPE html><html><head><title>t</title><style>" + BADGE_CSS + "</style></head>")


def test_scripts_handlers_frames_and_remote_loads_are_left_out() -> None:
    html = ('<html><head><link rel="stylesheet" href="https://cdn.example/x.css"><base href="https://evil.example/">'
            '<meta http-equiv="refresh" content="0;url=https://evil.example/"><script>alert(1)</script>'
            '<style>body{background:url(https://track.example/bg.png)} @import url("https://cdn.example/y.css");</style>'
            '</head><body onload="alert(2)"><img src="https://track.example/p.gif" alt="Sale" width="10">'
            '<img src="data:image/gif;base64,R0lGOD" alt="inline"><iframe src="https://evil.example/"></iframe>'
            '<p style="background:url(//track.example/a.png)" onclick="alert(3)">hi</p><script src="https://x/y.js">'
            '</script><noscript><img src="https://track.example/n.gif"></noscript></body></html>')
    shown = preview(html, MARK, {})
    lowered = shown.lower()
    for gone in ("<script", "alert(", "<iframe", "<link", "<base", "http-equiv", "track.example", "cdn.example",
                 "onload", "onclick", "<noscript", "evil.example"):
        assert gone not in lowered, gone
    assert '<img data-sendtrail-remote alt="Sale" width="10">' in shown
    assert 'src="data:image/gif;base64,R0lGOD"' in shown
    assert "<p>hi</p>" not in shown and ">hi</p>" in shown


def test_a_fragment_without_head_gets_the_badge_style_after_its_doctype() -> None:
    assert preview("<!doctype html><p>x</p>", MARK, {}).startswith(f"<!doctype html><style>{BADGE_CSS}</style><p>x")
    assert preview("<p>x</p>", MARK, {}).startswith(f"<style>{BADGE_CSS}</style><p>x")
    assert preview("<p><script>never closed", MARK, {}).endswith("<p>")
