"""AWS faults injected at the botocore level: chosen calls fail as AWS would fail them, retries and all.

A `before-send` handler for one operation (say kinesis.PutRecord) answers
some requests with AWS's own error response (a throttle, a 503) instead of
letting moto see them, so botocore parses the error, its retry mode decides
whether to retry, and the code under test sees exactly what it would see
in AWS. The decision is made per request body: a retry of the same call is
the same body, so a call chosen to fail fails on every attempt ("fails after
botocore's retries"). A `landed` share of calls is let through to moto and
then answered with a 500: the write happened, the caller was told it did
not (a lost response), which is how duplicates arise.

The handlers are added to every client created inside the block (botocore's
BUILTIN_HANDLERS, as moto itself does), and sendtrail's shared clients are
recreated so they get them. Handlers on `before-send.<service>.<operation>`
run before moto's own on `before-send` (botocore calls the more specific
event's handlers first, and keeps the first answer, but calls them all:
a failed call's URL is changed so that moto leaves it alone).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from botocore.awsrequest import AWSResponse

from chalicelib.data import aws
from infra.local_runtime import botocore_hooks

# botocore emits before-send to every handler and keeps the first answer: a handler on the operation's
# own event answers first, and moto's (on before-send) still runs, for a URL it recognises.
UNHANDLED_URL = "https://fault-injected.invalid/"


@dataclass(frozen=True)
class Fault:
    """Fail `share` of the calls to `operation` ("kinesis.PutRecord") with this error; `landed` of them after moto
    did the write."""

    operation: str
    share: float
    code: str
    status: int = 400
    landed: float = 0.0
    attempts: int | None = None  # fail only this many attempts of a chosen call (None: all of them)
    fields: dict[str, Any] = field(default_factory=dict)  # more of the error's body (e.g. CancellationReasons)


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _call_identity(body: bytes) -> bytes:
    """The request body less botocore's per-call idempotency token, so that a call made again is the same call."""
    try:
        document = json.loads(body)
    except ValueError:
        return body
    if isinstance(document, dict) and "ClientRequestToken" in document:
        del document["ClientRequestToken"]
        return json.dumps(document, sort_keys=True).encode()
    return body


@dataclass
class FaultInjector:
    faults: list[Fault]
    seed: int = 0
    calls: Counter = field(default_factory=Counter)  # (operation, outcome) -> calls (attempts counted once)
    attempts: Counter = field(default_factory=Counter)  # operation -> requests sent, retries included
    _decisions: dict[tuple[str, bytes], str] = field(default_factory=dict)
    _failed_attempts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def _decide(self, fault: Fault, body: bytes) -> str:
        key = (fault.operation, body)
        if key not in self._decisions:
            draw = self._random.random()
            outcome = "ok" if draw >= fault.share else "landed" if draw < fault.share * fault.landed else "failed"
            self._decisions[key] = outcome
            self.calls[(fault.operation, outcome)] += 1
        return self._decisions[key]

    def handler(self, fault: Fault) -> Any:
        def before_send(request: Any, **kwargs: Any) -> AWSResponse | None:
            self.attempts[fault.operation] += 1
            body = _call_identity(request.body if isinstance(request.body, bytes) else (request.body or "").encode())
            outcome = self._decide(fault, body)
            if outcome != "ok" and fault.attempts is not None:
                self._failed_attempts[(fault.operation, body)] += 1
                if self._failed_attempts[(fault.operation, body)] > fault.attempts:
                    outcome = "ok"  # the call goes through on a later attempt
            if outcome == "ok":
                return None  # moto answers
            if outcome == "landed":
                status, code = 500, "InternalFailure"  # moto's own handler still runs (after this one): it writes
            else:
                status, code = fault.status, fault.code
                request.url = UNHANDLED_URL  # botocore calls every before-send handler: moto must not write this
            error = json.dumps({"__type": code, "message": f"injected fault: {code}", **fault.fields}).encode()
            return AWSResponse(request.url, status, {"x-amzn-ErrorType": code,
                                                     "Content-Type": "application/x-amz-json-1.1"}, _Body(error))

        return before_send

    def failed(self, operation: str) -> int:
        """Calls to `operation` chosen to fail (for their caller, after every retry, unless `attempts` is set)."""
        return self.calls[(operation, "failed")] + self.calls[(operation, "landed")]


@contextmanager
def injected(*faults: Fault, seed: int = 0) -> Iterator[FaultInjector]:
    injector = FaultInjector(list(faults), seed)
    with hooked([(f"before-send.{fault.operation}", injector.handler(fault)) for fault in faults]):
        yield injector


@contextmanager
def hooked(hooks: list[botocore_hooks.Hook]) -> Iterator[None]:
    """`hooks` on every client created in the block, sendtrail's shared clients included."""
    botocore_hooks.install(hooks)
    aws.reset_clients()
    try:
        yield
    finally:
        botocore_hooks.uninstall(hooks)
        aws.reset_clients()
