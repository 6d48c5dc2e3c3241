"""boto3 clients, created once per container and shared.

Clients are created lazily (a cold start pays only for the ones it uses) and
kept for the life of the container. The endpoint comes from the standard
AWS_ENDPOINT_URL variable, which is how the local stack and the tests point
boto3 at moto; Lambda code never names an endpoint itself.

Every client sends a fixed User-Agent (botocore's `user_agent` setting).
Without one, botocore rebuilds its default string from about 20 sanitized
parts twice per call (once for the request, once more after signing, to
add the features the call used): measured with cProfile on the hit path's
put (network stubbed at `before-send`), that was a quarter of the put's
client-side CPU, more than SigV4 signing. The string only tells AWS which
SDK called; nothing depends on it. Parameter validation and checksum
settings were measured too and left alone: their share was within the
noise of a shared machine (README, "Benchmarks").
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
import botocore
from botocore.config import Config

from chalicelib.version import VERSION

USER_AGENT = f"sendtrail/{VERSION} Boto3/{boto3.__version__} Botocore/{botocore.__version__}"

# The hit path answers people waiting for a redirect: it would rather give up
# on a slow AWS call (and fall back) than keep them waiting.
HIT_PATH = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 2, "mode": "standard"},
                  user_agent=USER_AGENT)
# Everything else (API, workflow, send jobs) favours finishing over latency.
DEFAULT = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 5, "mode": "adaptive"},
                 user_agent=USER_AGENT)
# The status check asks every component at once and must answer within API Gateway's 29 s.
PROBE = Config(connect_timeout=2, read_timeout=4, retries={"max_attempts": 2, "mode": "standard"},
               user_agent=USER_AGENT)

_clients: dict[tuple[str, int], Any] = {}
_lock = threading.Lock()
_session: boto3.session.Session | None = None


def client(service: str, config: Config = DEFAULT) -> Any:
    """The shared boto3 client for `service` with `config`.

    Clients come from one session per container, so the endpoint and
    service-model files are read once, not once per client.
    """
    global _session
    key = (service, id(config))
    found = _clients.get(key)
    if found is None:
        with _lock:  # sessions are not thread-safe; clients are
            found = _clients.get(key)
            if found is None:
                if _session is None:
                    _session = boto3.session.Session()
                found = _session.client(service, config=config)
                _clients[key] = found
    return found


def reset_clients() -> None:
    """Forget every client and the session (after the environment changed, e.g. in tests)."""
    global _session
    with _lock:
        _clients.clear()
        _session = None
