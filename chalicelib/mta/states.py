"""A delivery's (job's) state, and which moves between states are possible.

    draft ──send──> start_pending ──first chunk taken──> in_progress ──nothing left──> finished
                        │   ▲                               │
                      pause └──────────resume──────┐       pause
                        ▼                           │        ▼
                      paused ─────────────────────┘      paused
    start_pending, in_progress, paused ──stop──> stopped
    start_pending, in_progress ──the affinity is gone──> failed

`start_pending` means: accepted, waiting for a send worker (Campaign's
"start pending"; a delivery that stays there means the MTA is not running or
its affinity is not configured). A resumed delivery goes back to
start_pending: its chunks are queued again and the first worker to take one
moves it on. finished, stopped and failed are final.
"""

from __future__ import annotations

DRAFT = "draft"
START_PENDING = "start_pending"
IN_PROGRESS = "in_progress"
PAUSED = "paused"
STOPPED = "stopped"
FINISHED = "finished"
FAILED = "failed"

STATES = (DRAFT, START_PENDING, IN_PROGRESS, PAUSED, STOPPED, FINISHED, FAILED)
FINAL = frozenset({STOPPED, FINISHED, FAILED})
SENDING = frozenset({START_PENDING, IN_PROGRESS})

# action -> (the states it starts from, the state it leads to)
ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "send": (frozenset({DRAFT}), START_PENDING),
    "pause": (SENDING, PAUSED),
    "resume": (frozenset({PAUSED}), START_PENDING),
    "stop": (frozenset({START_PENDING, IN_PROGRESS, PAUSED}), STOPPED),
}


def refusal(action: str, delivery_id: str, state: str) -> str:
    """Why `action` is impossible from `state`, for a 409."""
    sources = sorted(ACTIONS[action][0])
    allowed = " or ".join(sources)
    if state in FINAL:
        return f"delivery {delivery_id} is {state}, which is final: it cannot be {_past(action)}"
    return f"delivery {delivery_id} is {state}: only a delivery in {allowed} can be {_past(action)}"


def _past(action: str) -> str:
    return {"send": "sent", "pause": "paused", "resume": "resumed", "stop": "stopped"}[action]
