"""Every invocation's logs and metrics: Powertools JSON logs with a correlation id, EMF flushed at the end.

One Chalice middleware (registered for every event type by app.py) wraps
each invocation of each function (the REST API with the hit endpoints, the
scheduled tracking workflow, queue consumers):

- logs: the "sendtrail" logger, parent of every `logging.getLogger("sendtrail...")`
  the code uses, writes Powertools' structured JSON (level, location,
  message, timestamp, service, cold_start, function_name,
  function_request_id, correlation_id and the `extra` keys of each call).
  The correlation id is API Gateway's request id for HTTP (the hit records
  carry the same id, and hit path lines add the hit id), the Lambda
  request id otherwise. Nothing logs tokens, keys or request bodies: lines
  carry reasons and ids only (tests/integration/test_observability.py holds
  every line of a session against the secrets it used);
- metrics: a response with a 5xx status counts as HttpServerErrors, and the
  invocation's buffered metrics are flushed (chalicelib/metrics.py) even
  when the handler raises.

Powertools is imported on the first invocation, not at import: the hit
path's cold start stays the cost of importing boto3 and Chalice. The Logger
(with what Powertools' package __init__ imports) is all the first click
imports of it (the key ring's SSM read uses the plain boto3 client), from
the bytecode the package ships: about 10 ms of CPU (`make bench`,
coldstart_detail first_hit_ms over import_ms).
Chalice's own plain-text handler on the same logger is replaced.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import Any, Callable

from chalice.app import Request

from chalicelib import metrics

SERVICE = "sendtrail"  # the logger every module's logger descends from, and the `service` log key

_cold_start = True
_current = threading.local()  # the invocation this thread serves: (event, cold start)


class _InvocationKeys(logging.Filter):
    """Puts the current invocation's keys on each line, when a line is written.

    The hit path logs nothing on most requests: working the keys out only
    for the lines that are written keeps them off the per-request cost.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        invocation = getattr(_current, "invocation", None)
        if invocation is not None:
            for key, value in invocation_keys(*invocation).items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return True


@lru_cache(maxsize=1)
def logger() -> Any:
    """The Powertools Logger behind the "sendtrail" logger tree (configured once per container)."""
    from aws_lambda_powertools import Logger

    base = logging.getLogger(SERVICE)
    for handler in list(base.handlers):  # Chalice's text handler (Chalice(configure_logs=True))
        if handler is not getattr(base, "powertools_handler", None):
            base.removeHandler(handler)
    configured = Logger(service=SERVICE, utc=True)
    configured.registered_handler.addFilter(_InvocationKeys())
    base.propagate = False  # Lambda's root handler would print every line a second time
    return configured


def invocation_keys(event: Any, cold_start: bool) -> dict[str, Any]:
    """The keys every line of an invocation carries."""
    if isinstance(event, Request):
        context = event.lambda_context
        correlation_id = (event.context or {}).get("requestId")
    else:
        context = getattr(event, "context", None)
        correlation_id = getattr(context, "aws_request_id", None)
    return {
        "cold_start": cold_start,
        "function_name": getattr(context, "function_name", None),
        "function_request_id": getattr(context, "aws_request_id", None),
        "correlation_id": correlation_id,
    }


def invocation(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Chalice middleware (every event type): log context in, metrics out."""
    global _cold_start
    logger()
    _current.invocation = (event, _cold_start)
    _cold_start = False
    try:
        response = get_response(event)
        if getattr(response, "status_code", 0) >= 500:
            metrics.emit(metrics.HTTP_SERVER_ERRORS)
        return response
    finally:
        _current.invocation = None
        metrics.flush()


def install(app: Any) -> None:
    """Wrap every function of `app` (routes and event handlers) in `invocation`."""
    app.register_middleware(invocation, "all")
