"""Hostile-input test: every public route, thousands of generated requests, none answered badly.

Requests come from a seeded generator (tests/hostile_requests.py) and go
in-process through the API Gateway emulation into the Chalice app, with
moto behind it. No answer may be a 5xx, hold a stack trace, reflect markup
from the request unescaped, or redirect anywhere but the URL registered for
the token's delivery and URL id (with `p` applied; with parameters added
only for the delivery that forwards them). HEAD answers have no body, and
exactly the GETs of genuine links are recorded.

`make test` runs HIT_FUZZ_REQUESTS (default 2,000); `make fuzz` runs
100,000 (HIT_FUZZ_REQUESTS=100000). HIT_FUZZ_SEED picks another sequence.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

from chalicelib.data.deliveries import DeliveryStore
from chalicelib.settings import get_settings
from tests.conftest import read_stream
from tests.hostile_requests import RequestGenerator, links_for, violations

REQUESTS = int(os.environ.get("HIT_FUZZ_REQUESTS", "2000"))
SEED = int(os.environ.get("HIT_FUZZ_SEED", "13"))
HTML = ('<p>Hello {{first_name}}. <a href="https://shop.example.com/autumn?utm_source=gazette#top">Shop</a> '
        '<a href="https://shop.example.com/members/{{member_id}}?ref=gazette">Offers</a> '
        '<a href="https://prefs.example.com/manage">Preferences</a> '
        '<a href="{{mirror_url}}">View online</a> <a href="{{unsubscribe_url}}">Unsubscribe</a></p>')
ATTRIBUTES = {"first_name": "Ann <b>", "member_id": "m 1/é?&#"}


def _create(api: Any, name: str, forward: bool) -> str:
    response = api.post("/api/deliveries", body={
        "name": name, "subject": "Autumn", "from_address": "news@example.com", "html": HTML,
        "recipients": [{"id": "ann", "email": "ann@example.net", "attributes": ATTRIBUTES}],
        "tracking": {"forward_query_params": forward,
                     "urls": [{"match": "https://prefs.example.com/manage", "type": "optout"}]},
    })
    assert response.status_code == 201, response.body
    return response.json_body["id"]


def test_hostile_requests_on_every_public_route(api: Any, client: Any) -> None:
    settings = get_settings()
    store = DeliveryStore(settings.deliveries_table, settings.delivery_logs_table)
    ring = settings.keyring()
    links = []
    for name, forward in (("plain", False), ("forwarding", True)):
        delivery_id = _create(api, name, forward)
        urls = store.get_links(delivery_id)["urls"]  # type: ignore[index]
        links += links_for(delivery_id, 1, urls, ATTRIBUTES, ring.active_key_id, ring.active_secret, forward)
    assert {link.route for link in links} == {"r", "o", "u", "m"}

    ordinary = "".join(client.get(f"/{link.route}/{link.token}" + (f"?p={link.params}" if link.params else "")
                                  ).body.decode("utf-8", "replace") for link in links)
    generator = RequestGenerator(SEED, links)
    problems: list[str] = []
    statuses: Counter[int] = Counter()
    recorded = 0
    started = time.perf_counter()
    for _ in range(REQUESTS):
        request = generator.request()
        response = client.request(request.method, request.path, headers=request.headers, body=request.body)
        statuses[response.status_code] += 1
        found = violations(request, response.status_code, dict(response.headers), response.body,
                           ordinary)
        if found:
            problems.append(f"{request.method} {request.path[:200]!r} {request.headers!r}: {found}")
        link = request.link
        if (request.method == "GET" and link and link.route in ("r", "o", "m")
                and response.status_code in (200, 302) and (link.route != "r" or "Location" in response.headers)):
            recorded += 1
        if request.method == "POST" and link and link.route == "u" and b"You are unsubscribed" in response.body:
            recorded += 1  # the recipient's one opt-out (later POSTs find it recorded already)
    elapsed = time.perf_counter() - started
    print(f"\nhostile requests: {REQUESTS} in {elapsed:.1f} s ({REQUESTS / elapsed:.0f}/s), "
          f"statuses {dict(sorted(statuses.items()))}, {recorded} genuine hits recorded")
    assert problems == [], "\n".join(problems[:20])
    assert statuses[302] > REQUESTS // 50 and statuses[404] > REQUESTS // 10  # the generator reached both sides
    assert len(read_stream(settings.hit_stream)) == recorded + len(links) - len(
        [link for link in links if link.route == "u"])  # and the clean GETs above
