"""The app's `@app.schedule` functions, run by the local stack as EventBridge would run them.

Every scheduled function of the Chalice app gets a ScheduledTrigger worker.
In AWS the tracking workflow runs every minute; locally it runs every
SENDTRAIL_WORKFLOW_INTERVAL_SECONDS (default 5), so a click shows in the
indicators within seconds. Other schedules keep their own rate.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from infra.local_runtime.triggers import ScheduledTrigger

if TYPE_CHECKING:
    from infra.local_runtime.stack import LocalStack, Worker

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> float:
    match = _RATE.match(expression)
    if not match:
        raise NotImplementedError(f"the local stack runs rate(...) schedules only, not {expression}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


def local_intervals() -> dict[str, float]:
    from chalicelib.settings import get_settings

    return {"tracking_workflow": get_settings().workflow_interval_seconds}


def workers(stack: "LocalStack") -> "list[Worker]":
    from chalice.app import ScheduledEventConfig

    import app as app_module
    from infra.local_runtime.stack import Worker

    overrides = local_intervals()
    found = []
    for source in app_module.app.event_sources:
        if not isinstance(source, ScheduledEventConfig):
            continue
        expression = source.schedule_expression
        text = expression if isinstance(expression, str) else expression.to_string()
        interval = overrides.get(source.name) or rate_seconds(text)
        trigger = ScheduledTrigger(source.name, getattr(app_module, source.name))
        found.append(Worker(f"schedule:{source.name}", trigger.step, interval))
    return found
