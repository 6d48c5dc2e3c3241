"""`make soak`: 100,000 hits through the whole local stack, counted exactly at the end.

The local stack as `make run` starts it (embedded AWS on 127.0.0.1, the API
over HTTP, the Kinesis -> Firehose pump, the scheduled tracking workflow,
the alarms): a delivery to RECIPIENTS simulator addresses is sent through
the MTA, then its tracked links are clicked HITS times over HTTP by a few
client threads (each recipient the same number of times; past the hits a
recipient's item stores, the rest are counted as evicted), and the soak waits until the workflow has
turned every click into the tracking tables. It fails unless the
delivery's indicators count every click exactly once (clicks_total = HITS,
clicks_unique = RECIPIENTS) and no request failed; it prints the duration
and hits per second of the clicking, and of the whole path to the tables.

Not part of `make test` (minutes, and a figure rather than an assertion of
speed). Options: --hits, --recipients, --threads, --processes, --timeout.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import re
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from infra.local_runtime.demo import SIMULATOR
from infra.local_runtime.stack import LocalStack, LocalStackOptions

HTML = ('<html><body><p>Hello {{first_name}}</p><a href="https://shop.example.com/autumn">Shop</a> '
        '<a href="https://blog.example.com/posts/how-we-track">Blog</a> '
        '<a href="{{unsubscribe_url}}">Unsubscribe</a></body></html>')


def _wait(what: str, done: Any, timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = done()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"soak: {what} did not happen within {timeout:g} s")
        time.sleep(interval)


def _send_delivery(stack: LocalStack, recipients: int, timeout: float) -> tuple[str, dict[str, list[str]]]:
    """A delivery sent through the MTA; its id and each recipient's click links (path and query)."""
    api = stack.client()
    delivery_id = api.post("/api/deliveries", {
        "name": "soak", "subject": "soak", "from_address": "soak@example.com", "html": HTML,
        "recipients": [{"id": f"soak-{index}", "email": f"success+soak{index}@{SIMULATOR}",
                        "attributes": {"first_name": f"R{index}"}} for index in range(recipients)]})["id"]
    api.post(f"/api/deliveries/{delivery_id}/send")
    _wait("the delivery's sending", lambda: api.get(f"/api/deliveries/{delivery_id}")["state"] == "finished", timeout)
    links: dict[str, list[str]] = {}
    for message in api.get("/local/outbox"):
        found = re.findall(r'href="([^"]+/r/[^"]+)"', message.get("html") or "")
        if found:
            links[message["to"][0]] = [urlsplit(link.replace("&amp;", "&"))._replace(scheme="", netloc="").geturl()
                                       for link in found]
    if len(links) != recipients:
        raise SystemExit(f"soak: {len(links)} of {recipients} messages carry tracked links")
    return delivery_id, links


def _click_share(host: str, port: int, paths: list[str], threads: int) -> list[str]:
    """GET every path over HTTP (keep-alive, one connection per thread); the failures."""
    failures: list[str] = []
    local = threading.local()

    def get(path: str) -> None:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection(host, port, timeout=60)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            if response.status != 302:
                failures.append(f"{response.status} {path}")
        except (OSError, http.client.HTTPException) as error:
            local.connection = None
            failures.append(f"{type(error).__name__} {path}")

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(get, paths, chunksize=64))
    return failures


def _click_all(stack: LocalStack, paths: list[str], threads: int, processes: int) -> tuple[float, list[str]]:
    """The clicks from `processes` client processes of `threads` threads each: (seconds, failures).

    The clients run outside the stack's process: in it, they would take the interpreter lock from the
    handlers, moto and the pump they are measuring."""
    address = urlsplit(stack.api_url)
    shares = [paths[index::processes] for index in range(processes)]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_click_share, [address.hostname] * processes, [address.port] * processes, shares,
                                [threads] * processes))
    return time.perf_counter() - started, [failure for failures in results for failure in failures]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=100_000)
    parser.add_argument("--recipients", type=int, default=400)
    parser.add_argument("--threads", type=int, default=8, help="client threads per client process")
    parser.add_argument("--processes", type=int, default=2, help="client processes (outside the stack's)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the tables at most")
    arguments = parser.parse_args(argv)
    if arguments.hits % arguments.recipients:
        parser.error("--hits must be a multiple of --recipients (each recipient clicks as often)")
    per_recipient = arguments.hits // arguments.recipients

    stack = LocalStack(LocalStackOptions(port=0, state_file=None)).start()
    try:
        print(f"soak: local stack at {stack.api_url}; sending to {arguments.recipients} recipients", flush=True)
        delivery_id, links = _send_delivery(stack, arguments.recipients, timeout=600)
        print(f"soak: delivery {delivery_id} sent; clicking", flush=True)
        paths = [recipient_links[index % len(recipient_links)]
                 for recipient_links in links.values() for index in range(per_recipient)]
        started = time.perf_counter()
        seconds, failures = _click_all(stack, paths, arguments.threads, arguments.processes)
        if failures:
            print(f"soak: {len(failures)} requests failed, e.g. {failures[:3]}", file=sys.stderr)
            return 1
        print(f"soak clicks: {len(paths):,} hits over HTTP in {seconds:.1f} s = {len(paths) / seconds:,.0f} hits/s "
              f"({arguments.processes} client processes x {arguments.threads} threads)", flush=True)
        api = stack.client()

        progress = [-1]

        def indicators() -> dict[str, Any] | None:
            found = api.get(f"/api/deliveries/{delivery_id}/indicators")
            if found.get("clicks_total", 0) != progress[0]:
                progress[0] = found.get("clicks_total", 0)
                print(f"soak: {progress[0]:,} clicks tracked after {time.perf_counter() - started:.0f} s", flush=True)
            return found if found.get("clicks_total", 0) >= len(paths) else None

        found = _wait("tracking every click", indicators, arguments.timeout, interval=2.0)
        total = time.perf_counter() - started
        counts = (found["clicks_total"], found["clicks_unique"])
        print(f"soak tracked: clicks_total={counts[0]:,} clicks_unique={counts[1]:,} in {total:.1f} s from the "
              f"first click = {len(paths) / total:,.0f} hits/s end to end (handler, Kinesis, Firehose, workflow)")
        if counts != (len(paths), arguments.recipients):
            print(f"soak: expected clicks_total={len(paths)} clicks_unique={arguments.recipients}", file=sys.stderr)
            return 1
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
