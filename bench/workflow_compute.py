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

import gzip
import time
from typing import Any

from bench.inputs import KEYRING, standard_input
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


if __name__ == "__main__":
    main()
