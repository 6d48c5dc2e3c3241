"""DynamoDB write requests of a workflow run, per 1,000 hits, on moto.

    .venv/bin/python -m bench.tracking_workflow

Writes follow the distinct keys a run touches (recipients, stats items,
objects / 25), so the figure per 1,000 hits falls as hits per recipient rise.
"""

from __future__ import annotations

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
