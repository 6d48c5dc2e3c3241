"""`sendtrail`: the operator's command line.

    sendtrail local up            run the local stack (moto + API + emulations) and the demo
    sendtrail demo                send the large demo delivery again and play its recipients' reactions
    sendtrail deliveries list     list deliveries, newest first
    sendtrail deliveries indicators ID   a delivery's tracking indicators
    sendtrail deliveries send|pause|resume|stop ID   start or steer a delivery's send job
    sendtrail deliveries show ID  a delivery's state, counts, failures, throughput and why it is stalled
    sendtrail deliveries logs ID [--status S] [--reason R]   its delivery logs
    sendtrail quarantine list     quarantined and denylisted addresses
    sendtrail workflow run        run the tracking workflow now and print its statistics
    sendtrail status              every component OK, WARN or FAIL and why; exit 0, 1 or 2
    sendtrail token new --scope read|admin   a new API token and the entry to configure
    sendtrail keys list           the link-signing keys: in the ring, links valid until, may be removed after
    sendtrail keys rotate --parameter NAME   add a key, make it active, say when the old one may go
    sendtrail keys remove ID --parameter NAME   remove a retired key (refused while its links are valid)
    sendtrail lists show          the human/machine lists: entries per signal and provider
    sendtrail lists import-ranges|import-agents FILE --provider P --signal S --source URL
                                  replace a provider's list from a file you downloaded

Commands that talk to an API use SENDTRAIL_API_URL and SENDTRAIL_API_TOKEN,
or, when unset, the running local stack's (.local-state/stack.json).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from chalicelib.keyring import KeyRingError
from infra.api_client import ApiClient, ApiError

STATE_FILE = Path(".local-state/stack.json")


def _api() -> ApiClient:
    url, token = os.environ.get("SENDTRAIL_API_URL"), os.environ.get("SENDTRAIL_API_TOKEN")
    if not (url and token) and STATE_FILE.exists():
        state = json.loads(STATE_FILE.read_text())
        url, token = url or state["api_url"], token or state["api_token"]
    if not (url and token):
        raise SystemExit("set SENDTRAIL_API_URL and SENDTRAIL_API_TOKEN, or start the local stack (make run)")
    if not url.startswith(("https://", "http://")):
        raise SystemExit(f"SENDTRAIL_API_URL must start with https:// or http://, not {url[:40]!r}")
    return ApiClient(url, token)


def _when(epoch_ms: Any) -> str:
    """A time the API gives in ms since the epoch, as a person reads it (UTC); anything else as it is."""
    from datetime import datetime, timezone

    if isinstance(epoch_ms, bool) or not isinstance(epoch_ms, (int, float)):
        return "" if epoch_ms is None else str(epoch_ms)
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _with_times(rows: list[dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    return [{**row, **{name: _when(row.get(name)) for name in names if name in row}} for row in rows]


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = {column: max([len(column)] + [len(str(row.get(column, ""))) for row in rows]) for column in columns}
    print("  ".join(column.upper().ljust(widths[column]) for column in columns))
    for row in rows:
        print("  ".join(str(row.get(column, "")).ljust(widths[column]) for column in columns))


def local_up(arguments: argparse.Namespace) -> int:
    import logging
    import threading

    from infra.local_runtime.demo import demo_mode, run_engagement_demo
    from infra.local_runtime.stack import LocalStack, LocalStackOptions

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # The API's request threads share each boto3 client's 10 pooled connections to the embedded AWS: under the
    # demo's traffic urllib3 says, harmlessly, that it closes a surplus connection instead of pooling it.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    mode = "off" if arguments.no_demo else demo_mode(os.environ.get("SENDTRAIL_DEMO"))
    stack = LocalStack(LocalStackOptions(port=arguments.port, moto_port=arguments.moto_port))
    stack.start()
    print(f"sendtrail local stack: API on {stack.api_url} (embedded AWS on {stack.moto_endpoint})")
    print(f"API token: {stack.api_token}")
    print(f"  curl -H 'Authorization: Bearer {stack.api_token}' {stack.api_url}/api/deliveries")
    print(f"Dashboard: {stack.api_url}/dashboard/login (sign in with the API token above)")
    if mode != "off":
        demo = stack.seed_demo()
        print(f"Demo delivery {demo['delivery_id']} sent; its messages: {stack.api_url}/local/outbox")
        print(f"  to the SES mailbox simulator: 2 delivered, a bounce, a complaint "
              f"(.venv/bin/sendtrail deliveries show {demo['delivery_id']}; sendtrail quarantine list)")
        print("Tracked links of the first message (open them in a browser):")
        for link in demo["links"][:5]:
            print(f"  {link}")
    from chalicelib.settings import get_settings

    interval = get_settings().workflow_interval_seconds
    print(f"Tracking workflow every {interval:g} s: clicks show in {stack.api_url}/api/deliveries/<id>/indicators")
    print("Serving until Ctrl-C.", flush=True)
    stop = threading.Event()
    if mode == "large":  # after /r/test answers (the API is up): the demo audience and its reactions
        threading.Thread(target=_large_demo, args=(run_engagement_demo, stack.client(), stop),
                         name="sendtrail-demo", daemon=True).start()
    try:
        stack.wait()
    finally:
        stop.set()
        stack.stop()
    return 0


def _large_demo(run: Any, api: ApiClient, stop: Any) -> None:
    try:
        run(api, stop=stop, announce=lambda line: print(line, flush=True))
    except Exception as error:  # noqa: BLE001 - the demo failing leaves the stack serving
        if not stop.is_set():
            print(f"demo: {error}", flush=True)


def demo(arguments: argparse.Namespace) -> int:
    """Send the large demo delivery to the running local stack and play its recipients' reactions."""
    from infra.local_runtime.demo import run_engagement_demo

    result = run_engagement_demo(_api(), recipients=arguments.recipients, seconds=arguments.minutes * 60,
                                 seed=arguments.seed, announce=lambda line: print(line, flush=True))
    return 0 if not result["answered"].get("failed") else 1


def deliveries_list(arguments: argparse.Namespace) -> int:
    page = _api().get(f"/api/deliveries?limit={arguments.limit}" + (f"&state={arguments.state}" if arguments.state
                                                                     else ""))
    _print_table(_with_times(page["items"], "created_at"), ["id", "name", "state", "recipients", "created_at"])
    return 0


def deliveries_indicators(arguments: argparse.Namespace) -> int:
    body = _api().get(f"/api/deliveries/{arguments.delivery_id}/indicators")
    rates = body.pop("rates", {})
    machine = body.pop("machine", None)
    for name, value in body.items():
        rate = f"  ({rates[name]:g} % of success)" if name in rates else (" %" if name.startswith("reactivity") else "")
        print(f"{name:22} {_when(value) if name == 'last_updated' else value}{rate}")
    if machine is not None:
        reasons = ", ".join(f"{reason} {count}" for reason, count in machine.get("by_reason", {}).items() if count)
        print(f"{'machine_hits':22} {machine.get('hits', 0)}" + (f"  ({reasons})" if reasons else ""))
    return 0


def _print_delivery(body: dict[str, Any]) -> None:
    times = ("created_at", "start_requested_at", "started_at", "paused_at", "stopped_at", "finished_at")
    started = ", ".join(f"{name} {_when(body[name])}" for name in times if body.get(name))
    print(f"{body['id']}  {body.get('name', '')}")
    print(f"state      {body['state']}" + (f" (affinity {body['affinity']})" if body.get("affinity") else ""))
    if body.get("stalled"):
        reason = body.get("reason") or {}
        print(f"stalled    {reason.get('code')}: {reason.get('message')} (since {_when(reason.get('since'))})")
    if body.get("failure"):
        print(f"failure    {body['failure'].get('code')}: {body['failure'].get('message')}")
    print("counts     " + ", ".join(f"{name} {value}" for name, value in (body.get("counts") or {}).items()))
    for failure_type, failures in (body.get("failures") or {}).items():
        if failures.get("total"):
            reasons = ", ".join(f"{row['reason']} ({row['code']}) {row['count']}" for row in failures["reasons"])
            print(f"{failure_type:10} {failures['total']}: {reasons}")
    throughput = body.get("throughput") or {}
    if throughput.get("messages"):
        print(f"throughput {throughput['messages_per_hour']:g} messages/h, {throughput['bits_per_second']:g} bit/s "
              f"({throughput['messages']} messages in {throughput['seconds']:g} s)")
    if started:
        print(f"times      {started}")


def deliveries_action(arguments: argparse.Namespace) -> int:
    """send, pause, resume or stop: the job's new state."""
    _print_delivery(_api().post(f"/api/deliveries/{arguments.delivery_id}/{arguments.action}"))
    return 0


def deliveries_show(arguments: argparse.Namespace) -> int:
    _print_delivery(_api().get(f"/api/deliveries/{arguments.delivery_id}"))
    return 0


def deliveries_logs(arguments: argparse.Namespace) -> int:
    query = {name: value for name, value in (("status", arguments.status), ("reason", arguments.reason),
                                             ("limit", str(arguments.limit))) if value}
    path = f"/api/deliveries/{arguments.delivery_id}/logs?" + urllib.parse.urlencode(query)
    rows = []
    while True:
        page = _api().get(path)
        rows += page["items"]
        if not (arguments.all and page.get("next")):
            break
        query["next"] = page["next"]
        path = f"/api/deliveries/{arguments.delivery_id}/logs?" + urllib.parse.urlencode(query)
    _print_table(rows, ["log_id", "recipient_id", "email", "status", "failure_type", "failure_reason", "failure_code"])
    return 0


def quarantine_list(arguments: argparse.Namespace) -> int:
    page = _api().get(f"/api/quarantine?limit={arguments.limit}")
    _print_table(_with_times(page["items"], "since"),
                 ["address", "status", "reason", "code", "since", "error_count", "delivery_id"])
    return 0


def workflow_run(arguments: argparse.Namespace) -> int:
    """Run the tracking workflow now (as the schedule would), until no backlog is left with --drain."""
    while True:
        statistics = _api().post("/api/workflow/run")
        rejected = statistics.get("rejected") or {}
        print(f"{statistics['status']}: run {statistics.get('run') or '-'}, {statistics['objects']} objects, "
              f"{statistics['lines']} lines, {statistics['hits_accepted']} hits accepted, "
              f"{statistics['rejected_total']} rejected"
              + (" (" + ", ".join(f"{reason} {count}" for reason, count in rejected.items()) + ")" if rejected else "")
              + f", {statistics['duplicates']} duplicates dropped, {statistics['duration_ms']} ms"
              + (", backlog left" if statistics.get("backlog") else "")
              + (f"; completed interrupted run {statistics['resumed_run']}" if statistics.get("resumed_run") else ""))
        if not (arguments.drain and statistics.get("backlog")):
            return 0


EXIT_CODES = {"OK": 0, "WARN": 1, "FAIL": 2}


def _redirection_status(url: str) -> tuple[str, str]:
    """GET /r/test from here, as Campaign operators poll it: (status, what it answered)."""
    import urllib.error
    import urllib.request

    if not url.startswith(("https://", "http://")):
        return "FAIL", f"{url[:80]!r} is not an http(s) URL"
    try:
        # S310/B310 (URL schemes): the operator's own endpoint, its scheme checked above.
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310  # nosec B310
            body = response.read().decode("utf-8", "replace").strip()
            code = response.status
    except (urllib.error.URLError, OSError) as error:
        return "FAIL", f"{url} does not answer: {getattr(error, 'reason', error)}"
    if code != 200 or "status='OK'" not in body:
        return "FAIL", f"{url} answers {code}: {body[:200]}"
    return "OK", f"{url} answers {body}"


def status(arguments: argparse.Namespace) -> int:
    """GET /api/status, then /r/test from this machine; the worst status is the exit code (0 OK, 1 WARN, 2 FAIL)."""
    report = _api().get("/api/status")
    components = report["components"]
    url = next((item["details"].get("url") for item in components if item["component"] == "hit_endpoints"), None)
    if url and not arguments.no_http:
        state, reason = _redirection_status(url)
        components.append({"component": "hit_endpoints_http", "status": state, "reason": reason, "details": {}})
    overall = max((item["status"] for item in components), key=EXIT_CODES.__getitem__, default="OK")
    if arguments.json:
        print(json.dumps({**report, "status": overall, "components": components}, indent=2))
    else:
        _print_table(components, ["component", "status", "reason"])
        print(f"\nsendtrail: {overall}")
    return EXIT_CODES[overall]


def token_new(arguments: argparse.Namespace) -> int:
    """A new token of a scope and the entry that lets it in; rotation keeps the old entry until clients moved."""
    from chalicelib.auth import token_entry

    token = secrets.token_urlsafe(32)
    print(f"token: {token}")
    print(f"entry: {token_entry(arguments.scope, token)}")
    print("Add the entry to the ApiTokens template parameter (comma-separated; SENDTRAIL_API_TOKENS locally).\n"
          "To rotate, keep the old token's entry until every client uses the new token, then remove it.")
    return 0


def _key_schedule() -> dict[str, Any]:
    return _api().get("/api/signing-keys")


def keys_list(_: argparse.Namespace) -> int:
    rows = [{**row, "in_ring": "yes" if row["in_ring"] else "NO", "active": "active" if row["active"] else ""}
            for row in _key_schedule()["keys"]]
    _print_table(_with_times(rows, "links_valid_until", "may_remove_after", "announced_removal"),
                 ["key_id", "active", "in_ring", "links_valid_until", "may_remove_after", "announced_removal"])
    return 0


def _read_ring(ssm: Any, parameter: str) -> Any:
    from chalicelib.keyring import KeyRing

    return KeyRing.from_json(ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"])


def _write_ring(ssm: Any, parameter: str, ring: Any) -> None:
    ssm.put_parameter(Name=parameter, Value=ring.to_json(), Type="SecureString", Overwrite=True)


def keys_rotate(arguments: argparse.Namespace) -> int:
    """Add a key, make it active, and announce (in the ring and here) when the old one may be removed.

    The old key's date is the latest expiry of the links it signed (recorded
    by the send workers), counting the messages warm functions still sign
    with it until they read the new ring, plus the time their hits may
    still be on their way to the tracking workflow.
    """
    import boto3

    from chalicelib.clock import now_ms
    from chalicelib.keyring import format_time, links_valid_until, removable_from

    ssm = boto3.client("ssm")
    ring = _read_ring(ssm, arguments.parameter)
    schedule = _key_schedule()
    old = ring.active_key_id
    recorded = next((row["links_valid_until"] for row in schedule["keys"] if row["key_id"] == old), None) or 0
    still_signing_until = now_ms() + int(schedule["ring_max_age_seconds"]) * 1000
    valid_until = max(recorded, links_valid_until(still_signing_until, still_signing_until,
                                                  int(schedule["unsubscribe_days"])))
    retire_after = removable_from(valid_until, int(schedule["hits_in_flight_hours"]))
    rotated = ring.rotated(retire_after)
    _write_ring(ssm, arguments.parameter, rotated)
    print(f"key {rotated.active_key_id} added and active (functions read it within "
          f"{schedule['ring_max_age_seconds']} s).")
    print(f"key {old} may be removed after {format_time(retire_after)}: links it signed are valid until "
          f"{format_time(valid_until)} (List-Unsubscribe included), plus {schedule['hits_in_flight_hours']} h "
          f"for their hits to reach the tracking workflow. `sendtrail status` warns if that changes.")
    return 0


def keys_remove(arguments: argparse.Namespace) -> int:
    """Remove a retired key; refused while links it signed are valid (unless --force)."""
    import boto3

    from chalicelib.clock import now_ms
    from chalicelib.keyring import format_time

    ssm = boto3.client("ssm")
    ring = _read_ring(ssm, arguments.parameter)
    row = next((row for row in _key_schedule()["keys"] if row["key_id"] == arguments.key_id), {})
    needed_until = max(row.get("may_remove_after") or 0, ring.remove_after.get(arguments.key_id, 0))
    if needed_until > now_ms() and not arguments.force:
        print(f"sendtrail: key {arguments.key_id} is needed until {format_time(needed_until)} (links it signed, "
              f"List-Unsubscribe included, would answer 'not found'); --force removes it anyway", file=sys.stderr)
        return 1
    _write_ring(ssm, arguments.parameter, ring.without(arguments.key_id))
    print(f"key {arguments.key_id} removed from {arguments.parameter}")
    return 0


def lists_show(_: argparse.Namespace) -> int:
    """The human/machine lists: entries per signal and provider, and each file's version."""
    from infra import machine_lists

    _print_table(machine_lists.summary(), ["list", "version", "signal", "provider", "entries"])
    return 0


def lists_import(arguments: argparse.Namespace) -> int:
    """Replace a provider's entries in a list with those of a file the user downloaded."""
    from infra import machine_lists

    text = Path(arguments.file).read_text(encoding="utf-8")
    importer = machine_lists.import_ranges if arguments.kind == "ranges" else machine_lists.import_agents
    try:
        removed, added = importer(text, arguments.provider, arguments.signal, arguments.source)
    except machine_lists.ListError as error:
        print(f"sendtrail: {error}", file=sys.stderr)
        return 2
    print(f"{arguments.provider} ({arguments.signal}): {removed} entries replaced by {added}; "
          "review the diff, commit, and deploy")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sendtrail", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    local = commands.add_parser("local", help="the local stack").add_subparsers(dest="action", required=True)
    up = local.add_parser("up", help="run moto, the API and the emulations on 127.0.0.1")
    up.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    up.add_argument("--moto-port", type=int, default=int(os.environ.get("MOTO_PORT", "0")))
    up.add_argument("--no-demo", action="store_true", help="do not seed and send the demo delivery")
    up.set_defaults(handler=local_up)

    from infra.local_runtime.demo import LARGE_DEMO_RECIPIENTS, LARGE_DEMO_SECONDS

    replay = commands.add_parser("demo", help="send the large demo delivery to the local stack and play its "
                                                "recipients' opens, clicks and opt-outs through the hit endpoints")
    replay.add_argument("--recipients", type=int, default=LARGE_DEMO_RECIPIENTS,
                        help=f"mailbox simulator addresses (default {LARGE_DEMO_RECIPIENTS})")
    replay.add_argument("--minutes", type=float, default=LARGE_DEMO_SECONDS / 60,
                        help=f"how long the reactions take (default {LARGE_DEMO_SECONDS / 60:g})")
    replay.add_argument("--seed", type=int, default=2026, help="another seed, other reactions")
    replay.set_defaults(handler=demo)

    deliveries = commands.add_parser("deliveries", help="deliveries").add_subparsers(dest="action", required=True)
    listing = deliveries.add_parser("list", help="newest first")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--state", help="only deliveries in this state (start_pending, in_progress, paused, ...)")
    listing.set_defaults(handler=deliveries_list)
    indicators = deliveries.add_parser("indicators", help="a delivery's tracking indicators")
    indicators.add_argument("delivery_id")
    indicators.set_defaults(handler=deliveries_indicators)

    for action, description in (("send", "start sending (the job goes to start_pending)"),
                                ("pause", "pause sending"), ("resume", "resume a paused delivery"),
                                ("stop", "stop for good; what was not sent is canceled")):
        command = deliveries.add_parser(action, help=description)
        command.add_argument("delivery_id")
        command.set_defaults(handler=deliveries_action, action=action)
    show = deliveries.add_parser("show", help="state, counts, failures, throughput, and why it is stalled")
    show.add_argument("delivery_id")
    show.set_defaults(handler=deliveries_show)
    logs = deliveries.add_parser("logs", help="a delivery's logs (one per recipient)")
    logs.add_argument("delivery_id")
    logs.add_argument("--status", help="prepared, pending, sent, delivered, failed, ignored or canceled")
    logs.add_argument("--reason", help="a failure reason, e.g. user_unknown, mailbox_full, quarantined")
    logs.add_argument("--limit", type=int, default=50)
    logs.add_argument("--all", action="store_true", help="every page")
    logs.set_defaults(handler=deliveries_logs)

    quarantine = commands.add_parser("quarantine", help="quarantined and denylisted addresses").add_subparsers(
        dest="action", required=True)
    quarantined = quarantine.add_parser("list", help="most recent first")
    quarantined.add_argument("--limit", type=int, default=50)
    quarantined.set_defaults(handler=quarantine_list)

    workflow = commands.add_parser("workflow", help="the tracking workflow").add_subparsers(dest="action",
                                                                                           required=True)
    run = workflow.add_parser("run", help="run it now and print its statistics")
    run.add_argument("--drain", action="store_true", help="run again while a backlog is left")
    run.set_defaults(handler=workflow_run)

    checked = commands.add_parser("status", help="every component OK, WARN or FAIL and why (exit 0, 1 or 2)")
    checked.add_argument("--json", action="store_true", help="the report as JSON")
    checked.add_argument("--no-http", action="store_true", help="do not GET /r/test from this machine")
    checked.set_defaults(handler=status)

    lists = commands.add_parser("lists", help="the human/machine lists (chalicelib/tracking/data/)").add_subparsers(
        dest="action", required=True)
    lists.add_parser("show", help="entries per signal and provider").set_defaults(handler=lists_show)
    for kind, signals, example in (
            ("ranges", ("apple_proxy", "scanner"),
             "e.g. Apple's egress-ip-ranges.csv or Microsoft 365's endpoints JSON"),
            ("agents", ("apple_proxy", "scanner", "prefetch"), "one user-agent marker per line")):
        importing = lists.add_parser(f"import-{kind}", help=f"replace a provider's {kind} from a downloaded file "
                                                           f"({example})")
        importing.add_argument("file")
        importing.add_argument("--provider", required=True, help="whose list it is, e.g. 'Apple Private Relay'")
        importing.add_argument("--signal", required=True, choices=signals)
        importing.add_argument("--source", required=True, help="where the file was downloaded from (a URL)")
        importing.set_defaults(handler=lists_import, kind=kind)

    token = commands.add_parser("token", help="API tokens").add_subparsers(dest="action", required=True)
    new_token = token.add_parser("new", help="print a new token and the scope:sha256 entry to configure")
    new_token.add_argument("--scope", required=True, choices=["read", "admin"],
                           help="read: dashboards, reports, status; admin: also create, send, steer, run, erase")
    new_token.set_defaults(handler=token_new)

    keys = commands.add_parser("keys", help="link-signing keys").add_subparsers(dest="action", required=True)
    keys.add_parser("list", help="each key: in the ring, links valid until, may be removed after").set_defaults(
        handler=keys_list)
    ring_parameter = {"required": True, "help": "the SSM SecureString holding the key ring (SigningKeysParameterName)"}
    rotate = keys.add_parser("rotate", help="add a key, make it active, say when the old one may go")
    rotate.add_argument("--parameter", **ring_parameter)
    rotate.set_defaults(handler=keys_rotate)
    remove = keys.add_parser("remove", help="remove a retired key once its links expired")
    remove.add_argument("key_id", type=int)
    remove.add_argument("--parameter", **ring_parameter)
    remove.add_argument("--force", action="store_true", help="even while links it signed are valid")
    remove.set_defaults(handler=keys_remove)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        return arguments.handler(arguments)
    except ApiError as error:
        print(f"sendtrail: {error}", file=sys.stderr)
        return 1
    except KeyRingError as error:
        print(f"sendtrail: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
