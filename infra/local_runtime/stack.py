"""The local stack: moto, the template's resources, the API, and the emulations.

`sendtrail local up` (and `make run`) runs all of it in one process, on
127.0.0.1 only: moto's server, the resources of infra/template.yaml
provisioned on it, the Chalice app served through the API Gateway emulation,
and the background emulations of what moto lacks.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import boto3

from infra.api_client import ApiClient
from infra.local_runtime import environment, moto_dynamodb, moto_kinesis, ses_account, ses_outbox
from infra.local_runtime.gateway import local_server
from infra.local_runtime.local_routes import register_local_routes
from infra.local_runtime.moto_server import start_moto
from infra.local_runtime.provision import ProvisionedStack, provision

logger = logging.getLogger("sendtrail.local")
STATE_FILE = Path(".local-state/stack.json")
SENDER_DOMAIN = "example.com"


@dataclass
class LocalStackOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    moto_port: int = 0
    api_token: str | None = None
    state_file: Path | None = STATE_FILE


@dataclass
class Worker:
    """A background emulation: `step()` every `interval` seconds until the stack stops."""

    name: str
    step: Callable[[], Any]
    interval: float


@dataclass
class LocalStack:
    options: LocalStackOptions = field(default_factory=LocalStackOptions)
    api_token: str = ""
    api_url: str = ""
    moto_endpoint: str = ""
    resources: ProvisionedStack | None = None
    workers: list[Worker] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _moto: Any = None
    _server: Any = None

    def start(self) -> "LocalStack":
        import secrets

        from chalicelib.auth import ADMIN, token_entry

        if self.options.host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the local stack listens on loopback only")
        moto_dynamodb.install()
        moto_kinesis.install()  # the hit endpoints' puts and the Firehose pump's reads run at once
        self._moto, self.moto_endpoint = start_moto(self.options.host, self.options.moto_port)
        environment.apply(environment.fake_aws(self.moto_endpoint))
        ses_outbox.install()
        ses_account.install()
        self.resources = provision(boto3.session.Session(), stage="local")
        self.api_token = self.options.api_token or os.environ.get("SENDTRAIL_API_TOKEN") or secrets.token_urlsafe(24)
        self.api_url = f"http://{self.options.host}:{self.options.port}"
        environment.apply({
            **self.resources.environment,
            "SENDTRAIL_API_TOKENS": token_entry(ADMIN, self.api_token),
            "SENDTRAIL_SIGNING_KEYS": os.environ.get("SENDTRAIL_SIGNING_KEYS") or environment.new_signing_keyring(),
            "SENDTRAIL_PUBLIC_BASE_URL": self.api_url,
            # The functions' JSON logs: warnings and errors on the console (POWERTOOLS_LOG_LEVEL=INFO for all).
            "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL") or "WARNING",
        })
        boto3.client("sesv2").create_email_identity(EmailIdentity=SENDER_DOMAIN)

        from app import app

        register_local_routes(app, app.routes["/api/deliveries"]["POST"].authorizer)
        self._server = local_server(app, self.options.host, self.options.port)
        if self.options.port == 0:
            self.options.port = self._server.server.server_address[1]
            self.api_url = f"http://{self.options.host}:{self.options.port}"
            environment.apply({"SENDTRAIL_PUBLIC_BASE_URL": self.api_url})
        self._spawn("api", self._server.serve_forever)
        from infra.local_runtime.emulations import workers_for

        self.workers.extend(workers_for(self))
        for worker in self.workers:
            self._spawn(worker.name, lambda worker=worker: self._run_worker(worker))
        self._write_state()
        return self

    def _spawn(self, name: str, target: Callable[[], Any]) -> None:
        thread = threading.Thread(target=target, name=f"sendtrail-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _run_worker(self, worker: Worker) -> None:
        while not self._stop.wait(worker.interval):
            try:
                worker.step()
            except Exception:  # noqa: BLE001 - an emulation error is logged, the stack keeps running
                logger.exception("local emulation %s failed", worker.name)

    def _write_state(self) -> None:
        if not self.options.state_file:
            return
        self.options.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.options.state_file.write_text(json.dumps({
            "api_url": self.api_url, "api_token": self.api_token, "moto_endpoint": self.moto_endpoint,
            "pid": os.getpid(),
        }))
        self.options.state_file.chmod(0o600)

    def client(self) -> ApiClient:
        return ApiClient(self.api_url, self.api_token)

    def seed_demo(self, timeout: float = 60.0) -> dict[str, Any]:
        """Create and send the demo delivery through the API, wait until it finished; its id and a few links."""
        from infra.local_runtime.demo import demo_delivery

        api = self.client()
        delivery_id = api.post("/api/deliveries", demo_delivery())["id"]
        api.post(f"/api/deliveries/{delivery_id}/send")
        deadline = time.monotonic() + timeout
        while api.get(f"/api/deliveries/{delivery_id}")["state"] != "finished":
            if time.monotonic() > deadline:
                raise RuntimeError(f"the demo delivery {delivery_id} did not finish within {timeout:g} s")
            time.sleep(0.2)
        outbox = api.get("/local/outbox")
        first = next((message for message in outbox if message["html"]), None)
        links = re.findall(r'href="([^"]+/(?:r|u|m)/[^"]+)"', first["html"]) if first else []
        return {"delivery_id": delivery_id, "links": [link.replace("&amp;", "&") for link in links]}

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        if self._moto is not None:
            self._moto.stop()
        ses_outbox.uninstall()
        ses_account.uninstall()
        if self.options.state_file and self.options.state_file.exists():
            self.options.state_file.unlink()

    def wait(self) -> None:
        try:
            while not self._stop.is_set():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
