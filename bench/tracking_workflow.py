"""DynamoDB write requests of a workflow run, per 1,000 hits, on moto.

    .venv/bin/python -m bench.tracking_workflow

Writes follow the distinct keys a run touches (recipients, stats items,
objects / 25), so the figure per 1,000 hits falls as hits per recipient rise.
"""

from __future__ import annotations

import gzip
import json
import os
import time

import boto3


def main() -> None:
    from moto import mock_aws

    from infra.local_runtime import environment
    from infra.local_runtime.provision import provision
    from tests.conftest import KEYRING_V1
    from tests.tracking_harness import FakeClock, tap, workflow
    from tests.tracking_load import T0, create_recipients, load_records, put_load

    environment.apply(environment.fake_aws(), remove=("AWS_ENDPOINT_URL",))
    print("tracking workflow: DynamoDB write requests (moto, one run)")
    for recipients, per_recipient in ((1000, 1), (1000, 10), (200, 50)):
        saved = dict(os.environ)
        with mock_aws():
            provisioned = provision(boto3.session.Session(), stage="local")
            environment.apply({**provisioned.environment, "SENDTRAIL_SIGNING_KEYS": KEYRING_V1})
            delivery_id = "0a0b0c0d0e0f1011"
            create_recipients(delivery_id, recipients)
            put_load(load_records(delivery_id, recipients, per_recipient), objects=10)
            with tap() as observed:
                started = time.perf_counter()
                statistics = workflow(FakeClock(T0 / 1000 + 3600), max_objects=1000).run()
                seconds = time.perf_counter() - started
            hits = statistics["hits_accepted"]
            writes = observed.dynamodb_writes()
            print(f"  {hits:>6,} hits over {recipients:>5,} recipients: {writes:>5,} writes "
                  f"= {writes * 1000 / hits:6.1f} per 1,000 hits ({statistics['recipients_updated']} recipient items, "
                  f"{statistics['stat_items_updated']} stats items; {seconds:.1f} s on moto)")
        os.environ.clear()
        os.environ.update(saved)
        environment.forget_cached_configuration()


if __name__ == "__main__":
    main()


# --- Billed units of runs on the standard input (the `workflow` and `cost` lines) -------------------------

WORKFLOW_HITS = 10_000  # the standard input's first hits...
WORKFLOW_AUDIENCE = 0.004  # ...with every delivery's audience scaled to give about 10 hits a recipient
MAX_OBJECT_BYTES = 64 * 2**20  # Firehose's buffer (RedirectionLogBufferMB's default): the largest object


def _metered_workflow(lines: list[bytes], runs: int, recipients: dict[str, int], layout: str = "items") -> dict:
    """The standard input's `lines` through the workflow on moto in `runs` runs (time-ordered slices, one
    object each, as Firehose writes them), then one idle run; what each was billed (bench/aws_meter.py).
    `recipients`: each delivery's audience (its summary's, as the send workers leave it); `layout`: the
    tracking layout the workflow writes (settings.tracking_layout)."""
    from moto import mock_aws

    from bench.aws_meter import metered
    from bench.inputs import KEYRING_JSON
    from chalicelib.data.deliveries import DeliveryStore
    from chalicelib.data.redirection_logs import LOG_PREFIX, hour_partition
    from chalicelib.settings import get_settings
    from infra.local_runtime import environment
    from infra.local_runtime.provision import provision
    from tests.tracking_harness import FakeClock, workflow

    records = [json.loads(line) for line in lines]
    saved = dict(os.environ)
    environment.apply(environment.fake_aws(), remove=("AWS_ENDPOINT_URL",))
    try:
        with mock_aws():
            provisioned = provision(boto3.session.Session(), stage="local")
            environment.apply({**provisioned.environment, "SENDTRAIL_SIGNING_KEYS": KEYRING_JSON,
                               "SENDTRAIL_TRACKING_LAYOUT": layout})
            environment.forget_cached_configuration()
            settings = get_settings()
            # The deliveries and their logs, as the send workers leave them (the workflow reads each touched
            # recipient's id, send time and address once).
            store = DeliveryStore(settings.deliveries_table, settings.delivery_logs_table)
            audiences: dict[str, set[int]] = {}
            for record in records:
                audiences.setdefault(record["delivery_id"], set()).add(record["log_id"])
            for delivery_id, log_ids in audiences.items():
                store.create(delivery_id, {"name": "bench", "state": "finished", "created_at": 1,
                                           "recipients": recipients[delivery_id], "counts": {"sent": len(log_ids)}},
                             {"subject": "s"},
                             {"urls": {str(url_id): {"url": f"https://example.com/{url_id}", "type": "click",
                                                     "label": f"link {url_id}", "placeholders": []}
                                       for url_id in range(1, 15)}})
                store.put_logs(delivery_id, ({"log_id": log_id, "recipient_id": f"r-{delivery_id[:6]}-{log_id}",
                                              "email": f"person{log_id}@mail{log_id % 7}.example", "status": "sent",
                                              "sent_at": records[0]["ts"] - 3_600_000} for log_id in sorted(log_ids)))
            s3 = boto3.client("s3")
            clock = FakeClock(records[0]["ts"] / 1000 + 60)
            size = -(-len(lines) // runs)
            with metered() as meter:
                cpu_started = time.process_time()
                accepted = recipient_writes = 0
                for run in range(runs):
                    chunk = lines[run * size:(run + 1) * size]
                    at_ms = json.loads(chunk[0])["ts"]
                    assert sum(map(len, chunk)) <= MAX_OBJECT_BYTES
                    s3.put_object(Bucket=settings.redirection_log_bucket,
                                  Key=f"{LOG_PREFIX}{hour_partition(at_ms)}/bench-{run:04d}",
                                  Body=gzip.compress(b"".join(chunk)))
                    clock.now = max(clock.now, at_ms / 1000) + 120
                    statistics = workflow(clock).run()
                    accepted += statistics["hits_accepted"]
                    recipient_writes += statistics["recipients_updated"]
                cpu = time.process_time() - cpu_started - meter.excluded_cpu_s
                # (The objects put above stand for Firehose's: their client predates the meter, unmetered.)
                # The recipient items written, a unit each at least: the floor of any layout that keeps one
                # item per recipient and delivery, however small (a run writes each touched recipient once).
                busy = {"hits": accepted, "recipient_writes": recipient_writes,
                        "write_units": meter.total_write_units(), "read_units": meter.total_read_units(),
                        "s3_put": meter.s3_requests()["put"],
                        "s3_get": meter.s3_requests()["get"], "cpu_s": cpu, "runs": runs,
                        "write_units_by_table": dict(meter.write_units),
                        "write_units_by_kind": dict(meter.write_units_by_kind), "requests": dict(meter.requests)}
                meter.reset()
                cpu_started = time.process_time()
                clock.advance(60)
                status = workflow(clock).run()["status"]
                assert status == "idle", status
                idle = {"write_units": meter.total_write_units(), "read_units": meter.total_read_units(),
                        "s3_put": meter.s3_requests()["put"], "s3_get": meter.s3_requests()["get"],
                        "cpu_s": time.process_time() - cpu_started - meter.excluded_cpu_s}
    finally:
        os.environ.clear()
        os.environ.update(saved)
        environment.forget_cached_configuration()
    return {**busy, "idle": idle}


def measure_units(spreads: tuple[int, ...] = (1, 10), layout: str = "items") -> dict[int, dict]:
    """Billed units of the standard workflow input (WORKFLOW_HITS hits, ~10 a recipient) applied in one run
    and spread over more runs (a recipient's hits arrive over hours: items are rewritten), in `layout`."""
    from bench.inputs import delivery_audiences, standard_input

    sample = standard_input(WORKFLOW_HITS, audience=WORKFLOW_AUDIENCE)
    with gzip.open(sample.path, "rb") as stream:
        lines = stream.readlines()
    recipients = len({(record["delivery_id"], record["log_id"]) for record in map(json.loads, lines)})
    results = {}
    for runs in spreads:
        result = _metered_workflow(lines, runs, delivery_audiences(audience=WORKFLOW_AUDIENCE), layout)
        result["hits_per_recipient"] = result["hits"] / recipients
        results[runs] = result
    return results
