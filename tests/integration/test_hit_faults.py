"""Fault injection on the hit path: 10,000 hits, a fifth of the Kinesis puts failing, exact indicators.

Every hit goes through the API Gateway emulation into the app, over moto,
while botocore-level faults (tests/aws_faults.py) make 20% of the Kinesis
puts fail after botocore's retries (throttled on every attempt; a tenth of
them only after the record was written, as when a response is lost) and 5%
of the fallback delivery stream's puts fail too. Then Firehose delivers
the hit stream, the tracking workflow runs until it is idle, and the
delivery's indicators must be exactly what the hits make: no hit lost,
none counted twice although some were written twice or three times. The
objects the redirection logs hold, by path, are printed.

`make test` runs HIT_FAULT_HITS (default 2,000, a tenth as many recipients);
`make load-tests` runs the issue's 10,000.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from typing import Any

import boto3
import pytest
from botocore.retries import standard

from chalicelib import tokens
from chalicelib.data.deliveries import DeliveryStore
from chalicelib.data.redirection_logs import FALLBACK_PREFIX, LOG_PREFIX
from chalicelib.settings import get_settings
from infra.local_runtime.firehose_pump import pumps_for
from tests.aws_faults import Fault, injected
from tests.tracking_harness import workflow

HITS = int(os.environ.get("HIT_FAULT_HITS", "2000"))
RECIPIENTS = max(10, HITS // 10)
DELIVERY = "0011223344556677"
TARGET = "https://shop.example.com/autumn"
KINESIS_FAULT = Fault("kinesis.PutRecord", 0.20, "ProvisionedThroughputExceededException", landed=0.1)
FIREHOSE_FAULT = Fault("firehose.PutRecord", 0.05, "ServiceUnavailableException", status=503)


def _delivery() -> None:
    settings = get_settings()
    store = DeliveryStore(settings.deliveries_table, settings.delivery_logs_table)
    store.create(DELIVERY, {"name": "faults", "state": "finished", "created_at": 1,
                            "counts": {"sent": RECIPIENTS}, "tracking": {"enabled": True, "opens": True}},
                 {"subject": "s"}, {"urls": {"1": {"url": "", "type": "open", "placeholders": []},
                                             "4": {"url": TARGET, "type": "click", "placeholders": []}}})
    store.put_logs(DELIVERY, [{"log_id": log_id, "recipient_id": f"r{log_id}", "email": f"r{log_id}@example.net",
                               "status": "sent"} for log_id in range(1, RECIPIENTS + 1)])


def _plan(seed: int) -> list[tuple[str, int]]:
    """(kind, log id) of every hit: one open for half the recipients, clicks for the rest of the HITS."""
    chooser = random.Random(seed)
    opens = [("open", log_id) for log_id in range(1, RECIPIENTS + 1) if chooser.random() < 0.5]
    clicks = [("click", chooser.randint(1, RECIPIENTS)) for _ in range(HITS - len(opens))]
    hits = opens + clicks
    chooser.shuffle(hits)
    return hits


def _objects_by_path() -> Counter[str]:
    settings = get_settings()
    paginator = boto3.client("s3").get_paginator("list_objects_v2")
    found: Counter[str] = Counter()
    for page in paginator.paginate(Bucket=settings.redirection_log_bucket, Prefix=LOG_PREFIX):
        for entry in page.get("Contents", []):
            name = entry["Key"].rsplit("/", 1)[1]
            found["per-hit object" if name.startswith(FALLBACK_PREFIX)
                  else "fallback stream" if name.startswith(settings.redirection_log_fallback_stream or "-")
                  else "hit stream"] += 1
    return found


def test_ten_thousand_hits_with_failing_puts_give_exact_indicators(
        client: Any, api: Any, resources: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore's retry decisions stay real; only its backoff sleep (up to 1 s a throttle) is skipped.
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)
    _delivery()
    ring = get_settings().keyring()
    minted = {(kind, log_id): tokens.mint(tokens.KIND_OPEN if kind == "open" else tokens.KIND_CLICK,
                                          ring.active_key_id, ring.active_secret, DELIVERY, log_id,
                                          1 if kind == "open" else 4)
              for log_id in range(1, RECIPIENTS + 1) for kind in ("open", "click")}
    hits = _plan(seed=13)

    started = time.perf_counter()
    with injected(KINESIS_FAULT, FIREHOSE_FAULT, seed=13) as faults:
        for kind, log_id in hits:
            route = "o" if kind == "open" else "r"
            response = client.get(f"/{route}/{minted[(kind, log_id)]}",
                                  headers={"User-Agent": f"Mozilla/5.0 (X11; Linux x86_64) reader/{log_id}"})
            assert response.status_code == (200 if kind == "open" else 302)
    answered = time.perf_counter() - started

    kinesis_failed, firehose_failed = faults.failed("kinesis.PutRecord"), faults.failed("firehose.PutRecord")
    assert 0.17 * HITS < kinesis_failed < 0.23 * HITS and 0 < firehose_failed < 0.1 * kinesis_failed
    assert faults.calls[("kinesis.PutRecord", "landed")] > 0  # some hits reached two paths (or three copies)

    [pump] = pumps_for(resources)
    while pump.step():
        pass
    objects = _objects_by_path()
    runs = []
    while not runs or runs[-1]["status"] != "idle":
        runs.append(workflow().run())
        assert runs[-1]["status"] in ("completed", "idle"), runs[-1]
        assert len(runs) < 50

    opens = {log_id for kind, log_id in hits if kind == "open"}
    clickers = {log_id for kind, log_id in hits if kind == "click"}
    answer = api.get(f"/api/deliveries/{DELIVERY}/indicators")
    assert answer.status_code == 200, answer.body
    indicators = answer.json_body
    assert {name: indicators[name] for name in ("opens_unique", "opens_total", "clicks_unique", "clicks_total",
                                                "persons_clicking")} == {
        "opens_unique": len(opens | clickers), "opens_total": len(opens), "clicks_unique": len(clickers),
        "clicks_total": HITS - len(opens), "persons_clicking": len(clickers)}

    # moto's Firehose writes each put as its own object; AWS's batches a minute of puts into one.
    assert objects["per-hit object"] == firehose_failed
    assert objects["fallback stream"] == kinesis_failed - firehose_failed
    print(f"\nfault injection: {HITS} hits answered in {answered:.1f} s; Kinesis puts failed {kinesis_failed} "
          f"({faults.calls[('kinesis.PutRecord', 'landed')]} after landing), fallback stream puts failed "
          f"{firehose_failed}; S3 objects in the redirection logs: {dict(objects)} "
          f"({sum(objects.values())} in all); workflow runs {len(runs)}")
