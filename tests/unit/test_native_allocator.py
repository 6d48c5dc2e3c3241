"""The native module's allocator keeps the memory a run freed (chalicelib/native.py, ALLOCATOR_PURGE_DELAY).

The workflow runs every few minutes in a warm container. mimalloc's default
gives freed memory back to the OS a second after it is freed, so each run
faulted its tens of megabytes in again. mimalloc reads the setting when the
module loads, so each case loads it in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from chalicelib.native import ALLOCATOR_PURGE_DELAY

VARIABLE = ALLOCATOR_PURGE_DELAY[0]
LOAD_AS_THE_WORKFLOW_DOES = (
    "import json\n"
    "from chalicelib import native\n"
    "backend = native.select('on')\n"
    "print(json.dumps(backend.module.allocator_purge_delay_ms()))\n"
)


def _purge_delay_ms(environment: dict[str, str]) -> int:
    done = subprocess.run([sys.executable, "-c", LOAD_AS_THE_WORKFLOW_DOES], env=environment, capture_output=True,
                          text=True, check=True, timeout=60)
    return int(json.loads(done.stdout.strip().splitlines()[-1]))


def _environment(**changes: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if key != VARIABLE}
    return {**environment, **changes}


def test_loaded_by_the_workflow_the_allocator_never_gives_freed_memory_back() -> None:
    assert _purge_delay_ms(_environment()) == -1


def test_an_explicit_setting_wins() -> None:
    assert _purge_delay_ms(_environment(**{VARIABLE: "250"})) == 250
