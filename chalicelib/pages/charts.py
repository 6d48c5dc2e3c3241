"""Charts as inline SVG, drawn on the server by pygal: no script, no asset to serve.

pygal always writes a <script> (its tooltip configuration) and a hidden
tooltip group with an inline style attribute; both are removed, since the
pages run no script and allow no inline style attribute. What remains is
the chart and one <style> element, which the page allows by its SHA-256
(Page.allow_style). Every label is text in the SVG tree, escaped when
serialised.
"""

from __future__ import annotations

from typing import Any, Sequence

# bandit B405: ElementTree edits the tree pygal built in this process; it parses no input.
from xml.etree import ElementTree  # nosec B405

import pygal
from markupsafe import Markup
from pygal.style import Style

from chalicelib.pages.web import Page

SVG = "{http://www.w3.org/2000/svg}"
FONT = '"Liberation Sans",Helvetica,Arial,sans-serif'
STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#1f2933",
    foreground_strong="#1f2933",
    foreground_subtle="#9aa5b1",
    opacity=".85",
    opacity_hover="1",
    colors=("#1f6feb", "#e8590c", "#2f9e44", "#ae3ec9", "#f08c00", "#0c8599", "#e03131", "#5c7cfa"),
    font_family=FONT,
    label_font_family=FONT,
    major_label_font_family=FONT,
    value_font_family=FONT,
    title_font_family=FONT,
    legend_font_family=FONT,
    tooltip_font_family=FONT,
    label_font_size=12,
    major_label_font_size=12,
    legend_font_size=13,
    title_font_size=15,
    value_font_size=12,
)
COMMON = {"style": STYLE, "js": [], "disable_xml_declaration": True, "explicit_size": False,
          "print_values": False, "show_y_guides": True, "legend_at_bottom": True, "legend_box_size": 12,
          "margin": 8, "spacing": 10, "truncate_label": -1, "truncate_legend": -1, "include_x_axis": True,
          "min_scale": 2, "max_scale": 6}


def _strip(root: ElementTree.Element) -> str:
    """Remove the script, the tooltip, comments and style attributes; the <style> text that remains."""
    css = ""
    for parent in list(root.iter()):
        for child in list(parent):
            tag = child.tag if isinstance(child.tag, str) else ""
            dropped = tag in ("script", f"{SVG}script") or "tooltip" in (child.get("class") or "").split()
            if not tag or dropped:  # a comment (pygal's credits), its script or its tooltip
                parent.remove(child)
            elif tag in ("style", f"{SVG}style"):
                css += child.text or ""
            else:
                child.attrib.pop("style", None)  # an inline style attribute would need 'unsafe-inline'
    return css


def svg(page: Page, chart: Any, title: str) -> Markup:
    """The chart as an inline <svg> (role img, titled), its style allowed on `page`."""
    root = chart.render_tree()
    page.allow_style(_strip(root))
    root.set("role", "img")
    root.set("aria-label", title)
    ElementTree.register_namespace("", SVG[1:-1])
    markup = ElementTree.tostring(root, encoding="unicode", method="xml")
    # bandit B704 (Markup): serialised from pygal's tree (text escaped by the serialiser), scripts stripped above.
    return Markup(markup)  # nosec B704


def bars(page: Page, title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]],
         horizontal: bool = False, height: int = 320, **options: Any) -> Markup:
    chart_type = pygal.HorizontalBar if horizontal else pygal.Bar
    chart = chart_type(width=760, height=height, show_legend=len(series) > 1, **{**COMMON, **options})
    chart.x_labels = list(labels)
    for name, values in series:
        chart.add(name, list(values))
    return svg(page, chart, title)


def lines(page: Page, title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]],
          height: int = 320, **options: Any) -> Markup:
    chart = pygal.Line(width=760, height=height, show_legend=len(series) > 1, fill=False, dots_size=2.5,
                       x_label_rotation=0, show_minor_x_labels=False, **{**COMMON, **options})
    chart.x_labels = list(labels)
    chart.x_labels_major = list(labels[:: max(1, len(labels) // 8)])
    for name, values in series:
        chart.add(name, list(values))
    return svg(page, chart, title)


def pie(page: Page, title: str, slices: Sequence[tuple[str, float]], height: int = 300) -> Markup:
    chart = pygal.Pie(width=520, height=height, inner_radius=.45, show_legend=True,
                      **{**COMMON, "legend_at_bottom": False})
    for name, value in slices:
        chart.add(name, [value])
    return svg(page, chart, title)
