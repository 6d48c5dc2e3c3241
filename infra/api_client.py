"""A small client for sendtrail's HTTP API (the CLI and the local demo use it)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class ApiError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.body = body


class ApiClient:
    def __init__(self, base_url: str, token: str, timeout: float = 60.0) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ValueError(f"the API's URL must start with https:// or http://, not {base_url[:40]!r}")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        })
        try:
            # S310/B310 (URL schemes): our own API, its scheme checked in __init__ (never file: or a custom one).
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310  # nosec B310
                payload = response.read()
        except urllib.error.HTTPError as error:
            payload = error.read()
            try:
                parsed: Any = json.loads(payload)
            except ValueError:
                parsed = payload.decode("utf-8", "replace")
            raise ApiError(error.code, parsed) from None
        return json.loads(payload) if payload else None

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, body if body is not None else {})
