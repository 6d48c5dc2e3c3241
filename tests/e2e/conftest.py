"""The local stack, started the way `make run` starts it, in a child process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunningStack:
    api_url: str
    api_token: str
    moto_endpoint: str
    output: list[str] = field(default_factory=list)


def _read_until(process: subprocess.Popen, marker: str, timeout: float, lines: list[str]) -> None:
    """Collect the child's output lines (on a thread, for ever) until `marker` appears."""
    found = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if marker in line:
                found.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if found.wait(0.2):
            return
    raise AssertionError("local stack did not start:\n" + "\n".join(lines))


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "SENDTRAIL_"))}
    environment["SENDTRAIL_DEMO"] = "small"  # the four-message demo: the large one's traffic is for people
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "local", "up", "--port", "0"],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
    )
    lines: list[str] = []
    try:
        _read_until(process, "Serving until Ctrl-C.", 120, lines)
        text = "\n".join(lines)
        api_url, moto_endpoint = re.search(r"API on (\S+) \(embedded AWS on (\S+)\)", text).groups()
        token = re.search(r"API token: (\S+)", text).group(1)
        yield RunningStack(api_url, token, moto_endpoint, lines)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
