"""The public tracking endpoints over moto: answers, and exactly the Kinesis records they put."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import boto3
import pytest

from chalicelib import tokens
from chalicelib.data.deliveries import DeliveryStore
from chalicelib.hits.endpoints import PIXEL_GIF
from chalicelib.keyring import KeyRing
from chalicelib.settings import get_settings
from tests.conftest import read_stream

DELIVERY = "00112233445566ff"
CHROME_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/131.0.0.0 Safari/537.36")
URLS = {
    "1": {"url": "", "type": "open", "label": "Open", "placeholders": []},
    "2": {"url": "", "type": "optout", "label": "Unsubscribe", "placeholders": []},
    "3": {"url": "", "type": "mirror", "label": "Mirror page", "placeholders": []},
    "4": {"url": "https://shop.example.com/autumn?utm_source=gazette&utm_medium=email#top", "type": "click",
          "label": "Browse", "placeholders": []},
    "5": {"url": "https://shop.example.com/members/{{member_id}}?ref=gazette", "type": "click",
          "label": "Offers", "placeholders": ["member_id"]},
    "6": {"url": "https://prefs.example.com/manage", "type": "optout", "label": "Preferences", "placeholders": []},
}


def make_delivery(expires_at: int | None = None, delivery_id: str = DELIVERY) -> str:
    settings = get_settings()
    store = DeliveryStore(settings.deliveries_table, settings.delivery_logs_table)
    links: dict[str, Any] = {"urls": URLS}
    if expires_at is not None:
        links["expires_at"] = expires_at
    store.create(delivery_id, {"name": "d", "state": "finished", "created_at": 1}, {"subject": "s"}, links)
    store.put_logs(delivery_id, [{"log_id": 1, "recipient_id": "ann", "email": "Ann@Example.net",
                                  "attributes": {"member_id": "m-1"}, "status": "sent"}])
    return delivery_id


def token(kind: int, url_id: int, params: str = "", log_id: int = 1, delivery_id: str = DELIVERY) -> str:
    ring = get_settings().keyring()
    return tokens.mint(kind, ring.active_key_id, ring.active_secret, delivery_id, log_id, url_id, params)


def hits() -> list[dict[str, Any]]:
    return read_stream(get_settings().hit_stream)


def assert_exact_record(record: dict[str, Any], kind: str, url_id: int, presented_token: str, params: str = "",
                        ua: str = "", before_ms: int = 0) -> None:
    """The record carries exactly these fields and values (ids, time and request id checked for form)."""
    record = dict(record)
    assert before_ms <= record.pop("ts") <= time.time_ns() // 1_000_000
    hit_id = record.pop("hit_id")
    assert len(hit_id) == 32 and int(hit_id, 16) >= 0
    assert record.pop("request_id")
    assert record == {"v": 1, "kind": kind, "delivery_id": DELIVERY, "log_id": 1, "url_id": url_id,
                      "token": presented_token, "p": params, "ua": ua, "ip": "203.0.113.0"}


def test_click_redirects_exactly_and_puts_one_record(client: Any) -> None:
    make_delivery()
    click = token(tokens.KIND_CLICK, 4)
    before = time.time_ns() // 1_000_000
    response = client.get(f"/r/{click}", headers={"User-Agent": CHROME_UA})
    assert response.status_code == 302
    assert response.headers["Location"] == URLS["4"]["url"]
    assert "no-store" in response.headers["Cache-Control"]
    [record] = hits()
    assert_exact_record(record, "click", 4, click, ua=CHROME_UA, before_ms=before)


def test_personalised_click_fills_the_signed_parameters(client: Any) -> None:
    make_delivery()
    params = tokens.encode_params({"member_id": "m 1/é"})
    click = token(tokens.KIND_CLICK, 5, params)
    response = client.get(f"/r/{click}", query={"p": params})
    assert response.status_code == 302
    assert response.headers["Location"] == "https://shop.example.com/members/m%201%2F%C3%A9?ref=gazette"
    [record] = hits()
    assert_exact_record(record, "click", 5, click, params=params)


def test_link_typed_optout_is_recorded_as_an_optout(client: Any) -> None:
    make_delivery()
    preferences = token(tokens.KIND_CLICK, 6)
    response = client.get(f"/r/{preferences}")
    assert response.headers["Location"] == "https://prefs.example.com/manage"
    [record] = hits()
    assert_exact_record(record, "optout", 6, preferences)


@pytest.mark.parametrize(("headers", "purpose"), [
    ({"Sec-Purpose": "prefetch"}, "prefetch"),
    ({"Sec-Purpose": "prefetch;prerender"}, "prerender"),
    ({"Purpose": "prefetch"}, "prefetch"),
    ({"X-Purpose": "preview"}, "preview"),
    ({"X-Moz": "prefetch"}, "prefetch"),
])
def test_a_declared_prefetch_is_answered_and_recorded_with_its_purpose(client: Any, headers: dict[str, str],
                                                                        purpose: str) -> None:
    """The prefetch still gets its redirect and GIF (the person's browser may use it), and is kept, marked."""
    from chalicelib.tracking.core import parse_log

    make_delivery()
    click, opened = token(tokens.KIND_CLICK, 4), token(tokens.KIND_OPEN, 1)
    assert client.get(f"/r/{click}", headers={"User-Agent": CHROME_UA, **headers}).status_code == 302
    assert client.get(f"/o/{opened}", headers={"User-Agent": CHROME_UA, **headers}).body == PIXEL_GIF
    records = hits()
    assert [record.pop("purpose") for record in records] == [purpose, purpose]
    assert_exact_record(records[0], "click", 4, click, ua=CHROME_UA)
    assert_exact_record(records[1], "open", 1, opened, ua=CHROME_UA)
    lines = b"".join(json.dumps({**record, "purpose": purpose}).encode() + b"\n" for record in records)
    parsed = parse_log(lines, get_settings().keyring().keys)
    assert [hit.purpose for hit in parsed.hits] == [purpose, purpose] and parsed.rejected == {}


def test_a_purpose_header_that_declares_nothing_known_records_a_plain_hit(client: Any) -> None:
    make_delivery()
    click = token(tokens.KIND_CLICK, 4)
    client.get(f"/r/{click}", headers={"Sec-Purpose": "", "X-Purpose": "instant", "Purpose": "navigate"})
    [record] = hits()
    assert "purpose" not in record


def _forged_requests() -> list[tuple[str, dict[str, str] | None]]:
    click = token(tokens.KIND_CLICK, 4)
    params = tokens.encode_params({"member_id": "m-1"})
    personalised = token(tokens.KIND_CLICK, 5, params)
    return [
        (click[:-1] + ("A" if click[-1] != "A" else "B"), None),  # tampered
        ("not-a-token", None),
        (token(tokens.KIND_OPEN, 4), None),  # an open token is not a click token
        (token(tokens.KIND_CLICK, 99), None),  # unknown URL id
        (token(tokens.KIND_CLICK, 4, delivery_id="ffffffffffffffff"), None),  # unknown delivery
        (personalised, {"p": tokens.encode_params({"member_id": "m-2"})}),  # someone else's parameters
        (personalised, None),  # parameters dropped
        (token(tokens.KIND_CLICK, 1), None),  # the pixel's URL id has no target
    ]


def test_invalid_links_get_a_friendly_404_and_redirect_nowhere(client: Any) -> None:
    make_delivery()
    for forged, query in _forged_requests():
        response = client.get(f"/r/{forged}", query=query)
        assert response.status_code == 404, forged
        assert "Location" not in response.headers
        assert response.headers["Content-Type"].startswith("text/html")
        assert b"This link is not valid" in response.body
        assert b"Traceback" not in response.body
    assert hits() == []


def test_expired_delivery_shows_the_expiration_page(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    make_delivery(expires_at=1)
    response = client.get(f"/r/{token(tokens.KIND_CLICK, 4)}")
    assert response.status_code == 410
    assert b"expired" in response.body
    assert hits() == []


def test_expired_delivery_goes_to_the_configured_expiration_page(client: Any) -> None:
    from infra.local_runtime import environment

    environment.apply({"SENDTRAIL_EXPIRED_PAGE_URL": "https://www.example.com/expired"})
    make_delivery(expires_at=1)
    response = client.get(f"/r/{token(tokens.KIND_CLICK, 4)}")
    assert (response.status_code, response.headers["Location"]) == (302, "https://www.example.com/expired")
    assert hits() == []


ACCEPT_HEADERS = {
    "none": None,
    "any": "*/*",
    "html": "text/html",
    "chrome": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
    "apple mail": "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,"
                  "image/svg+xml,image/*;q=0.8,*/*;q=0.5",
    "gmail image proxy": "image/webp,image/*",
}


@pytest.mark.parametrize("accept", list(ACCEPT_HEADERS))
def test_pixel_is_a_gif_for_every_accept_header(client: Any, accept: str) -> None:
    make_delivery()
    headers = {"User-Agent": "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"}
    if ACCEPT_HEADERS[accept] is not None:
        headers["Accept"] = ACCEPT_HEADERS[accept]
    opened = token(tokens.KIND_OPEN, 1)
    response = client.get(f"/o/{opened}", headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/gif"
    assert "no-store" in response.headers["Cache-Control"]
    assert response.body == PIXEL_GIF and PIXEL_GIF.startswith(b"GIF89a")
    [record] = hits()
    assert_exact_record(record, "open", 1, opened, ua=headers["User-Agent"])


def test_pixel_for_an_invalid_token_is_still_a_gif_but_not_an_open(client: Any) -> None:
    make_delivery()
    for forged in ("nope", token(tokens.KIND_CLICK, 4)):
        response = client.get(f"/o/{forged}")
        assert (response.status_code, response.body) == (200, PIXEL_GIF)
    assert hits() == []


def test_unsubscribe_is_recorded_once_however_often_it_is_posted(client: Any) -> None:
    make_delivery()
    optout = token(tokens.KIND_OPTOUT, 2)
    page = client.get(f"/u/{optout}")
    assert page.status_code == 200 and b"<form method=\"post\"" in page.body
    assert hits() == []  # a GET (a mail scanner following the link) unsubscribes nobody
    answers = [client.post(f"/u/{optout}", body="List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"}) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert b"You are unsubscribed" in answers[0].body and b"already" in answers[2].body
    [record] = hits()
    assert_exact_record(record, "optout", 2, optout)
    settings = get_settings()
    log = DeliveryStore(settings.deliveries_table, settings.delivery_logs_table).get_log(DELIVERY, 1)
    assert log["optout_at"] > 0
    address = boto3.client("dynamodb").get_item(TableName=settings.addresses_table,
                                                Key={"address": {"S": "ann@example.net"}})["Item"]
    assert address["unsubscribed_delivery"] == {"S": DELIVERY}


FALLBACK_STREAM_OBJECT = r"redirection-logs/\d{4}/\d{2}/\d{2}/\d{2}/sendtrail-local-redirection-fallback-.+"


def fallback_objects(via: str = "any") -> list[dict[str, Any]]:
    """Hit records the hit path itself sent to the redirection logs (Kinesis failed).

    via "stream": through the fallback delivery stream (Firehose; moto writes
    each put as its own plain object); "object": as a record's own object
    (fallback-<hit id>, when the fallback stream failed too); "any": both.
    """
    s3 = boto3.client("s3")
    bucket = get_settings().redirection_log_bucket
    found = []
    for entry in s3.list_objects_v2(Bucket=bucket, Prefix="redirection-logs/").get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
        assert body.endswith(b"\n") and body.count(b"\n") == 1
        record = json.loads(body)
        own = re.fullmatch(r"redirection-logs/\d{4}/\d{2}/\d{2}/\d{2}/fallback-" + record["hit_id"], entry["Key"])
        assert own or re.fullmatch(FALLBACK_STREAM_OBJECT, entry["Key"]), entry["Key"]
        if via == "any" or (via == "object") == bool(own):
            found.append(record)
    return found


def test_unsubscribe_is_recorded_in_the_redirection_logs_when_the_stream_is_down(client: Any) -> None:
    make_delivery()
    boto3.client("kinesis").delete_stream(StreamName=get_settings().hit_stream)
    answer = client.post(f"/u/{token(tokens.KIND_OPTOUT, 2)}", body="List-Unsubscribe=One-Click",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200 and b"You are unsubscribed" in answer.body
    [record] = fallback_objects(via="stream")
    assert (record["kind"], record["log_id"], record["url_id"]) == ("optout", 1, 2)


def test_unsubscribe_recorded_nowhere_stays_pending_and_the_retry_records_it(client: Any) -> None:
    make_delivery()
    settings = get_settings()
    kinesis, s3 = boto3.client("kinesis"), boto3.client("s3")
    kinesis.delete_stream(StreamName=settings.hit_stream)
    boto3.client("firehose").delete_delivery_stream(DeliveryStreamName=settings.redirection_log_fallback_stream)
    s3.delete_bucket(Bucket=settings.redirection_log_bucket)
    optout = token(tokens.KIND_OPTOUT, 2)
    failed = client.post(f"/u/{optout}", body="List-Unsubscribe=One-Click",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert failed.status_code == 503 and b"try again" in failed.body
    log = DeliveryStore(settings.deliveries_table, settings.delivery_logs_table).get_log(DELIVERY, 1)
    assert log["optout_pending"] is True  # the address is suppressed already; the hit is what the retry records
    kinesis.create_stream(StreamName=settings.hit_stream, ShardCount=1)
    retried = client.post(f"/u/{optout}", body="List-Unsubscribe=One-Click",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert retried.status_code == 200 and b"You are unsubscribed" in retried.body
    assert [record["kind"] for record in hits()] == ["optout"]


def test_a_click_is_answered_and_kept_when_the_stream_is_down(client: Any) -> None:
    make_delivery()
    boto3.client("kinesis").delete_stream(StreamName=get_settings().hit_stream)
    click = token(tokens.KIND_CLICK, 4)
    response = client.get(f"/r/{click}", headers={"User-Agent": CHROME_UA})
    assert (response.status_code, response.headers["Location"]) == (302, URLS["4"]["url"])
    opened = client.get(f"/o/{token(tokens.KIND_OPEN, 1)}")
    assert opened.body == PIXEL_GIF
    records = fallback_objects(via="stream")
    assert sorted((record["kind"], record["url_id"]) for record in records) == [("click", 4), ("open", 1)]
    assert [record["ua"] for record in records if record["kind"] == "click"] == [CHROME_UA]
    assert [record["token"] for record in records if record["kind"] == "click"] == [click]
    assert fallback_objects(via="object") == []


def test_a_click_is_kept_as_its_own_object_when_both_streams_are_down(client: Any) -> None:
    make_delivery()
    settings = get_settings()
    boto3.client("kinesis").delete_stream(StreamName=settings.hit_stream)
    boto3.client("firehose").delete_delivery_stream(DeliveryStreamName=settings.redirection_log_fallback_stream)
    click = token(tokens.KIND_CLICK, 4)
    response = client.get(f"/r/{click}", headers={"User-Agent": CHROME_UA})
    assert (response.status_code, response.headers["Location"]) == (302, URLS["4"]["url"])
    [record] = fallback_objects(via="object")
    assert (record["kind"], record["token"], record["ua"]) == ("click", click, CHROME_UA)


def test_the_fallback_is_not_written_when_the_stream_works(client: Any) -> None:
    make_delivery()
    client.get(f"/r/{token(tokens.KIND_CLICK, 4)}")
    assert len(hits()) == 1 and fallback_objects() == []


def test_invalid_unsubscribe_and_mirror_links_get_friendly_pages(client: Any) -> None:
    make_delivery()
    for path in ("/u/nope", "/m/nope", f"/m/{token(tokens.KIND_OPTOUT, 2)}", f"/u/{token(tokens.KIND_MIRROR, 3)}"):
        response = client.get(path)
        assert response.status_code == 404 and b"This link is not valid" in response.body, path
    assert client.post("/u/nope", body="List-Unsubscribe=One-Click",
                       headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 404
    assert hits() == []


def test_redirection_status_check(client: Any) -> None:
    response = client.get("/r/test", headers={"Host": "t.example.com"})
    assert response.status_code == 200
    body = response.body.decode()
    assert body.startswith("<redir status='OK' date='") and "version='0.1.0'" in body
    assert "host='t.example.com'" in body
    assert hits() == []


def test_records_are_valid_json_lines_for_hostile_user_agents(client: Any) -> None:
    make_delivery()
    agent = 'Evil "agent"\\ \u2028 \U0001F600 {"kind":"click"}'
    client.get(f"/r/{token(tokens.KIND_CLICK, 4)}", headers={"User-Agent": agent})
    [record] = hits()
    assert record["ua"] == agent
    assert json.loads(json.dumps(record)) == record


def test_signing_keys_from_ssm_when_not_in_the_environment(client: Any) -> None:
    """In AWS the key ring is an SSM SecureString, read with the hit path's shared boto3 client."""
    from infra.local_runtime import environment
    from tests.conftest import KEYRING_V1

    boto3.client("ssm").put_parameter(Name="/sendtrail/test/signing-keys", Value=KEYRING_V1, Type="SecureString")
    environment.apply({"SENDTRAIL_SIGNING_KEYS_PARAMETER": "/sendtrail/test/signing-keys"},
                      remove=("SENDTRAIL_SIGNING_KEYS",))
    make_delivery()
    click = token(tokens.KIND_CLICK, 4)
    response = client.get(f"/r/{click}")
    assert (response.status_code, response.headers["Location"]) == (302, URLS["4"]["url"])
    [record] = hits()
    assert_exact_record(record, "click", 4, click)


def test_the_ring_read_from_ssm_is_kept_max_age_then_read_again(
        resources: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rotation reaches a warm container within max_age, without one SSM read per click."""
    from chalicelib import keyring
    from chalicelib.data import aws

    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/sendtrail/test/ring", Value=KeyRing(1, {1: b"1" * 32}).to_json(), Type="SecureString")
    keyring.forget_read()
    clock = [1000.0]
    monkeypatch.setattr(keyring, "monotonic", lambda: clock[0])
    assert keyring.load_keyring(None, "/sendtrail/test/ring", 300).active_key_id == 1
    ssm.put_parameter(Name="/sendtrail/test/ring", Value=KeyRing(2, {1: b"1" * 32, 2: b"2" * 32}).to_json(),
                      Type="SecureString", Overwrite=True)
    clock[0] += 299
    assert keyring.load_keyring(None, "/sendtrail/test/ring", 300).active_key_id == 1  # kept
    clock[0] += 1
    assert keyring.load_keyring(None, "/sendtrail/test/ring", 300).active_key_id == 2  # read again
    assert ("ssm", id(aws.HIT_PATH)) in aws._clients  # noqa: SLF001 - the hit path's client, not a session of its own
    keyring.forget_read()


def test_missing_signing_keys_is_a_friendly_503_not_a_crash(client: Any) -> None:
    from infra.local_runtime import environment

    make_delivery()
    click, opened = token(tokens.KIND_CLICK, 4), token(tokens.KIND_OPEN, 1)
    environment.apply({}, remove=("SENDTRAIL_SIGNING_KEYS", "SENDTRAIL_SIGNING_KEYS_PARAMETER"))
    response = client.get(f"/r/{click}")
    assert response.status_code == 503 and b"try again" in response.body
    pixel = client.get(f"/o/{opened}")
    assert (pixel.status_code, pixel.body) == (200, PIXEL_GIF)
    assert hits() == []
