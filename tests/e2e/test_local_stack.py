"""Over real HTTP: create, send, read the outbox, follow a tracked link, find the hit in Kinesis."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from typing import Any, Callable

import boto3
import pytest

from infra.api_client import ApiClient, ApiError
from infra.local_runtime.firehose_pump import PUMP_INTERVAL_SECONDS

pytestmark = pytest.mark.e2e


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _stream_records(moto_endpoint: str) -> list[dict[str, Any]]:
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-1")
    kinesis = session.client("kinesis", endpoint_url=moto_endpoint)
    [stream] = [name for name in kinesis.list_streams()["StreamNames"] if name.endswith("-hits")]
    records = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
        records += [json.loads(record["Data"]) for record in page["Records"]]
    return records


def wait_for(api: ApiClient, delivery_id: str, done: Callable[[dict[str, Any]], bool],
             timeout: float = 30.0) -> dict[str, Any]:
    """The delivery once `done(delivery)` holds (the send worker and SES's events run on their own)."""
    deadline = time.monotonic() + timeout
    while True:
        delivery = api.get(f"/api/deliveries/{delivery_id}")
        if done(delivery):
            return delivery
        if time.monotonic() > deadline:
            raise AssertionError(f"delivery {delivery_id} did not get there in {timeout:g} s: {delivery}")
        time.sleep(0.2)


def counted(**expected: int) -> Callable[[dict[str, Any]], bool]:
    """Finished, with these counts (SES's events, a complaint last, come after the sending)."""
    return lambda delivery: delivery["state"] == "finished" and all(
        delivery["counts"][name] == value for name, value in expected.items())


def test_demo_was_seeded_and_its_links_printed(local_stack: Any) -> None:
    text = "\n".join(local_stack.output)
    assert re.search(r"Demo delivery [0-9a-f]{16} sent", text)
    assert f"{local_stack.api_url}/r/" in text


def test_create_send_outbox_click_and_find_the_hit(local_stack: Any) -> None:
    api = ApiClient(local_stack.api_url, local_stack.api_token)
    html = ('<html><body><p>Hi {{name}}, <a href="https://www.example.org/e2e?x=1&amp;y=2#frag">read</a>'
            '</p><a href="{{unsubscribe_url}}">unsubscribe</a></body></html>')
    delivery_id = api.post("/api/deliveries", {
        "name": "e2e", "subject": "Hello {{name}}", "from_address": "news@example.com", "html": html,
        "recipients": [{"id": "e2e-1", "email": "success@simulator.amazonses.com", "attributes": {"name": "Eve"}}],
    })["id"]
    assert api.post(f"/api/deliveries/{delivery_id}/send")["state"] == "start_pending"
    wait_for(api, delivery_id, lambda delivery: delivery["state"] == "finished")
    [message] = [entry for entry in api.get("/local/outbox") if entry["subject"] == "Hello Eve"]
    assert message["to"] == ["success@simulator.amazonses.com"]
    assert message["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["headers"]["List-Unsubscribe"].startswith(f"<{local_stack.api_url}/u/")
    link = re.search(r'href="(' + re.escape(local_stack.api_url) + r'/r/[^"]+)"', message["html"]).group(1)

    status, headers, _ = _get(link, {"User-Agent": "e2e-browser/1.0"})
    assert status == 302
    assert headers["Location"] == "https://www.example.org/e2e?x=1&y=2#frag"

    [hit] = [record for record in _stream_records(local_stack.moto_endpoint)
             if record["delivery_id"] == delivery_id and record["kind"] == "click"]
    assert hit["ua"] == "e2e-browser/1.0"
    assert hit["token"] == link.rsplit("/", 1)[1]


def test_the_cli_lists_deliveries_of_the_running_stack(local_stack: Any) -> None:
    import os
    import subprocess
    import sys

    environment = {**os.environ, "SENDTRAIL_API_URL": local_stack.api_url, "SENDTRAIL_API_TOKEN": local_stack.api_token}
    output = subprocess.run([sys.executable, "-m", "infra.cli", "deliveries", "list"], env=environment,
                            capture_output=True, text=True, check=True, timeout=60).stdout
    assert output.splitlines()[0].split()[:3] == ["ID", "NAME", "STATE"]
    assert "Autumn gazette" in output


def test_the_api_refuses_a_missing_token_over_http(local_stack: Any) -> None:
    with pytest.raises(ApiError) as error:
        ApiClient(local_stack.api_url, "wrong").get("/api/deliveries")
    assert error.value.status == 401


def test_a_click_on_a_demo_link_shows_in_the_indicators_within_two_workflow_intervals(local_stack: Any) -> None:
    text = "\n".join(local_stack.output)
    interval = float(re.search(r"Tracking workflow every ([0-9.]+) s", text).group(1))
    delivery_id = re.search(r"Demo delivery ([0-9a-f]{16}) sent", text).group(1)
    link = re.search(r"^\s+(http://\S+/r/\S+)$", text, re.MULTILINE).group(1)
    api = ApiClient(local_stack.api_url, local_stack.api_token)
    before = api.get(f"/api/deliveries/{delivery_id}/indicators")["clicks_total"]

    clicked_at = time.monotonic()
    status, headers, _ = _get(link, {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"})
    assert status == 302 and headers["Location"].startswith("https://shop.example.com/")
    # Kinesis -> Firehose (the local pump, every second) -> S3 -> the workflow (every `interval`).
    deadline = clicked_at + 2 * interval + PUMP_INTERVAL_SECONDS
    while True:
        indicators = api.get(f"/api/deliveries/{delivery_id}/indicators")
        if indicators["clicks_total"] > before or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert indicators["clicks_total"] == before + 1, f"no click in the indicators after {2 * interval:g} s"
    assert indicators["clicks_unique"] >= 1 and indicators["opens_unique"] >= 1 and indicators["last_updated"]
    tracked = api.get("/api/recipients/ann/tracking")["items"]
    assert any(item["kind"] == "click" and item["delivery_id"] == delivery_id for item in tracked)


def test_the_cli_runs_the_workflow_and_prints_indicators(local_stack: Any) -> None:
    import os
    import subprocess
    import sys

    text = "\n".join(local_stack.output)
    delivery_id = re.search(r"Demo delivery ([0-9a-f]{16}) sent", text).group(1)
    environment = {**os.environ, "SENDTRAIL_API_URL": local_stack.api_url, "SENDTRAIL_API_TOKEN": local_stack.api_token}

    def cli(*arguments: str) -> str:
        return subprocess.run([sys.executable, "-m", "infra.cli", *arguments], env=environment, capture_output=True,
                              text=True, check=True, timeout=60).stdout

    wait_for(ApiClient(local_stack.api_url, local_stack.api_token), delivery_id, counted(delivered=2, failed=2))
    ran = cli("workflow", "run")
    assert re.match(r"^(idle|completed): run \S+, \d+ objects, \d+ lines, \d+ hits accepted, \d+ rejected", ran), ran
    shown = cli("deliveries", "indicators", delivery_id)
    assert re.search(r"^clicks_unique\s+\d+\s+\([0-9.]+ % of success\)$", shown, re.MULTILINE), shown
    assert re.search(r"^success\s+2$", shown, re.MULTILINE), shown  # of 4: a bounce and a complaint


def test_the_mta_sends_through_ses_events_bounces_and_quarantine(local_stack: Any) -> None:
    """A delivery to two successes, a bounce and a complaint; then the same addresses again."""
    import os
    import subprocess
    import sys
    import uuid

    label = uuid.uuid4().hex[:8]  # fresh addresses: the demo already quarantined the plain ones
    simulator = "simulator.amazonses.com"
    addresses = [f"success+a{label}@{simulator}", f"success+b{label}@{simulator}", f"bounce+{label}@{simulator}",
                 f"complaint+{label}@{simulator}"]
    api = ApiClient(local_stack.api_url, local_stack.api_token)
    body = {"name": f"mta {label}", "subject": "Hello", "from_address": "news@example.com",
            "html": '<p>Hi <a href="https://shop.example.com/">shop</a></p>',
            "recipients": [{"id": f"{label}-{index}", "email": email} for index, email in enumerate(addresses)]}
    first = api.post("/api/deliveries", body)["id"]
    api.post(f"/api/deliveries/{first}/send")
    delivery = wait_for(api, first, counted(delivered=2, failed=2))  # 2 delivered of 4
    assert (delivery["recipients"], delivery["counts"]["sent"], delivery["counts"]["pending"]) == (4, 0, 0)
    [bounced] = api.get(f"/api/deliveries/{first}/logs?status=failed&reason=user_unknown")["items"]
    assert (bounced["email"], bounced["failure_type"], bounced["failure_code"]) == (addresses[2], "hard", 1)
    quarantined = {item["address"]: item["status"] for item in api.get("/api/quarantine?limit=200")["items"]}
    assert quarantined[addresses[2]] == "quarantined" and quarantined[addresses[3]] == "denylisted"

    environment = {**os.environ, "SENDTRAIL_API_URL": local_stack.api_url, "SENDTRAIL_API_TOKEN": local_stack.api_token}

    def cli(*arguments: str) -> str:
        return subprocess.run([sys.executable, "-m", "infra.cli", *arguments], env=environment, capture_output=True,
                              text=True, check=True, timeout=60).stdout

    second = api.post("/api/deliveries", {**body, "name": f"mta {label} again"})["id"]
    assert "state      start_pending" in cli("deliveries", "send", second)
    delivery = wait_for(api, second, counted(delivered=2, ignored=2))
    assert delivery["counts"]["failed"] == 0
    ignored = cli("deliveries", "logs", second, "--status", "ignored")
    assert addresses[2] in ignored and "quarantined" in ignored and addresses[3] in ignored and "denylisted" in ignored
    assert "user_unknown (1) 1" in cli("deliveries", "show", first)
    listed = cli("quarantine", "list", "--limit", "200")
    assert addresses[2] in listed and addresses[3] in listed


def _moto(local_stack: Any, service: str) -> Any:
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-1")
    return session.client(service, endpoint_url=local_stack.moto_endpoint)


def test_sendtrail_status_reports_every_component_ok(local_stack: Any) -> None:
    import os
    import subprocess
    import sys

    environment = {**os.environ, "SENDTRAIL_API_URL": local_stack.api_url, "SENDTRAIL_API_TOKEN": local_stack.api_token}
    deadline = time.monotonic() + 15  # the workflow's first run comes within its local interval
    while True:
        result = subprocess.run([sys.executable, "-m", "infra.cli", "status"], env=environment, capture_output=True,
                                text=True, timeout=60)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:] if line.strip() and
            not line.startswith("sendtrail:")}
    assert rows == {"hit_endpoints": "OK", "signing_keys": "OK", "hit_stream": "OK", "hit_fallback": "OK",
                    "redirection_logs": "OK", "tracking_workflow": "OK", "ses": "OK", "send_work_queue": "OK", "send_work_dlq": "OK", "ses_events_queue": "OK",
                    "ses_events_dlq": "OK", "hit_endpoints_http": "OK"}, result.stdout
    assert f"{local_stack.api_url}/r/test answers <redir status='OK'" in result.stdout
    assert result.stdout.rstrip().endswith("sendtrail: OK")


def test_the_handlers_metrics_reach_cloudwatch_and_the_alarms_are_there(local_stack: Any) -> None:
    from infra.local_runtime.alarms import EVALUATION_INTERVAL_SECONDS

    text = "\n".join(local_stack.output)
    link = re.search(r"^\s+(http://\S+/r/\S+)$", text, re.MULTILINE).group(1)
    assert _get(link)[0] == 302
    tampered = link[:-1] + ("A" if link[-1] != "A" else "B")
    assert _get(tampered)[0] == 404  # a friendly page, counted as rejected (a hit the stream took is not)
    cloudwatch = _moto(local_stack, "cloudwatch")
    deadline = time.monotonic() + 3 * EVALUATION_INTERVAL_SECONDS
    while True:  # the hit path's and the workflow's metrics, captured and put by the alarm emulation
        found = {metric["MetricName"]: metric["Dimensions"] for metric in
                 cloudwatch.list_metrics(Namespace="sendtrail")["Metrics"] if len(metric["Dimensions"]) == 1}
        if {"HitsRejected", "HitsTracked", "WorkflowSuccesses"} <= set(found) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert found["HitsRejected"] == found["HitsTracked"] == found["WorkflowSuccesses"] == [
        {"Name": "stage", "Value": "local"}], found
    from infra.template import load_template

    declared = [name for name, resource in load_template()["Resources"].items()
                if resource.get("Type") == "AWS::CloudWatch::Alarm" and "Condition" not in resource]
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix="sendtrail-local-")["MetricAlarms"]
    assert len(alarms) == len(declared) > 13 and all(alarm["AlarmActions"] for alarm in alarms)
    assert cloudwatch.list_dashboards()["DashboardEntries"][0]["DashboardName"] == "sendtrail-local"


PERSON_AGENT = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                "Version/18.1 Mobile/15E148 Safari/604.1")


def _send_to_one(local_stack: Any, api: ApiClient, subject: str, links_html: str, recipient_id: str
                 ) -> tuple[str, float, list[str], list[str]]:
    """Send a one-recipient delivery through the stack: (its id, when it was delivered, its tracked links,
    its pixels), read from the local outbox."""
    delivery_id = api.post("/api/deliveries", {
        "name": subject.lower(), "subject": subject, "from_address": "news@example.com",
        "html": f"<html><body><p>{links_html}</p></body></html>",
        "recipients": [{"id": recipient_id, "email": "success@simulator.amazonses.com"}],
    })["id"]
    api.post(f"/api/deliveries/{delivery_id}/send")
    wait_for(api, delivery_id, lambda delivery: delivery["state"] == "finished")
    delivered_at = time.monotonic()
    [message] = [entry for entry in api.get("/local/outbox") if entry["subject"] == subject]
    links = re.findall(r'href="(' + re.escape(local_stack.api_url) + r'/r/[^"]+)"', message["html"])
    pixels = re.findall(r'src="(' + re.escape(local_stack.api_url) + r'/o/[^"]+)"', message["html"])
    return delivery_id, delivered_at, links, pixels


def _indicators_once(api: ApiClient, delivery_id: str, clicks_total: int, timeout: float) -> dict[str, Any]:
    """The delivery's indicators once they count `clicks_total` clicks (or after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        indicators: dict[str, Any] = api.get(f"/api/deliveries/{delivery_id}/indicators")
        if indicators["clicks_total"] == clicks_total or time.monotonic() > deadline:
            return indicators
        time.sleep(0.5)


def test_a_scanner_and_apples_proxy_beside_a_person_over_http(local_stack: Any) -> None:
    """People first over the local stack: Apple's proxy fetches the pixel and a scanner clicks every link at
    delivery; the person opens half a minute later and clicks one link. Every hit counts in the all-hits
    indicators; only the person's in the human ones."""
    api = ApiClient(local_stack.api_url, local_stack.api_token)
    delivery_id, delivered_at, links, [pixel] = _send_to_one(
        local_stack, api, "People first", '<a href="https://shop.example.com/a">A</a> '
        '<a href="https://shop.example.com/b">B</a> <a href="https://shop.example.com/c">C</a>', "e2e-person")
    assert len(links) == 3
    scanner = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
               "Safari/537.36 Edg/131.0.0.0")
    person = PERSON_AGENT
    assert _get(pixel, {"User-Agent": "Mozilla/5.0"})[0] == 200  # Apple's proxy, at delivery
    for link in links:  # the scanner: every link within a second
        assert _get(link, {"User-Agent": scanner})[0] == 302
    time.sleep(max(0.0, delivered_at + 30 - time.monotonic()))
    assert _get(pixel, {"User-Agent": person})[0] == 200
    time.sleep(1.5)
    assert _get(links[1], {"User-Agent": person})[0] == 302

    indicators = _indicators_once(api, delivery_id, 4, timeout=60)
    assert indicators["clicks_total"] == 4 and indicators["opens_unique"] == 1
    assert indicators["clicks_unique_human"] == 1 and indicators["clicks_total_human"] == 1
    assert indicators["opens_unique_human"] == 1 and indicators["opens_total_human"] == 1
    assert indicators["machine"]["hits"] == 4  # the proxy's open and the scanner's three clicks
    assert indicators["machine"]["by_reason"]["apple_proxy"] == 1
    assert indicators["machine"]["by_reason"]["burst"] == 3
    tracked = [item for item in api.get("/api/recipients/e2e-person/tracking")["items"]
               if item["delivery_id"] == delivery_id]
    assert sorted(item["class"] for item in tracked) == ["human", "human", "machine", "machine", "machine", "machine"]


def test_a_flood_on_one_link_does_not_hide_the_persons_later_click_over_http(local_stack: Any) -> None:
    """Issue 13 over the local stack: 300 clicks by a script on one link (past the 200 hits a recipient's item
    stores), then the person's click on another link: it is stored and shown, and every click is counted."""
    api = ApiClient(local_stack.api_url, local_stack.api_token)
    delivery_id, delivered_at, links, _ = _send_to_one(
        local_stack, api, "Flooded", '<a href="https://shop.example.com/a">A</a> '
        '<a href="https://shop.example.com/b">B</a>', "e2e-flooded")
    for _ in range(300):
        assert _get(links[0], {"User-Agent": "python-requests/2.32.3"})[0] == 302
    time.sleep(max(3.0, delivered_at + 6 - time.monotonic()))  # past the burst window and a too-fast click
    assert _get(links[1], {"User-Agent": PERSON_AGENT})[0] == 302
    indicators = _indicators_once(api, delivery_id, 301, timeout=90)
    assert (indicators["clicks_total"], indicators["clicks_unique"], indicators["persons_clicking"]) == (301, 1, 2)
    assert indicators["machine"]["by_reason"]["crawler"] == 300 and indicators["clicks_total_human"] == 1
    [newest] = api.get("/api/recipients/e2e-flooded/tracking?limit=1")["items"]
    assert (newest["url"], newest["class"]) == ("https://shop.example.com/b", "human")
