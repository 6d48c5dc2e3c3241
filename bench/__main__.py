"""`make bench`: every benchmark, in one process, one summary line each.

    ingest hits=... python_hits_per_s=... native_hits_per_s=... floor_hits_per_s=... native_vs_python=...x
           native_vs_floor=... python_peak_mb=... native_peak_mb=...
    hitpath overhead=...x overhead_put=...x
    coldstart import_ms=... floor_ms=... ratio=...x
    coldstart_detail first_hit_ms=... first_hit_ratio=...x   (import app + serving the first click)
                     first_hit_put_ms=... put_floor_ms=... first_hit_vs_put_floor=...x
    workflow native_hits_per_s=... python_hits_per_s=... native_vs_python=...x write_units_per_1000_hits=...
             write_units_per_1000_hits_10_runs=...   (bench/workflow_compute.py, bench/tracking_workflow.py)
    workflow_<the other layout> write_units_per_1000_hits=... ...   (the same input in the layout that is not
             the default: SENDTRAIL_TRACKING_LAYOUT, settings.tracking_layout)
    workflow_compute_<the other layout> native_hits_per_s=... python_hits_per_s=... native_vs_python=...x
             (that layout's whole-run compute, as the `workflow` line's; bench/workflow_compute.py)
    workflow_compute_append_stored native_hits_per_s=... stored_hits=...   (the append layout's whole-run
             compute over shards holding a run's items: the next 100,000 records, every touched shard read)
    cost usd_per_million_hits=... api=... lambda_requests=... ... (the breakdown; bench/cost.py)
    cost_<the other layout> usd_per_million_hits=... ...   (the same, with that layout's workflow)

then the tracking workflow's own figures: its compute step's hits/s with
classification on (native parse, agents and addresses classified, native
aggregation with every hit's verdict), the Python core's lines/s (plain and
gzip) and the DynamoDB write requests of a workflow run per 1,000 hits.

Each required line is printed exactly in that form; `input`, `ingest_detail`
and `hitpath_detail` lines add what helps read them. Targets (figures, never
test assertions): native >= 1,000,000 hits/s on one core, native_vs_python
>= 5, native_vs_floor >= 0.5, native peak <= 2x the decompressed object,
hitpath overhead <= 1.5, overhead_put <= 1.2 (the handler with its real
Kinesis client, network stubbed, over a trivial route making the same put
with a plain boto3 client), coldstart ratio <= 1.25 and first_hit_vs_put_floor
<= 1.25 (the first click after a cold start over importing boto3 and Chalice
and making the same put).
"""

from __future__ import annotations

import argparse
import os
import sys

from bench import coldstart, cost, hitpath, ingest, inputs, tracking_core, tracking_workflow, workflow_compute
from chalicelib.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="sendtrail benchmarks")
    parser.add_argument("--hits", type=int, default=1_000_000)
    everything = ["ingest", "hitpath", "coldstart", "compute", "core", "workflow", "cost"]
    parser.add_argument("--only", choices=everything, action="append")
    arguments = parser.parse_args(argv)
    only = set(arguments.only or everything)
    # The functions' own JSON log lines (e.g. every workflow run's INFO line) are not figures: warnings
    # and errors still show. Set before the first invocation configures the logger (chalicelib/observability.py).
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

    if "ingest" in only:
        standard = inputs.standard_input(arguments.hits)
        print(f"input hits={standard.hits} lines={standard.lines} duplicates={standard.lines - standard.hits} "
              f"mean_line_bytes={standard.mean_line_bytes:.0f} "
              f"compressed_mb={standard.compressed_bytes / 2**20:.1f} "
              f"decompressed_mb={standard.decompressed_bytes / 2**20:.1f} path={standard.path}", flush=True)
        result = ingest.measure(standard)
        print(f"ingest hits={result['hits']} python_hits_per_s={result['python_hits_per_s']} "
              f"native_hits_per_s={result['native_hits_per_s']} floor_hits_per_s={result['floor_hits_per_s']} "
              f"native_vs_python={result['native_vs_python']:.2f}x native_vs_floor={result['native_vs_floor']} "
              f"python_peak_mb={result['python_peak_mb']} native_peak_mb={result['native_peak_mb']}")
        print(f"ingest_detail native_s={result['native_s']} python_s={result['python_s']} "
              f"floor_s={result['floor_s']} floor_peak_mb={result['floor_peak_mb']} "
              f"native_peak_vs_decompressed={result['native_peak_vs_object']}x recipients={result['recipients']} "
              f"native_materialized_s={result['materialized_s']} "
              f"native_materialized_peak_mb={result['materialized_peak_mb']} "
              f"materialized_objects={result['materialized_objects']}", flush=True)
    if "hitpath" in only:
        result = hitpath.measure()
        print(f"hitpath overhead={result['overhead']:.2f}x overhead_put={result['overhead_put']:.2f}x")
        print(f"hitpath_detail r_us={result['r_us']:.1f} o_us={result['o_us']:.1f} "
              f"trivial_us={result['trivial_us']:.1f} r_overhead={result['r_overhead']:.2f}x "
              f"o_overhead={result['o_overhead']:.2f}x r_botocore_us={result['r_botocore_us']:.1f} "
              f"o_botocore_us={result['o_botocore_us']:.1f} "
              f"overhead_botocore={result['overhead_botocore']:.2f}x r_put_us={result['r_put_us']:.1f} "
              f"o_put_us={result['o_put_us']:.1f} trivial_put_us={result['trivial_put_us']:.1f}", flush=True)
    if "coldstart" in only:
        result = coldstart.measure()
        print(f"coldstart import_ms={result['import_ms']:.1f} floor_ms={result['floor_ms']:.1f} "
              f"ratio={result['ratio']:.2f}x", flush=True)
        print(f"coldstart_detail first_hit_ms={result['first_hit_ms']:.1f} "
              f"first_hit_ratio={result['first_hit_ms'] / result['floor_ms']:.2f}x "
              f"first_hit_put_ms={result['first_hit_put_ms']:.1f} put_floor_ms={result['put_floor_ms']:.1f} "
              f"first_hit_vs_put_floor={result['first_hit_put_ms'] / result['put_floor_ms']:.2f}x", flush=True)
    if "compute" in only:
        workflow_compute.main()
    if "core" in only:
        tracking_core.main()
    units = other = None
    if "workflow" in only:
        tracking_workflow.main()
        compute = workflow_compute.measure_whole_run_alone(layout=DEFAULT_LAYOUT)
        units = tracking_workflow.measure_units((1, 10), layout=DEFAULT_LAYOUT)
        print(f"workflow native_hits_per_s={compute['native_hits_per_s']} "
              f"python_hits_per_s={compute['python_hits_per_s']} native_vs_python={compute['native_vs_python']:.2f}x "
              f"write_units_per_1000_hits={_per_1000(units[1], 'write_units'):.0f} "
              f"write_units_per_1000_hits_10_runs={_per_1000(units[10], 'write_units'):.0f} "
              f"read_units_per_1000_hits={_per_1000(units[1], 'read_units'):.0f} "
              f"read_units_per_1000_hits_10_runs={_per_1000(units[10], 'read_units'):.0f} "
              f"layout={DEFAULT_LAYOUT}", flush=True)
        print(f"workflow_detail hits={compute['hits']} native_cpu_s={compute['native_cpu_s']} "
              f"python_cpu_s={compute['python_cpu_s']} units_hits={units[1]['hits']} "
              f"hits_per_recipient={units[1]['hits_per_recipient']:.1f} "
              f"write_units_by_table={_by_table(units[1])} write_units_by_table_10_runs={_by_table(units[10])} "
              f"write_units_by_kind={_by_kind(units[1])} write_units_by_kind_10_runs={_by_kind(units[10])} "
              f"load={os.getloadavg()[0]:.1f} "
              f"recipient_writes_per_1000_hits={_per_1000(units[1], 'recipient_writes'):.0f} "
              f"recipient_writes_per_1000_hits_10_runs={_per_1000(units[10], 'recipient_writes'):.0f}", flush=True)
        # The other layout's whole-run compute on the same input, and the append layout's over shards holding
        # the run items of a run before it (every touched shard read and decoded): native only, five seconds less.
        other_compute = workflow_compute.measure_whole_run_alone(layout=OTHER_LAYOUT)
        over_stored = workflow_compute.measure_whole_run_alone(layout="append", stored=True, python=False)
        print(f"workflow_compute_{OTHER_LAYOUT} native_hits_per_s={other_compute['native_hits_per_s']} "
              f"python_hits_per_s={other_compute['python_hits_per_s']} "
              f"native_vs_python={other_compute['native_vs_python']:.2f}x native_cpu_s={other_compute['native_cpu_s']} "
              f"python_cpu_s={other_compute['python_cpu_s']} items={other_compute['items']}", flush=True)
        print(f"workflow_compute_append_stored native_hits_per_s={over_stored['native_hits_per_s']} "
              f"native_cpu_s={over_stored['native_cpu_s']} hits={over_stored['hits']} "
              f"stored_hits={over_stored['stored_hits']} load={os.getloadavg()[0]:.1f}", flush=True)
        # The other tracking layout's units on the same input (settings.tracking_layout), for comparison.
        other = tracking_workflow.measure_units((1, 10), layout=OTHER_LAYOUT)
        print(f"workflow_{OTHER_LAYOUT} write_units_per_1000_hits={_per_1000(other[1], 'write_units'):.0f} "
              f"write_units_per_1000_hits_10_runs={_per_1000(other[10], 'write_units'):.0f} "
              f"read_units_per_1000_hits={_per_1000(other[1], 'read_units'):.0f} "
              f"read_units_per_1000_hits_10_runs={_per_1000(other[10], 'read_units'):.0f} "
              f"write_units_by_kind_10_runs={_by_kind(other[10])}", flush=True)
    if "cost" in only:
        result = cost.measure(units[10] if units else None, {OTHER_LAYOUT: other[10]} if units and other else None)
        for line in cost.lines(result):
            print(line, flush=True)
        for name, alternative in result["alternatives"].items():
            print(f"cost_{name} " + cost.lines(alternative)[0].split(" ", 1)[1], flush=True)
    return 0


DEFAULT_LAYOUT = Settings.model_fields["tracking_layout"].default
OTHER_LAYOUT = "items" if DEFAULT_LAYOUT == "append" else "append"


def _per_1000(run: dict, name: str) -> float:
    """Units per 1,000 hits of a metered run (its hits accepted), as the workflow was billed them."""
    return run[name] * 1000 / run["hits"]


def _by_table(run: dict) -> str:
    return ",".join(f"{table.rsplit('-', 1)[-1]}:{units}"
                    for table, units in sorted(run["write_units_by_table"].items()))


def _by_kind(run: dict) -> str:
    """Write units by table and item kind (bench/aws_meter.py item_kind; an index's writes apart), largest first."""
    named = {f"{table.rsplit('-', 1)[-1]}/{kind.replace('index ', 'gsi.')}": units
             for (table, kind), units in ((entry.split(":", 1), units)
                                          for entry, units in run["write_units_by_kind"].items())}
    return ",".join(f"{name}:{units}" for name, units in sorted(named.items(), key=lambda entry: (-entry[1], entry[0])))


if __name__ == "__main__":
    sys.exit(main())
