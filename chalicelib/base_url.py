"""Where tracked links point: the public base URL of the tracking endpoints.

Configured (SENDTRAIL_PUBLIC_BASE_URL, e.g. a custom HTTPS domain) or, when
empty, the address the request came in on, including API Gateway's stage
path when the default execute-api endpoint is used. Standard library only.
"""

from __future__ import annotations

from typing import Any


def stage_prefix(request: Any) -> str:
    """'/api' when called through the REST API's default endpoint, '' on a custom domain or locally.

    An HTTP API's `$default` stage (the hit routes' front door) has no path
    of its own on its default endpoint either.
    """
    stage = request.context.get("stage") or ""
    domain = request.context.get("domainName") or ""
    return f"/{stage}" if stage and stage != "$default" and ".execute-api." in domain else ""


def public_base_url(request: Any, configured: str | None) -> str:
    if configured:
        return configured.rstrip("/")
    headers = request.headers
    scheme = headers.get("x-forwarded-proto", "http" if _is_loopback(headers.get("host", "")) else "https")
    return f"{scheme}://{headers.get('host', 'localhost')}{stage_prefix(request)}"


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    return name in ("127.0.0.1", "localhost", "[::1]")
