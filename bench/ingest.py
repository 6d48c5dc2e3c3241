"""Ingestion throughput and peak memory: the Python reference, the native path, the floor.

Every phase gets the same log object (its gzip bytes, held by the parent as
the workflow holds what S3 returned) and runs in a child forked for it, so
each starts from the same state and its peak memory is its own: the child
resets the kernel's high-water mark (/proc/self/clear_refs, "5"), notes its
resident set, runs, and reports VmHWM minus that start. That counts every
allocation, Python's and Rust's alike, which tracemalloc (Python's
allocator only) would not.

- floor: stream-decompress the object (zlib, 1 MiB of input at a time) and
  discard the output: no parser can beat it.
- python / native: the tracking workflow's parse-and-aggregate,
  `process_log` (gunzip, split, verify every record's token, drop repeated
  hit ids, aggregate with the 1-minute rule), by the Python reference
  (chalicelib.tracking.core) and by the native backend (chalicelib.native
  over sendtrail_native), each checked to find the input's hits.
- native_materialized (a detail, not a target): the native path, then every
  hit and recipient update read as the Python objects the workflow stores
  (the native results make them on access), to show what those cost.

The standard object decodes to more than MAX_OBJECT_BYTES (its records are
what the hit path writes, about 345 bytes each; Firehose never writes an
object that large, so real objects stay far below the limit): both
implementations run with the limit raised to cover it, which changes nothing
else they do.

Throughput is distinct hits per second of wall time, each phase's median of
`repeats` runs (the Python reference, about 20 s a run, runs once).
"""

from __future__ import annotations

import json
import os
import statistics
import time
import zlib
from typing import Any, Callable

from bench.inputs import KEYRING, Input
from chalicelib import native
from chalicelib.tracking import core

CHUNK = 1 << 20


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def in_child(phase: Callable[[bytes], dict[str, Any]], data: bytes) -> dict[str, Any]:
    """Run `phase(data)` in a forked child; its result plus seconds and peak_mb."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        status = 1
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
                clear.write("5")  # reset VmHWM to the current resident set
            start_kb = _status_kb("VmRSS")
            started = time.perf_counter()
            result = phase(data)
            result["seconds"] = time.perf_counter() - started
            result["peak_mb"] = (_status_kb("VmHWM") - start_kb) / 1024
            os.write(write_end, json.dumps(result).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError(f"benchmark phase {phase.__name__} failed in its child (status {status})")
    return json.loads(b"".join(chunks))


def floor(data: bytes) -> dict[str, Any]:
    """Decompress every gzip member of the object and nothing else."""
    produced = 0
    view = memoryview(data)
    position = 0
    while position < len(data):
        decompressor = zlib.decompressobj(wbits=31)
        while position < len(data) and not decompressor.eof:
            chunk = view[position:position + CHUNK]
            produced += len(decompressor.decompress(chunk))
            position += len(chunk) - len(decompressor.unused_data)
        produced += len(decompressor.flush())
    return {"decompressed_bytes": produced}


def _summary(parsed: core.ParsedLog, aggregates: core.Aggregates) -> dict[str, Any]:
    return {"hits": len(parsed.hits), "duplicates": parsed.duplicates, "rejected": sum(parsed.rejected.values()),
            "recipients": len(aggregates.recipients), "deliveries": len(aggregates.deliveries)}


def python(data: bytes) -> dict[str, Any]:
    """The Python reference's process_log."""
    return _summary(*core.process_log(data, KEYRING))


def native_path(data: bytes) -> dict[str, Any]:
    """The native backend's process_log (what the workflow gets with the layer)."""
    return _summary(*native.select("on").process_log(data, KEYRING))


def native_materialized(data: bytes) -> dict[str, Any]:
    """The native process_log, then every hit and recipient update made as a Python object."""
    parsed, aggregates = native.select("on").process_log(data, KEYRING)
    hits = list(parsed.hits)
    recipients = list(aggregates.recipients)
    return {**_summary(parsed, aggregates), "objects": len(hits) + sum(len(update.hits) for update in recipients)}


def _runs(phase: Callable[[bytes], dict[str, Any]], data: bytes, repeats: int, standard: Input) -> dict[str, Any]:
    runs = [in_child(phase, data) for _ in range(repeats)]
    for run in runs:
        if run.get("hits", standard.hits) != standard.hits or run.get("rejected", 0):
            raise RuntimeError(f"{phase.__name__} found {run} in the standard input ({standard.hits} hits)")
    return {"seconds": statistics.median(run["seconds"] for run in runs),
            "peak_mb": statistics.median(run["peak_mb"] for run in runs), "last": runs[-1]}


def measure(standard: Input, repeats: int = 3, python_repeats: int = 1) -> dict[str, Any]:
    saved = core.MAX_OBJECT_BYTES
    core.MAX_OBJECT_BYTES = max(saved, standard.decompressed_bytes)  # read by both, at call time
    try:
        return _measure(standard, repeats, python_repeats)
    finally:
        core.MAX_OBJECT_BYTES = saved


def _measure(standard: Input, repeats: int, python_repeats: int) -> dict[str, Any]:
    data = standard.path.read_bytes()
    floor_runs = [in_child(floor, data) for _ in range(repeats)]
    assert all(run["decompressed_bytes"] == standard.decompressed_bytes for run in floor_runs)
    floor_seconds = statistics.median(run["seconds"] for run in floor_runs)
    native_run = _runs(native_path, data, repeats, standard)
    materialized = _runs(native_materialized, data, 1, standard)
    python_run = _runs(python, data, python_repeats, standard)
    summary = ("hits", "duplicates", "rejected", "recipients", "deliveries")
    if [python_run["last"][name] for name in summary] != [native_run["last"][name] for name in summary]:
        raise RuntimeError(f"the native path disagrees with the reference: "
                           f"{native_run['last']} != {python_run['last']}")
    hits = standard.hits
    native_rate = hits / native_run["seconds"]
    floor_rate = hits / floor_seconds
    return {
        "hits": hits,
        "python_hits_per_s": round(hits / python_run["seconds"]),
        "native_hits_per_s": round(native_rate),
        "floor_hits_per_s": round(floor_rate),
        "native_vs_python": python_run["seconds"] / native_run["seconds"],
        "native_vs_floor": round(native_rate / floor_rate, 2),
        "python_peak_mb": round(python_run["peak_mb"]),
        "native_peak_mb": round(native_run["peak_mb"]),
        "floor_peak_mb": round(statistics.median(run["peak_mb"] for run in floor_runs), 1),
        "native_peak_vs_object": round(native_run["peak_mb"] * 2**20 / standard.decompressed_bytes, 2),
        "recipients": native_run["last"]["recipients"],
        "materialized_s": round(materialized["seconds"], 2),
        "materialized_peak_mb": round(materialized["peak_mb"]),
        "materialized_objects": materialized["last"]["objects"],
        "native_s": round(native_run["seconds"], 3),
        "python_s": round(python_run["seconds"], 2),
        "floor_s": round(floor_seconds, 3),
    }
