"""The dashboard in headless chromium: a person logs in, reads a delivery, its hot clicks, a recipient, logs out.

The delivery is the demo's (infra/local_runtime/demo.py) to a few dozen
mailbox simulator addresses, sent through the MTA, and its recipients'
reactions are the demo's engagement plan (infra/local_runtime/engagement.py)
played through the real hit endpoints over HTTP; the hits then go the way
every hit goes (Kinesis, the Firehose pump, the tracking workflow). What
the pages show is compared with what the API answers for the same delivery.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from chalicelib.settings import get_settings
from infra.local_runtime import engagement
from infra.local_runtime.demo import demo_delivery
from infra.local_runtime.firehose_pump import pumps_for
from infra.local_runtime.ses_outbox import OUTBOX
from tests.browser.conftest import SCREENSHOTS, WatchedPage
from tests.conftest import API_TOKEN

pytestmark = pytest.mark.browser


def send_and_react(api: Any, mta: Any, resources: Any, live_server: str, body: dict[str, Any],
                   user_agent: str | None = None, seed: int = 7) -> tuple[str, list[engagement.Hit]]:
    """Create and send `body`, play the demo's engagement plan against the live app, run the workflow."""
    response = api.post("/api/deliveries", body=body)
    assert response.status_code == 201, response.json_body
    delivery_id = response.json_body["id"]
    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 202
    mta.drain()
    # People do not click within seconds of the send, link scanners do (classify_min_click_after_send_ms):
    # the plan plays once that window has passed, so the pages show people as a sender would see them.
    time.sleep(get_settings().classify_min_click_after_send_ms / 1000)
    messages = [message.to_dict() for message in OUTBOX.messages() if message.tags.get("delivery_id") == delivery_id]
    rates = engagement.Rates(opens=0.7, clicks=0.6, optouts=0.1, mirror_views=0.1)
    hits = engagement.plan(messages, duration=0, seed=seed, rates=rates)
    if user_agent:
        hits = [engagement.Hit(hit.at, hit.method, hit.path, user_agent, hit.kind) for hit in hits]
    answered = engagement.play(hits, live_server, speed=0)
    assert answered["failed"] == 0 and sum(answered.values()) == len(hits), answered
    for pump in pumps_for(resources):
        pump.step()
    assert api.post("/api/workflow/run").json_body["status"] == "completed"
    return delivery_id, hits


def small_demo(recipients: int = 30) -> dict[str, Any]:
    """The demo delivery to `recipients` simulator addresses: mostly delivered, a few bounces and complaints."""
    body = demo_delivery()
    people = []
    for index in range(1, recipients + 1):
        kind = "bounce" if index % 15 == 0 else "complaint" if index % 29 == 0 else "success"
        people.append({"id": f"demo-{index:03d}", "email": f"{kind}+{index}@simulator.amazonses.com",
                       "attributes": {"first_name": f"Reader {index}", "member_id": f"m-{index}"}})
    return {**body, "recipients": people}


def log_in(browser: WatchedPage, live_server: str, path: str = "/dashboard") -> None:
    page = browser.page
    page.goto(f"{live_server}{path}")
    assert "/dashboard/login" in page.url
    browser.screenshot("dashboard-login", full_page=False)
    page.fill("#token", API_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}{path}")


def record_page_timing(page: Any, name: str) -> None:
    """The page's weight and paint times as the browser measured them, into out/dashboard-timing.json
    (figures for the README and the bench, not assertions)."""
    import json

    from tests.browser.conftest import SCREENSHOTS

    timing = page.evaluate("""() => {
        const navigation = performance.getEntriesByType('navigation')[0];
        const paints = Object.fromEntries(performance.getEntriesByType('paint').map(p => [p.name, p.startTime]));
        return {transfer_bytes: navigation.transferSize, html_bytes: navigation.decodedBodySize,
                resources: performance.getEntriesByType('resource').length,
                response_end_ms: navigation.responseEnd, dom_content_loaded_ms: navigation.domContentLoadedEventEnd,
                first_paint_ms: paints['first-paint'], first_contentful_paint_ms: paints['first-contentful-paint']};
    }""")
    path = SCREENSHOTS.parent / "dashboard-timing.json"
    figures = json.loads(path.read_text()) if path.exists() else {}
    figures[name] = timing
    path.write_text(json.dumps(figures, indent=2))


def number(text: str) -> float:
    return float(re.sub(r"[^0-9.]", "", text) or "nan")


def test_a_person_reads_the_demo_delivery(browser_page: WatchedPage, live_server: str, api: Any, mta: Any,
                                          resources: Any) -> None:
    delivery_id, hits = send_and_react(api, mta, resources, live_server, small_demo())
    page = browser_page.page

    log_in(browser_page, live_server)
    assert page.locator("h1").first.inner_text() == "Deliveries"
    browser_page.screenshot("dashboard-deliveries")

    page.click(f"a[href='/dashboard/deliveries/{delivery_id}']")
    page.wait_for_url(f"**/dashboard/deliveries/{delivery_id}")
    indicators = api.get(f"/api/deliveries/{delivery_id}/indicators").json_body
    for name in ("success", "opens_unique", "opens_total", "opens_estimated", "clicks_unique", "clicks_total",
                 "persons_clicking", "optouts", "mirror_views", "opens_unique_human", "opens_total_human",
                 "clicks_unique_human", "clicks_total_human"):
        assert number(page.locator(f"[data-kpi={name}]").inner_text()) == indicators[name], name
    assert number(page.locator("[data-kpi=machine_hits]").inner_text()) == indicators["machine"]["hits"]
    # People first; the switch puts every hit (Campaign's indicators) first.
    assert page.locator("h2.tiles-title").first.inner_text().startswith("People")
    page.click("nav.switch a")
    page.wait_for_url("**counting=all")
    assert page.locator("h2.tiles-title").first.inner_text().startswith("All hits")
    page.click("nav.switch a")
    page.wait_for_url("**counting=people")
    assert indicators["clicks_total"] == sum(1 for hit in hits if hit.kind == "click")
    assert indicators["optouts"] == sum(1 for hit in hits if hit.kind == "optout") > 0
    counts = api.get(f"/api/deliveries/{delivery_id}").json_body["counts"]
    for status, value in counts.items():
        assert number(page.locator(f"[data-count={status}]").inner_text()) == value, status
    browser_page.screenshot("dashboard-delivery")
    browser_page.screenshot("readme-delivery", full_page=False)
    record_page_timing(page, "delivery")

    assert page.locator("tr.total td").first.inner_text() == "All domains"
    assert number(page.locator("tr.total td").nth(1).inner_text()) == 30  # every message SES accepted
    # By domain too, people first: recipients a person was seen opening / clicking, beside all of them.
    total = api.get(f"/api/deliveries/{delivery_id}/domains").json_body["total"]
    cells = page.locator("tr.total td[data-domain-count]")
    assert [cells.nth(index).get_attribute("data-domain-count") for index in range(4)] == [
        "opens_human", "opens", "clicks_human", "clicks"]
    for index in range(4):
        name = cells.nth(index).get_attribute("data-domain-count")
        assert number(cells.nth(index).inner_text().split("\n")[0]) == total[name], name
    assert total["opens"] >= total["opens_human"] and total["clicks"] >= total["clicks_human"]
    page.locator("section.card:has(tr.total)").screenshot(path=str(SCREENSHOTS / "dashboard-delivery-domains.png"))

    page.click("nav.tabs >> text=Tracking")
    page.wait_for_url(f"**/dashboard/deliveries/{delivery_id}/tracking")
    rows = page.locator("section.card tbody tr")
    assert len(hits) <= 50  # one page
    assert sorted(rows.locator("td:nth-child(2)").all_inner_texts()) == sorted(hit.kind for hit in hits)
    # Who made each hit, as the API says (a class and its reasons, newest first like the API's page).
    logged = api.get(f"/api/deliveries/{delivery_id}/tracking?limit=50").json_body["items"]
    who = page.locator("section.card tbody td[data-class]")
    assert [who.nth(row).get_attribute("data-class") for row in range(who.count())] == [
        item["class"] for item in logged]
    assert {item["class"] for item in logged} >= {"human", "machine"}
    browser_page.screenshot("dashboard-delivery-tracking-all")
    page.click("nav.filters >> text=click")
    page.wait_for_url("**/tracking?kind=click")  # click returns once navigation starts, not once it has loaded
    assert page.locator("section.card tbody tr").count() == sum(1 for hit in hits if hit.kind == "click")
    browser_page.screenshot("dashboard-delivery-tracking")

    page.click("nav.tabs >> text=Hot clicks")
    page.wait_for_url(f"**/dashboard/deliveries/{delivery_id}/hot-clicks")
    frame = page.frame_locator("iframe.message")
    marked = frame.locator("a[data-sendtrail-link]").evaluate_all(
        "links => links.map(link => [link.dataset.sendtrailLink, link.querySelector('.sendtrail-badge').textContent])")
    by_link = {url_id: number(text) for url_id, text in marked}  # a link written twice has its badge twice
    assert len(marked) > len(by_link) and all(by_link[url_id] == number(text) for url_id, text in marked)
    badges = list(by_link.values())
    hidden = float(page.locator("[data-hidden-percent]").get_attribute("data-hidden-percent"))
    assert badges and hidden > 0, (badges, hidden)
    assert abs(sum(badges) + hidden - 100) <= 0.01 * (len(badges) + 1), (badges, hidden)
    sandbox = page.locator("iframe.message").get_attribute("sandbox")
    assert sandbox == "", sandbox  # every restriction: no scripts, no same origin
    browser_page.screenshot("dashboard-hot-clicks")
    browser_page.screenshot("readme-hot-clicks", full_page=False)

    recipient_id, tracking = next(
        (candidate, body) for candidate, body in (
            (f"demo-{index:03d}", api.get(f"/api/recipients/demo-{index:03d}/tracking").json_body)
            for index in range(1, 31)) if any(item["kind"] == "click" for item in body["items"]))
    page.fill("header.top input[name=id]", recipient_id)
    page.click("header.top form.find button")
    page.wait_for_url(f"**/dashboard/recipients/{recipient_id}")
    assert page.locator("[data-recipient]").inner_text() == recipient_id
    assert page.locator("section.card tbody tr").count() == len(tracking["items"])
    assert page.locator("section.card tbody tr").first.locator("td").nth(1).inner_text() == tracking["items"][0]["kind"]
    classes = page.locator("section.card tbody td[data-class]")
    assert [classes.nth(row).get_attribute("data-class") for row in range(classes.count())] == [
        item["class"] for item in tracking["items"]]
    browser_page.screenshot("dashboard-recipient")

    page.click("header.top nav >> text=Status")
    page.wait_for_url("**/dashboard/status")
    components = api.get("/api/status").json_body["components"]
    assert page.locator("section.card tbody tr").count() == len(components)
    browser_page.screenshot("dashboard-status")

    page.click("header.top button:has-text('Log out')")
    page.wait_for_url("**/dashboard/login")
    page.goto(f"{live_server}/dashboard/deliveries/{delivery_id}")
    assert "/dashboard/login" in page.url


MARKUP = {
    "subject": '<script>alert("subject")</script><b id="injected-subject">subject</b>',
    "label": '<img id="injected-label" src="x" onerror="alert(\'label\')">',
    "url": 'https://shop.example.com/q?x="><script>alert("url")</script><i id="injected-url">',
    "user_agent": '<svg id="injected-ua" onload="alert(\'ua\')"></svg><script>alert("ua")</script>',
}


def test_markup_in_stored_strings_renders_inert_everywhere(browser_page: WatchedPage, live_server: str, api: Any,
                                                           mta: Any, resources: Any) -> None:
    """A subject, a link label, a URL and a user agent carrying markup and script show as text on every page."""
    from html import escape

    html = (f'<html><body><p><a href="{escape(MARKUP["url"])}">{escape(MARKUP["label"])}</a></p>'
            '<p><a href="{{unsubscribe_url}}">Unsubscribe</a></p></body></html>')
    body = {**small_demo(6), "name": MARKUP["subject"], "subject": MARKUP["subject"], "html": html, "text": None}
    body.pop("text")
    delivery_id, _ = send_and_react(api, mta, resources, live_server, body, user_agent=MARKUP["user_agent"])
    tracked = next(f"demo-{index:03d}" for index in range(1, 7)
                   if api.get(f"/api/recipients/demo-{index:03d}/tracking").json_body["items"])
    page = browser_page.page
    log_in(browser_page, live_server)
    pages = (("/dashboard", ["subject"]), (f"/dashboard/deliveries/{delivery_id}", ["subject", "label", "url"]),
             (f"/dashboard/deliveries/{delivery_id}/hot-clicks", ["subject", "label", "url"]),
             (f"/dashboard/recipients/{tracked}", ["user_agent"]))
    for path, shows in pages:
        page.goto(f"{live_server}{path}")
        assert page.locator("[id^=injected]").count() == 0, path
        assert page.locator("script").count() == 0, path
        text = page.locator("main").inner_text()
        for name in shows:
            assert MARKUP[name] in text or MARKUP[name].split("<")[1] in text, (path, name)
        for frame in page.frames:
            assert frame.locator("[id^=injected]").count() == 0, (path, frame.url)
    browser_page.screenshot("dashboard-markup-inert")
    assert browser_page.dialogs == []
