"""`make bench`: every benchmark, in one process, one summary line each.

    ingest hits=... python_hits_per_s=... native_hits_per_s=... floor_hits_per_s=... native_vs_python=...x
           native_vs_floor=... python_peak_mb=... native_peak_mb=...
    hitpath overhead=...x overhead_put=...x
    coldstart import_ms=... floor_ms=... ratio=...x
    coldstart_detail first_hit_ms=... first_hit_ratio=...x   (import app + serving the first click)
                     first_hit_put_ms=... put_floor_ms=... first_hit_vs_put_floor=...x

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

from bench import coldstart, hitpath, ingest, inputs, tracking_core, tracking_workflow, workflow_compute


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="sendtrail benchmarks")
    parser.add_argument("--hits", type=int, default=1_000_000)
    everything = ["ingest", "hitpath", "coldstart", "compute", "core", "workflow"]
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
    if "workflow" in only:
        tracking_workflow.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
