"""Rotating the link-signing keys through the CLI never breaks a link still valid.

The ring lives in SSM (as deployed). A message is sent with key 1; `sendtrail
keys rotate` adds key 2 and announces when key 1 may go; until that date the
old message's links and its List-Unsubscribe verify (the click after its
validity gets the expiration page, never "not valid"), the status check is
OK, and `sendtrail keys remove 1` is refused. A key removed early is a FAIL.
"""

from __future__ import annotations

import re
from typing import Any

import boto3
import pytest

from chalicelib import tokens
from chalicelib.keyring import DAY_MS, KeyRing, parse_time
from infra.local_runtime import environment
from infra.local_runtime.ses_outbox import OUTBOX
from tests.conftest import KEYRING_V1
from tests.integration.test_deliveries_api import create

PARAMETER = "/sendtrail/local/signing-keys"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class InProcessApi:
    """The CLI's API client, answered by the app in-process (the API Gateway emulation)."""

    def __init__(self, api: Any) -> None:
        self.api = api

    def get(self, path: str) -> Any:
        response = self.api.get(path)
        assert response.status_code == 200, response.body
        return response.json_body


@pytest.fixture
def ring_in_ssm(resources: Any, api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    boto3.client("ssm").put_parameter(Name=PARAMETER, Value=KEYRING_V1, Type="SecureString")
    environment.apply({"SENDTRAIL_SIGNING_KEYS_PARAMETER": PARAMETER}, remove=("SENDTRAIL_SIGNING_KEYS",))
    environment.forget_cached_configuration()
    monkeypatch.setattr("infra.cli._api", lambda: InProcessApi(api))


def sent_message(api: Any, mta: Any) -> dict[str, Any]:
    OUTBOX.clear()
    delivery_id = create(api, recipients=[{"id": "ann", "email": "ann@example.net", "attributes": {
        "first_name": "Ann", "member_id": "m-1"}}])
    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 202
    mta.send()
    environment.forget_cached_configuration()  # the worker's container is not the API's (key ring cache)
    [message] = OUTBOX.messages()
    return message.to_dict()


def key_of(path: str) -> int:
    token = path.split("/")[2].split("?")[0]
    return tokens.verify(token, KeyRing.from_json(ring_text()).keys).key_id


def ring_text() -> str:
    return boto3.client("ssm").get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"]


def cli(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str]:
    from infra.cli import main

    code = main(list(arguments))
    captured = capsys.readouterr()
    environment.forget_cached_configuration()  # functions read the ring again (SSM's cache expired)
    return code, captured.out + captured.err


def at(monkeypatch: pytest.MonkeyPatch, epoch_ms: int) -> None:
    """Every clock the hit path, the status check and the CLI read, set to `epoch_ms`."""
    for target in ("chalicelib.hits.endpoints.now_ms", "chalicelib.clock.now_ms", "chalicelib.api.status.now_ms"):
        monkeypatch.setattr(target, lambda: epoch_ms)


def test_old_links_and_list_unsubscribe_work_until_the_announced_date(
        api: Any, client: Any, mta: Any, ring_in_ssm: None, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    old = sent_message(api, mta)
    click = re.search(r'"https://t\.example\.com(/r/[^"]+)"', old["html"]).group(1)  # type: ignore[union-attr]
    unsubscribe = re.search(r"<https://t\.example\.com(/u/[^>]+)>",  # type: ignore[union-attr]
                            old["headers"]["List-Unsubscribe"]).group(1)
    assert key_of(click) == key_of(unsubscribe) == 1

    code, printed = cli(capsys, "keys", "rotate", "--parameter", PARAMETER)
    assert code == 0, printed
    date = re.search(r"key 1 may be removed after (\S+):", printed)
    assert date, printed
    announced = parse_time(date.group(1))
    ring = KeyRing.from_json(ring_text())
    assert ring.active_key_id == 2 and set(ring.keys) == {1, 2} and ring.remove_after == {1: announced}
    # Unsubscribe links work as long as the delivery log is kept (180 days), and their hits need a day more.
    from chalicelib.clock import now_ms

    assert announced >= now_ms() + 180 * DAY_MS + 24 * 3_600_000

    new = sent_message(api, mta)
    assert key_of(re.search(r'"https://t\.example\.com(/r/[^"]+)"', new["html"]).group(1)) == 2  # type: ignore

    assert client.get(click).status_code == 302  # today: the old link still redirects
    code, printed = cli(capsys, "keys", "remove", "1", "--parameter", PARAMETER)
    assert code == 1 and "key 1 is needed until" in printed
    status = api.get("/api/status").json_body
    [keys] = [item for item in status["components"] if item["component"] == "signing_keys"]
    assert keys["status"] == "OK" and "key 1 may be removed after" in keys["reason"], keys

    at(monkeypatch, announced - 3_600_000)  # an hour before the announced date
    assert client.get(click).status_code == 410  # expired (its 30 days passed), still genuine: not "not valid"
    answer = client.post(unsubscribe, body="List-Unsubscribe=One-Click", headers=FORM)
    assert answer.status_code == 200 and b"You are unsubscribed" in answer.body
    code, printed = cli(capsys, "keys", "remove", "1", "--parameter", PARAMETER)
    assert code == 1, printed

    at(monkeypatch, announced)
    code, printed = cli(capsys, "keys", "remove", "1", "--parameter", PARAMETER)
    assert code == 0, printed
    assert set(KeyRing.from_json(ring_text()).keys) == {2}
    assert client.get(click).status_code == 404  # now the old key is gone: the link is not ours any more


def test_a_key_removed_while_its_links_are_valid_fails_the_status_check(
        api: Any, client: Any, mta: Any, ring_in_ssm: None, capsys: pytest.CaptureFixture[str]) -> None:
    old = sent_message(api, mta)
    click = re.search(r'"https://t\.example\.com(/r/[^"]+)"', old["html"]).group(1)  # type: ignore[union-attr]
    assert cli(capsys, "keys", "rotate", "--parameter", PARAMETER)[0] == 0
    code, printed = cli(capsys, "keys", "remove", "1", "--parameter", PARAMETER, "--force")
    assert code == 0, printed
    status = api.get("/api/status").json_body
    [keys] = [item for item in status["components"] if item["component"] == "signing_keys"]
    assert keys["status"] == "FAIL" and "key 1 is missing from the ring" in keys["reason"], keys
    assert client.get(click).status_code == 404
    code, printed = cli(capsys, "keys", "list")
    assert code == 0 and re.search(r"^1\s+NO\s", printed, re.M), printed


def test_a_removal_announced_before_the_links_expire_is_a_warning() -> None:
    from chalicelib import status

    ring = KeyRing.from_json(KEYRING_V1)
    ring = ring.rotated(retire_after_ms=10 * DAY_MS)
    rows = status.key_schedule(ring, {1: 20 * DAY_MS}, hits_in_flight_hours=26)
    assessed = status.assess_signing_keys(rows, now_ms=DAY_MS)
    assert assessed.status == "WARN"
    assert assessed.reason.startswith("key 1 is announced for removal after 1970-01-11T00:00:00Z but signed links "
                                      "valid until 1970-01-21T00:00:00Z: keep it until 1970-01-23T00:00:00Z")
    assert status.assess_signing_keys(status.key_schedule(ring, {1: 5 * DAY_MS}, 26), DAY_MS).status == "OK"


def test_the_ring_keeps_announced_dates_and_refuses_to_drop_the_active_key() -> None:
    from chalicelib.keyring import KeyRingError

    ring = KeyRing.from_json(KEYRING_V1).rotated(retire_after_ms=parse_time("2027-06-03T00:00:00Z"))
    again = KeyRing.from_json(ring.to_json())
    assert again == ring and '"remove_after": {"1": "2027-06-03T00:00:00Z"}' in ring.to_json()
    with pytest.raises(KeyRingError):
        ring.without(ring.active_key_id)
