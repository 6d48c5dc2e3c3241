"""The public routes under unusual requests: never a 5xx, never a valid hit lost because of its shape.

Mail clients, link scanners and people append parameters to links, repeat
them, send HEAD and OPTIONS; a broken key ring or SSM must give a friendly
page, not a raw 500.
"""

from __future__ import annotations

from typing import Any

from chalicelib import tokens
from tests.integration.test_hit_endpoints import CHROME_UA, URLS, assert_exact_record, hits, make_delivery, token


def test_a_click_with_parameters_other_than_p_redirects_and_is_recorded(client: Any) -> None:
    """Bug: query_params.getlist("p") raised KeyError (a 500, the click lost) when only other parameters came."""
    make_delivery()
    click = token(tokens.KIND_CLICK, 4)
    response = client.get(f"/r/{click}", query={"utm_source": "x"}, headers={"User-Agent": CHROME_UA})
    assert (response.status_code, response.headers["Location"]) == (302, URLS["4"]["url"])
    [record] = hits()
    assert_exact_record(record, "click", 4, click, ua=CHROME_UA)


def test_a_mirror_page_with_a_broken_key_ring_is_a_friendly_503(client: Any) -> None:
    """Bug: /m/{token} verified its token outside its try, so a key-ring failure answered a raw 500."""
    from infra.local_runtime import environment

    make_delivery()
    mirror = token(tokens.KIND_MIRROR, 3)
    environment.apply({"SENDTRAIL_SIGNING_KEYS": '{"active": 9, "keys": {}}'})
    response = client.get(f"/m/{mirror}")
    assert response.status_code == 503 and b"try again" in response.body
    assert b"Traceback" not in response.body and b"InternalServerError" not in response.body
    assert hits() == []


def test_repeated_and_empty_parameters_do_not_lose_the_click(client: Any) -> None:
    """A scanner that repeats the query string, or a client that empties a parameter, still gets through."""
    make_delivery()
    params = tokens.encode_params({"member_id": "m-1"})
    personalised, plain = token(tokens.KIND_CLICK, 5, params), token(tokens.KIND_CLICK, 4)
    repeated = client.get(f"/r/{personalised}?p={params}&p={params}&utm_source=x&utm_source=&p=")
    assert repeated.headers["Location"] == "https://shop.example.com/members/m-1?ref=gazette"
    forged_first = client.get(f"/r/{personalised}?p={tokens.encode_params({'member_id': 'm-2'})}&p={params}")
    assert forged_first.headers["Location"] == "https://shop.example.com/members/m-1?ref=gazette"
    empty = client.get(f"/r/{plain}?p=&=&&x")
    assert empty.headers["Location"] == URLS["4"]["url"]
    assert [(record["url_id"], record["p"]) for record in hits()] == [(5, params), (5, params), (4, "")]
    too_many = "&".join(f"p={tokens.encode_params({'member_id': str(index)})}" for index in range(5))
    assert client.get(f"/r/{personalised}?{too_many}").status_code == 404


def test_head_answers_like_get_without_a_body_and_records_nothing(client: Any) -> None:
    make_delivery()
    for path, status in ((f"/r/{token(tokens.KIND_CLICK, 4)}", 302), (f"/o/{token(tokens.KIND_OPEN, 1)}", 200),
                         (f"/u/{token(tokens.KIND_OPTOUT, 2)}", 200), ("/m/nope", 404), ("/r/test", 200),
                         ("/r/nope", 404)):
        get, head = client.get(path), client.request("HEAD", path)
        assert (head.status_code, head.body) == (status, b""), path
        assert get.status_code == status and (get.body or status == 302), path
        for name in ("Location", "Content-Type", "Cache-Control"):
            assert head.headers.get(name) == get.headers.get(name), (path, name)
    assert [record["kind"] for record in hits()] == ["click", "open"]  # the GETs only


def test_options_says_what_each_route_allows_and_other_methods_get_405(client: Any) -> None:
    make_delivery()
    click = token(tokens.KIND_CLICK, 4)
    allowed = {f"/r/{click}": "GET, HEAD, OPTIONS", "/r/test": "GET, HEAD, OPTIONS",
               "/o/x": "GET, HEAD, OPTIONS", "/u/x": "GET, HEAD, POST, OPTIONS", "/m/x": "GET, HEAD, OPTIONS"}
    for path, methods in allowed.items():
        options = client.request("OPTIONS", path)
        assert (options.status_code, options.headers["Allow"]) == (204, methods), path
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            if method in methods:
                continue
            answer = client.request(method, path, body=b"\x00junk", headers={"Content-Type": "text/plain"})
            assert (answer.status_code, answer.headers["Allow"]) == (405, methods), (method, path)
            assert answer.headers["Content-Type"].startswith("text/html") and b"Traceback" not in answer.body
    assert hits() == []


def test_forwarded_parameters_are_added_only_when_the_delivery_asks(client: Any) -> None:
    from chalicelib.data.deliveries import DeliveryStore
    from chalicelib.settings import get_settings

    make_delivery()
    click = token(tokens.KIND_CLICK, 4)
    query = "utm_source=newsletter-app&gclid=a%20b%26c&extra=%3Cx%3E"
    assert client.get(f"/r/{click}?{query}").headers["Location"] == URLS["4"]["url"]
    settings = get_settings()
    DeliveryStore(settings.deliveries_table, settings.delivery_logs_table).create(
        "00112233445566aa", {"name": "f", "state": "finished", "created_at": 1}, {"subject": "s"},
        {"urls": URLS, "forward_query_params": True})
    forwarding = token(tokens.KIND_CLICK, 4, delivery_id="00112233445566aa")
    location = client.get(f"/r/{forwarding}?{query}").headers["Location"]
    # The registered URL keeps its own utm_source; the others are added, encoded, before the fragment.
    assert location == ("https://shop.example.com/autumn?utm_source=gazette&utm_medium=email"
                        "&gclid=a+b%26c&extra=%3Cx%3E#top")
    assert len(hits()) == 2


def test_a_click_with_a_stray_content_type_is_not_refused(client: Any) -> None:
    """Found by the hostile-input test: Chalice answered 415 (echoing the type) to a GET with a Content-Type."""
    make_delivery()
    click = token(tokens.KIND_CLICK, 4)
    response = client.get(f"/r/{click}", headers={"Content-Type": "<b>text/x-anything</b>"})
    assert (response.status_code, response.headers["Location"]) == (302, URLS["4"]["url"])
    assert len(hits()) == 1


def test_the_status_check_escapes_the_host_it_echoes(client: Any) -> None:
    body = client.get("/r/test", headers={"Host": "a\"b'c<d>e&f\x01"}).body.decode()
    assert "host='a&quot;b&#x27;c&lt;d&gt;e&amp;f'" in body
