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
- python / native: the tracking workflow's parse-and-aggregate, by the
  Python reference and by sendtrail_native. Pending until that function
  exists (issue 3; the native twin is phase B of issue 5).

Throughput is distinct hits per second of wall time, each phase's median of
`repeats` runs.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import zlib
from typing import Any, Callable

from bench.inputs import Input

PENDING = "pending"
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


def measure(standard: Input, repeats: int = 3) -> dict[str, Any]:
    data = standard.path.read_bytes()
    floor_runs = [in_child(floor, data) for _ in range(repeats)]
    assert all(run["decompressed_bytes"] == standard.decompressed_bytes for run in floor_runs)
    floor_seconds = statistics.median(run["seconds"] for run in floor_runs)
    return {
        "hits": standard.hits,
        "python_hits_per_s": PENDING,
        "native_hits_per_s": PENDING,
        "floor_hits_per_s": round(standard.hits / floor_seconds),
        "native_vs_python": PENDING,
        "native_vs_floor": PENDING,
        "python_peak_mb": PENDING,
        "native_peak_mb": PENDING,
        "floor_peak_mb": round(statistics.median(run["peak_mb"] for run in floor_runs), 1),
    }
