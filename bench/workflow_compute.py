"""The tracking workflow's compute step with classification on: hits per second.

    .venv/bin/python -m bench --only compute

What a run does between reading its objects and writing (workflow._compute,
without AWS): the native backend parses the standard object's first `hits`
records (materialised as the workflow materialises them), the user agents
and addresses are classified once each (classify.context_for: the data
files, crawlerdetect, ua-parser), and the native aggregation merges the
hits and gives every hit its verdict and the human counters. Each phase is
timed; the figure is hits over the whole, the best of `repeats` runs.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.inputs import KEYRING, KEYRING_JSON, standard_input
from chalicelib import native
from chalicelib.tracking import classify, core


def measure(hits: int = 200_000, repeats: int = 3) -> dict[str, Any]:
    standard = standard_input(1_000_000)
    with gzip.open(standard.path, "rb") as stream:
        lines = [stream.readline() for _ in range(hits)]
    data = b"".join(lines)
    backend = native.select("auto")  # the settings are not needed: the module if it imports
    best: dict[str, float] = {}
    for _ in range(repeats):
        classify.agent_flags.cache_clear()  # every repeat classifies its agents afresh (addresses always are)
        started = time.perf_counter()
        parsed = list(backend.parse_log(data, KEYRING).hits)
        parsed_at = time.perf_counter()
        context = classify.context_for(parsed, classify.Rules(), {}, {})
        classified_at = time.perf_counter()
        result = backend.aggregate(parsed, {}, core.MAX_HITS_PER_RECIPIENT, context)
        done = time.perf_counter()
        phases = {"total_s": done - started, "parse_s": parsed_at - started,
                  "context_s": classified_at - parsed_at, "aggregate_s": done - classified_at}
        if not best or phases["total_s"] < best["total_s"]:
            best = phases
            machine = sum(classify.is_machine(verdict) for update in result.recipients for verdict in update.verdicts)
            kept = sum(len(update.verdicts) for update in result.recipients)
    return {"hits": len(parsed), "hits_per_s": int(len(parsed) / best["total_s"]),
            "machine_share": machine / max(1, kept), "backend": backend.name,
            **{name: round(value, 3) for name, value in best.items()}}


def main() -> None:
    result = measure()
    print(f"workflow_compute hits={result['hits']} hits_per_s={result['hits_per_s']} backend={result['backend']} "
          f"classification=on machine_share={result['machine_share']:.2f}")
    print(f"workflow_compute_detail parse_s={result['parse_s']} context_s={result['context_s']} "
          f"aggregate_s={result['aggregate_s']} total_s={result['total_s']}", flush=True)


# --- A whole run's compute, native and Python (the `workflow` line) --------------------------------------

class _MemoryLogs:
    """The log objects' bytes as S3 returns them (gzip), from memory: the run's reads without the network."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def read(self, key: str) -> bytes:
        return self.objects[key]


class _NewRecipients:
    """No stored tracking item yet (the run's recipients are new): the read of prior state, without the network."""

    def get_recipients(self, keys: Any) -> dict:
        return {}


class _MemoryRunItems:
    """The append layout's run items in memory, as RunItemStore reads them (what earlier runs' records wrote);
    none at first: the shards are new."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, int | None], list[Any]] = {}

    def read_shard(self, delivery_id: str, shard: int | None, consistent: bool = True) -> list:
        return list(self.items.get((delivery_id, shard), []))

    def store(self, record: dict[str, Any]) -> int:
        """Keep a run record's run items (as TrackingWorkflow._apply puts them, each part an item); how many
        hits they hold."""
        from chalicelib.data.run_items import StoredRunItem, seq_of
        from chalicelib.tracking import run_items

        held = 0
        for item in record["run_items"]:
            body = base64.b64decode(item["body"])
            self.items.setdefault((item["delivery_id"], item["shard"]), []).append(
                StoredRunItem(seq_of(record["run"], item["part"]), body))
            held += len(run_items.decode(item["delivery_id"], body).hits)
        return held


def _objects(hits: int, skip: int = 0) -> dict[str, bytes]:
    """The standard input's `hits` lines after its first `skip`, gzip, in objects of at most Firehose's buffer
    size."""
    from bench.tracking_workflow import MAX_OBJECT_BYTES
    from chalicelib.data.redirection_logs import LOG_PREFIX, hour_partition

    standard = standard_input(1_000_000)
    with gzip.open(standard.path, "rb") as stream:
        for _ in range(skip):
            stream.readline()
        lines = [stream.readline() for _ in range(hits)]
    objects, chunk, size = {}, [], 0
    for line in lines + [b""]:
        if (not line or size + len(line) > MAX_OBJECT_BYTES) and chunk:
            at_ms = json.loads(chunk[0])["ts"]
            objects[f"{LOG_PREFIX}{hour_partition(at_ms)}/bench-{len(objects):04d}"] = gzip.compress(b"".join(chunk))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line)
    return objects


def measure_whole_run(hits: int = 100_000, native_repeats: int = 5, native_warmups: int = 2,
                      layout: str = "items", stored: bool = False, python: bool = True) -> dict[str, Any]:
    """CPU seconds of a run's compute from the objects' bytes to the items it writes, native and Python.

    The workflow's own code (TrackingWorkflow._read and _compute: decompress,
    parse and verify, IPs minimised, agents and addresses classified,
    aggregate, recipient items encoded, counter deltas and log pages built)
    with the reads of stored state answered from memory: recipients new,
    delivery logs already known. CPU time (process_time), so a loaded
    machine slows it less than the wall clock.

    Native: the best of `native_repeats` runs after `native_warmups` untimed
    ones, as in a warm container, which runs the workflow every few minutes:
    a process's first runs fault in the memory its allocator then keeps
    (chalicelib/native.py, ALLOCATOR_PURGE_DELAY). Python: one run (five
    seconds; its allocations are Python objects), unless `python` is False.

    `layout`: the tracking layout (settings.tracking_layout). For `append`,
    the run items it writes (a body per touched shard, one of counters per
    delivery): its shards new, or, with `stored`, holding the run items of
    a run over the standard input's first `hits` lines, every one of which
    this run (over the next `hits` lines) reads and decodes for its
    recipients' stored hits.
    """
    from chalicelib.settings import get_settings
    from chalicelib.tracking.workflow import Limits, TrackingWorkflow, _stat_writes
    from infra.local_runtime import environment

    class NoNetworkWorkflow(TrackingWorkflow):
        def _delivery_log_facts(self, touched: Any, stored: Any) -> dict:
            return {}

    assert layout == "append" or not stored, "stored run items are the append layout's"
    objects = _objects(hits, skip=hits if stored else 0)
    names = ("hit_stream", "deliveries_table", "delivery_logs_table", "addresses_table", "redirection_log_bucket",
             "tracking_table", "tracking_stats_table", "tracking_runs_table", "workflow_table", "send_queue_url")
    saved = dict(os.environ)
    figures: dict[str, Any] = {}
    modes = [("on", native_warmups, native_repeats)] + ([("off", 0, 1)] if python else [])
    try:
        for mode, warmups, repeats in modes:
            environment.apply({**environment.fake_aws(), "SENDTRAIL_SIGNING_KEYS": KEYRING_JSON,
                               "SENDTRAIL_NATIVE": mode, "SENDTRAIL_TRACKING_LAYOUT": layout,
                               **{f"SENDTRAIL_{name.upper()}": f"bench-{name}" for name in names}})
            settings = get_settings()
            limits = Limits(max_objects=len(objects), max_hits=10 * hits, max_seconds=10_000.0, write_concurrency=1)
            runs = _MemoryRunItems()
            stored_hits = runs.store(_run(NoNetworkWorkflow, settings, limits, _objects(hits), runs)) if stored else 0
            best = None
            for repeat in range(warmups + repeats):
                classify.agent_flags.cache_clear()  # every repeat classifies its agents afresh
                started = time.process_time()
                record = _run(NoNetworkWorkflow, settings, limits, objects, runs)
                # The counters grouped into the items the run writes (the run record's audiences come from a
                # read of the deliveries table: none here, so every domain keeps its own item).
                _stat_writes({**record, "audiences": {}})
                seconds = time.process_time() - started
                assert record["statistics"]["lines"] == hits, record["statistics"]
                if repeat >= warmups:
                    best = seconds if best is None else min(best, seconds)
            accepted = record["statistics"]["lines"]
            figures[mode] = {"cpu_s": best, "lines_per_s": int(accepted / best),
                             "items": len(record["recipients"]) + len(record["stats"]) + len(record["log_pages"])
                             + len(record["run_items"]), "stored_hits": stored_hits}
    finally:
        os.environ.clear()
        os.environ.update(saved)
        environment.forget_cached_configuration()
    result = {"hits": hits, "native_hits_per_s": int(hits / figures["on"]["cpu_s"]),
              "native_cpu_s": round(figures["on"]["cpu_s"], 3), "items": figures["on"]["items"],
              "stored_hits": figures["on"]["stored_hits"]}
    if python:
        result.update({"python_hits_per_s": int(hits / figures["off"]["cpu_s"]),
                       "native_vs_python": figures["off"]["cpu_s"] / figures["on"]["cpu_s"],
                       "python_cpu_s": round(figures["off"]["cpu_s"], 3)})
    return result


def _run(workflow: Any, settings: Any, limits: Any, objects: dict[str, bytes], runs: _MemoryRunItems
         ) -> dict[str, Any]:
    """One run's read and compute of `objects` (the run record), its stored state from memory."""
    taken = [(key.split("/", 1)[1].rsplit("/", 1)[0], key) for key in objects]
    run = workflow(settings, limits, logs=_MemoryLogs(objects), tracking=_NewRecipients(), runs=runs)
    parsed, unread = run._read(taken, time.time())  # noqa: SLF001 - the run's steps, timed alone
    assert not unread
    record: dict[str, Any] = run._compute(1, "bench", parsed[0][2].hits[0].ts + 60_000, parsed, "",  # noqa: SLF001
                                          backlog=False)
    return record


def measure_whole_run_alone(hits: int = 100_000, layout: str = "items", stored: bool = False,
                            python: bool = True) -> dict[str, Any]:
    """measure_whole_run in an interpreter of its own, as a Lambda container runs the workflow: the bench's
    process holds what its other benchmarks left (moto's tables, a third of a million objects), and the
    run's Python steps and allocations were a few percent slower beside them."""
    done = subprocess.run([sys.executable, "-m", "bench.workflow_compute", "--whole-run", str(hits), layout,
                           "stored" if stored else "new", "python" if python else "native"],
                          capture_output=True, text=True, check=True)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["--whole-run"]:
        # --whole-run HITS [LAYOUT [new|stored [python|native]]]: measure_whole_run's figures, as JSON.
        given = sys.argv[3:6]
        layout, shards, backends = given + ["items", "new", "python"][len(given):]
        hits = sys.argv[2]
        print(json.dumps(measure_whole_run(int(hits), layout=layout, stored=shards == "stored",
                                           python=backends == "python")), flush=True)
    else:
        main()
