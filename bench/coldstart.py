"""Cold start of the hit path: importing app.py, against importing boto3 and chalice alone.

Each sample is a fresh interpreter that times its own import with
perf_counter around the import statement (interpreter start-up, the same for
both, is left out), laid out as Lambda runs it:

- a task directory like the deployment package Chalice builds, holding
  app.py, chalicelib/ and chalice/ as source WITHOUT bytecode (the package
  has no .pyc and /var/task is read-only, so Lambda compiles them on every
  cold start), with bytecode writing disabled;
- boto3/botocore from site-packages with their bytecode, as the Lambda
  runtime provides them.

`floor` imports boto3 and chalice from the same layout; `import_ms` imports
app. Medians over interleaved runs. `python -X importtime` breaks a single
import down by module when the ratio needs explaining.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = "import time; started = time.perf_counter(); {statement}; print((time.perf_counter() - started) * 1000)"


def _task_directory(into: Path) -> Path:
    import chalice

    task = into / "task"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "chalicelib", task / "chalicelib", ignore=ignore)
    shutil.copytree(Path(chalice.__file__).parent, task / "chalice", ignore=ignore)
    shutil.copy2(ROOT / "app.py", task / "app.py")
    return task


def _sample(task: Path, statement: str) -> float:
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(task), "PYTHONDONTWRITEBYTECODE": "1",
                   "AWS_DEFAULT_REGION": "us-east-1", "HOME": str(task)}
    output = subprocess.run([sys.executable, "-c", PROBE.format(statement=statement)], cwd=task, env=environment,
                            capture_output=True, text=True, check=True).stdout
    return float(output.strip().splitlines()[-1])


def measure(runs: int = 15) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="sendtrail-coldstart-") as scratch:
        task = _task_directory(Path(scratch))
        for statement in ("import app", "import boto3, chalice"):  # warm the OS file cache
            _sample(task, statement)
        app_ms, floor_ms = [], []
        for _ in range(runs):
            app_ms.append(_sample(task, "import app"))
            floor_ms.append(_sample(task, "import boto3, chalice"))
        assert not list(task.rglob("*.pyc")), "bytecode was written: the measurement would not be a cold start"
    import_ms, floor = statistics.median(app_ms), statistics.median(floor_ms)
    return {"import_ms": import_ms, "floor_ms": floor, "ratio": import_ms / floor}
