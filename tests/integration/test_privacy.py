"""A person's export and erasure, purging a delivery, and every item's expiry (chalicelib/privacy.py, retention.py)."""

from __future__ import annotations

import re
from typing import Any

import boto3
import pytest

from chalicelib import retention
from chalicelib.data.addresses import HASH_PREFIX, suppression_hash
from chalicelib.settings import Settings, get_settings
from chalicelib.tracking import run_items
from infra.local_runtime import environment
from infra.local_runtime.firehose_pump import pumps_for
from infra.local_runtime.ses_outbox import OUTBOX
from tests.integration.test_deliveries_api import create
from tests.tracking_harness import use_layout

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ANN = {"id": "ann", "email": "ann@example.net", "attributes": {"first_name": "Ann", "member_id": "m-1"}}
BOB = {"id": "bob", "email": "bob@example.net", "attributes": {"first_name": "Bob", "member_id": "m-2"}}


def send(api: Any, mta: Any, *recipients: dict[str, Any]) -> str:
    delivery_id = create(api, recipients=list(recipients))
    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 202
    mta.drain()
    environment.forget_cached_configuration()
    return delivery_id


def message_to(address: str) -> dict[str, Any]:
    [message] = [message.to_dict() for message in OUTBOX.messages() if message.to == [address]]
    return message


def table_items(name: str) -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=name)["Items"]  # a test's look at the whole table


@pytest.fixture
def layout() -> str:
    """The tracking layout the workflow writes (settings.tracking_layout); tests parametrize it for both."""
    return "items"


@pytest.fixture
def tracked(api: Any, client: Any, mta: Any, resources: Any, layout: str) -> str:
    """A delivery to Ann and Bob, sent; Ann clicked, opened and opted out, and the workflow counted it."""
    use_layout(layout)
    delivery_id = send(api, mta, ANN, BOB)
    html = message_to("ann@example.net")["html"]
    for path in re.findall(r'"https://t\.example\.com(/[ro]/[^"]+)"', html)[:2]:
        assert client.get(path.replace("&amp;", "&")).status_code in (200, 302)
    [optout] = re.findall(r'"https://t\.example\.com(/u/[^"]+)"', html)
    assert client.post(optout, body="List-Unsubscribe=One-Click", headers=FORM).status_code == 200
    pumps_for(resources)[0].step()
    assert api.post("/api/workflow/run").json_body["hits_accepted"] >= 3
    return delivery_id


def _run_item_hits(delivery_id: str) -> list[Any]:
    """Every hit the append layout's run items hold for a delivery (a test's look at the whole table)."""
    return [hit for item in table_items(get_settings().tracking_runs_table) if item["delivery_id"]["S"] == delivery_id
            for hit, _ in run_items.decode(delivery_id, item["body"]["B"]).hits]


@pytest.mark.parametrize("layout", ["items", "append"])
def test_export_returns_everything_kept_about_a_person(api: Any, tracked: str, layout: str) -> None:
    response = api.get("/api/recipients/ann/export")
    assert response.status_code == 200, response.body
    body = response.json_body
    [log] = body["delivery_logs"]
    assert (log["delivery_id"], log["email"], log["attributes"]["first_name"]) == (tracked, "ann@example.net", "Ann")
    assert log["optout_at"] and log["message_id"]
    [hits] = body["tracking"]
    assert hits["recipient_id"] == "ann" and len(hits["hits"]) >= 3
    # Each hit as a person reads it, not as stored (packed ids, indexes into the item's agents and addresses).
    assert {hit["kind"] for hit in hits["hits"]} >= {"click", "optout"}
    for hit in hits["hits"]:
        assert set(hit) >= {"hit_id", "at", "kind", "url_id", "user_agent", "ip"}
        assert len(hit["hit_id"]) == 32 and int(hit["hit_id"][:12], 16) == hit["at"]
    assert "uas" not in hits and "ips" not in hits
    [address] = body["addresses"]
    assert address["address"] == "ann@example.net" and address["unsubscribed_at"]
    assert api.get("/api/recipients/nobody/export").status_code == 404


@pytest.mark.parametrize("layout", ["items", "append"])
def test_erasure_removes_the_person_keeps_the_counts_and_the_opt_out(api: Any, mta: Any, tracked: str,
                                                                      layout: str) -> None:
    before = api.get(f"/api/deliveries/{tracked}").json_body
    indicators = api.get(f"/api/deliveries/{tracked}/indicators").json_body
    ann_hits = len(api.get("/api/recipients/ann/tracking").json_body["items"])
    assert ann_hits >= 3 and len({hit.log_id for hit in _run_item_hits(tracked)}) == (layout == "append")
    response = api.delete("/api/recipients/ann")
    assert response.status_code == 200, response.body
    erased = ({"tracking_items_deleted": 1, "tracking_log_pages_rewritten": 2, "tracking_run_item_hits_erased": 0}
              if layout == "items" else
              {"tracking_items_deleted": 0, "tracking_log_pages_rewritten": 0, "tracking_run_item_hits_erased": ann_hits})
    assert response.json_body == {"recipient_id": "ann", "delivery_logs_erased": 1, "unsent_logs_canceled": 0,
                                  **erased, "addresses_deleted": 0, "addresses_kept_as_hash": 1}
    assert _run_item_hits(tracked) == []

    after = api.get(f"/api/deliveries/{tracked}").json_body
    assert after["counts"] == before["counts"] and after["failures"] == before["failures"]
    assert {key: value for key, value in api.get(f"/api/deliveries/{tracked}/indicators").json_body.items()
            if key != "last_updated"} == {key: value for key, value in indicators.items() if key != "last_updated"}
    assert api.get("/api/recipients/ann/export").status_code == 404
    assert api.get("/api/recipients/ann/tracking").json_body.get("items", []) == []
    settings = get_settings()
    everything = repr(table_items(settings.delivery_logs_table) + table_items(settings.tracking_table)
                      + table_items(settings.addresses_table))
    assert "ann@example.net" not in everything.lower() and "'Ann'" not in everything
    logs = api.get(f"/api/deliveries/{tracked}/logs").json_body["items"]
    assert len(logs) == 2 and [log.get("email") for log in logs].count(None) == 1  # an anonymous row stays
    hashed = [item["address"]["S"] for item in table_items(settings.addresses_table)
              if item["address"]["S"].startswith(HASH_PREFIX)]
    assert hashed == [suppression_hash(settings.keyring().suppression_key, "ann@example.net")]  # type: ignore

    OUTBOX.clear()
    again = send(api, mta, {**ANN, "id": "ann-again"}, {**BOB, "id": "bob-again"})
    assert [message.to for message in OUTBOX.messages()] == [["bob@example.net"]]  # Ann is never mailed again
    [ann_log] = [log for log in api.get(f"/api/deliveries/{again}/logs").json_body["items"]
                 if log["recipient_id"] == "ann-again"]
    assert (ann_log["status"], ann_log["failure_reason"]) == ("ignored", "denylisted")


def test_erasure_takes_the_person_out_of_the_deliverys_tracking_logs(api: Any, client: Any, mta: Any,
                                                                      resources: Any, tracked: str) -> None:
    """The Tracking tab's log pages name each hit's recipient: erasing Ann rewrites the pages that named
    her (her hits stay, counted, as nobody's), and Bob's stay named."""
    html = message_to("bob@example.net")["html"]
    [open_path] = re.findall(r'"https://t\.example\.com(/o/[^"]+)"', html)
    assert client.get(open_path.replace("&amp;", "&")).status_code == 200
    pumps_for(resources)[0].step()
    assert api.post("/api/workflow/run").json_body["hits_accepted"] == 1

    def logged() -> list[tuple[str, str]]:
        items = api.get(f"/api/deliveries/{tracked}/tracking?limit=200").json_body["items"]
        return sorted((item["recipient_id"], item["kind"]) for item in items)

    before = logged()
    assert ("ann", "optout") in before and ("bob", "open") in before
    response = api.delete("/api/recipients/ann")
    assert response.status_code == 200, response.body
    assert response.json_body["tracking_log_pages_rewritten"] >= 2  # her click or open, and her opt-out
    after = logged()
    assert len(after) == len(before) and ("bob", "open") in after
    assert [entry for entry in after if entry[0] == "ann"] == []
    assert "'ann'" not in repr(table_items(get_settings().tracking_stats_table))
    assert api.delete("/api/recipients/ann").status_code == 404  # nothing is left to find


def test_erasing_someone_not_yet_sent_to_cancels_their_message(api: Any, mta: Any, resources: Any) -> None:
    delivery_id = create(api, recipients=[ANN, BOB])
    response = api.delete("/api/recipients/bob")
    assert response.status_code == 200 and response.json_body["unsent_logs_canceled"] == 1
    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 202
    OUTBOX.clear()
    mta.drain()
    assert [message.to for message in OUTBOX.messages()] == [["ann@example.net"]]
    counts = api.get(f"/api/deliveries/{delivery_id}").json_body["counts"]
    assert counts["canceled"] == 1


@pytest.mark.parametrize("layout", ["items", "append"])
def test_purging_a_delivery_deletes_it_and_its_tracking(api: Any, client: Any, tracked: str, layout: str) -> None:
    response = api.delete(f"/api/deliveries/{tracked}")
    assert response.status_code == 200, response.body
    assert response.json_body["delivery_logs_deleted"] == 2 and response.json_body["tracking_items_deleted"] >= 2
    assert api.get(f"/api/deliveries/{tracked}").status_code == 404
    assert api.get("/api/recipients/bob/export").status_code == 404
    settings = get_settings()
    for table in (settings.delivery_logs_table, settings.tracking_table, settings.tracking_stats_table,
                  settings.tracking_runs_table):
        assert [item for item in table_items(table) if item["delivery_id"]["S"] == tracked] == []
    assert api.delete(f"/api/deliveries/{tracked}").status_code == 404
    address = boto3.client("dynamodb").get_item(TableName=settings.addresses_table,
                                                Key={"address": {"S": "ann@example.net"}})["Item"]
    assert "unsubscribed_at" in address  # the opt-out outlives the delivery


def test_a_sending_delivery_cannot_be_purged(api: Any, client: Any) -> None:
    delivery_id = create(api)
    assert api.post(f"/api/deliveries/{delivery_id}/send").status_code == 202
    response = api.delete(f"/api/deliveries/{delivery_id}")
    assert response.status_code == 409 and "stop it before purging" in response.json_body["message"]


@pytest.mark.parametrize("layout", ["items", "append"])
def test_every_item_carries_its_expiry(api: Any, tracked: str, layout: str) -> None:
    settings = get_settings()
    assert bool(table_items(settings.tracking_runs_table)) == (layout == "append")
    for table in (settings.deliveries_table, settings.delivery_logs_table, settings.tracking_table,
                  settings.tracking_stats_table, settings.tracking_runs_table):
        for item in table_items(table):
            if item["delivery_id"]["S"] == "signing-keys" or item["delivery_id"]["S"] == tracked:
                assert "expires_at_epoch" in item, (table, item)
    [log] = [item for item in table_items(settings.delivery_logs_table) if item["recipient_id"]["S"] == "bob"]
    sent = int(log["pending_since"]["N"])
    assert int(log["expires_at_epoch"]["N"]) == retention.expires_at_epoch(sent, 180)


def _readme_retention() -> dict[str, tuple[str, str]]:
    from pathlib import Path

    text = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    section = text.split("### Retention", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("resource", "---"):
            rows[cells[0]] = (cells[2], cells[3])
    return rows


def test_the_readme_retention_table_is_the_code_and_the_template() -> None:
    from infra.template import load_template

    template = load_template()
    readme = _readme_retention()
    fields = Settings.model_fields
    assert set(readme) == {entry.resource for entry in retention.RETENTION}
    tables = {name for name, resource in template["Resources"].items() if resource.get("Type") == "AWS::DynamoDB::Table"}
    assert tables <= set(readme), "every table is in the retention table"
    for entry in retention.RETENTION:
        kept, counted_from = readme[entry.resource]
        expected = "kept" if entry.setting is None else f"{fields[entry.setting].default} days"
        assert kept == expected and counted_from == entry.counted_from, entry.resource
        properties = template["Resources"][entry.resource]["Properties"]
        if entry.resource in tables:
            ttl = properties.get("TimeToLiveSpecification")
            declared = bool(ttl) and ttl["AttributeName"] == "expires_at_epoch" and ttl["Enabled"]
            assert declared == (entry.setting is not None), entry.resource
    parameters = template["Parameters"]
    assert parameters["TrackingRetentionDays"]["Default"] == fields["tracking_retention_days"].default == 365
    assert parameters["DeliveryLogRetentionDays"]["Default"] == fields["delivery_log_retention_days"].default == 180
