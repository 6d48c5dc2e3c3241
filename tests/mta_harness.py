"""Driving the MTA in tests: the same local machinery as the local stack, stepped until quiet.

`MtaRunner.drain()` runs what AWS would run on its own: the send worker on
the send work queue, SES's event publishing (the local emulation), and the
SES events consumer on its queue, round after round until no queue has
anything visible. Everything goes through the queues and triggers the
template defines (infra/local_runtime/sqs_workers.py), so the tests exercise
the wiring, not a shortcut.
"""

from __future__ import annotations

from typing import Any

from infra.local_runtime.ses_events import SesEventPublisher
from infra.local_runtime.sqs_workers import triggers_for


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
