"""Driving the MTA in tests: the same local machinery as the local stack, stepped until quiet.

`MtaRunner.drain()` runs what AWS would run on its own: the send worker on
the send work queue, SES's event publishing (the local emulation), and the
SES events consumer on its queue, round after round until no queue has
anything visible. Everything goes through the queues and triggers the
template defines (infra/local_runtime/sqs_workers.py), so the tests exercise
the wiring, not a shortcut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from botocore import handlers as botocore_handlers
from botocore.awsrequest import AWSResponse

from chalicelib.data import aws
from chalicelib.mta.worker import Runtime, SendWorker
from infra.local_runtime.ses_events import SesEventPublisher
from infra.local_runtime.sqs_workers import triggers_for
from infra.local_runtime.triggers import SqsTrigger


class MtaRunner:
    def __init__(self, resources: Any) -> None:
        self.publisher = SesEventPublisher()
        self.triggers = {trigger.name: trigger for trigger in triggers_for(resources)}

    def send(self) -> int:
        """Run the send worker until its queue is empty; returns how many chunk messages it took."""
        return self.triggers["send_worker"].drain()

    def events(self) -> int:
        """Publish the SES events of what was sent, and run the consumer until its queue is empty."""
        published = self.publisher.step()
        return published + self.triggers["ses_events"].drain()

    def drain(self, max_rounds: int = 50) -> None:
        for _ in range(max_rounds):
            if not (self.send() + self.events()):
                return
        raise AssertionError(f"the MTA's queues were not quiet after {max_rounds} rounds")


# --- SES errors injected at the botocore level ------------------------------------

Injected = Union[None, str, Exception]


class SesFaults:
    """Answers the next SES v2 SendEmail calls with errors, one entry per call, before any request is made.

    An entry is None (the call goes to SES, i.e. moto), an error code (SES's
    error answer: 429 for throttling codes, 500 for server errors, 400 otherwise) or an exception
    to raise (e.g. botocore's ReadTimeoutError). `forever` repeats the last
    entry. A botocore `before-call` hook, the way moto and the outbox tap
    hook in: sendtrail's code runs unchanged.
    """

    THROTTLING = {"TooManyRequestsException", "Throttling", "ThrottlingException", "LimitExceededException"}
    SERVER = {"InternalFailure", "ServiceUnavailable"}

    def __init__(self, plan: list[Injected], forever: bool = False) -> None:
        self.plan = list(plan)
        self.forever = forever
        self.calls = 0
        self.injected = 0

    def _before_call(self, **_: Any) -> Any:
        index = self.calls
        self.calls += 1
        if index >= len(self.plan) and not (self.forever and self.plan):
            return None
        entry = self.plan[min(index, len(self.plan) - 1)]
        if entry is None:
            return None
        self.injected += 1
        if isinstance(entry, Exception):
            raise entry
        status = 429 if entry in self.THROTTLING else 500 if entry in self.SERVER else 400
        return (AWSResponse("https://email.us-east-1.amazonaws.com/v2/email/outbound-emails", status, {}, None),
                {"Error": {"Code": entry, "Message": f"injected {entry}"},
                 "ResponseMetadata": {"HTTPStatusCode": status}})

    def __enter__(self) -> "SesFaults":
        self._hook = ("before-call.sesv2.SendEmail", self._before_call)
        botocore_handlers.BUILTIN_HANDLERS.append(self._hook)
        aws.reset_clients()
        return self

    def __exit__(self, *exc: Any) -> None:
        botocore_handlers.BUILTIN_HANDLERS.remove(self._hook)
        aws.reset_clients()


@dataclass
class FakeRuntime(Runtime):
    """A send worker's clocks on a fake timeline: sleeping advances them at once, and is recorded."""

    now: float = 1_796_000_000.0
    sleeps: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.wall = lambda: self.now
        self.monotonic = lambda: self.now
        self.sleep = self._sleep
        self.random = lambda: 1.0

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def worker_trigger(mta: MtaRunner, worker: SendWorker) -> SqsTrigger:
    """The send work queue's trigger, calling `worker` (e.g. on a FakeRuntime) instead of the Lambda's."""
    trigger = mta.triggers["send_worker"]
    return SqsTrigger(trigger.name, trigger.queue_url, worker.handle, trigger.batch_size, trigger.timeout_seconds)
