"""schemathesis against the app in-process: every /api operation of the served OpenAPI document.

The document is fetched from GET /api/openapi.json through the API Gateway
emulation (authorizer included), then each operation gets generated
requests, valid ones and invalid ones, sent through the same emulation (a
WSGI face over GatewayClient). Every answer must be no server error, a
documented status with a documented content type, and match its schema.
Each request carries an admin or a read token (a read token on an admin
route must get the documented 403).
Half of the generated requests name a real delivery and recipient (a sent
delivery with hits), so the 200 answers are checked with data in them, not
only the 404s. Bounded and deterministic: a fixed budget of examples per
operation, derandomized.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Callable, Iterable

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, strategies
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import API_TOKEN, READ_TOKEN
from tests.integration.test_tracking_api import T0, create_and_send
from tests.tracking_harness import FakeClock, put_log, workflow
from tests.tracking_logs import record

TOKENS = [{"Authorization": f"Bearer {API_TOKEN}"}, {"Authorization": f"Bearer {READ_TOKEN}"}]  # admin, read
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_MODE = 8  # per operation and generation mode: ~20 operations x 2 modes x 8 = ~320 requests
# Operations that change state run fewer examples (each may send or run the workflow).
SLOW = {("POST", "/api/workflow/run"): 2, ("POST", "/api/deliveries/{delivery_id}/send"): 4}


class GatewayWsgi:
    """A WSGI face over the API Gateway emulation, so that schemathesis's WSGI transport reaches the app."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        if "?" not in target and environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
        headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
                   if key.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else None
        response = self.client.request(environ["REQUEST_METHOD"], target, headers=headers, body=body)
        start_response(f"{response.status_code} {HTTPStatus(response.status_code).phrase}",
                       [(name, str(value)) for name, value in response.headers.items()])
        return [response.body if isinstance(response.body, bytes) else str(response.body).encode()]


@pytest.fixture
def known(api: Any, mta: Any) -> dict[str, str]:
    """A sent delivery with an open and clicks counted, and its recipient: real values for path parameters."""
    delivery_id = create_and_send(api, mta, ["ann", "bob"], "conformance")
    put_log("conformance", [record(kind="open", delivery_id=delivery_id, log_id=1, url_id=1, ts=T0),
                            record(kind="click", delivery_id=delivery_id, log_id=1, url_id=4, ts=T0 + 1000),
                            record(kind="click", delivery_id=delivery_id, log_id=2, url_id=4, ts=T0 + 2000)], T0)
    workflow(FakeClock(T0 / 1000 + 600)).run()
    return {"delivery_id": delivery_id, "recipient_id": "ann"}


def test_every_operation_answers_as_its_schema_says(client: Any, known: dict[str, str]) -> None:
    served = client.get("/api/openapi.json", headers=TOKENS[1])  # a read token may read the document
    assert served.status_code == 200
    schema = schemathesis.openapi.from_dict(served.json_body)
    app = GatewayWsgi(client)
    checked: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        real = {name: known[name] for name in ("delivery_id", "recipient_id") if "{" + name + "}" in operation.path}
        strategies_of_operation = []
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies_of_operation.append(operation.as_strategy(generation_mode=mode))
            if real:
                strategies_of_operation.append(operation.as_strategy(generation_mode=mode, path_parameters=real))
        calls = []

        @hypothesis.settings(max_examples=SLOW.get(key, EXAMPLES_PER_MODE) * 2, derandomize=True, database=None,
                             deadline=None, phases=[hypothesis.Phase.generate],
                             suppress_health_check=list(HealthCheck))
        @hypothesis.given(case=strategies.one_of(strategies_of_operation),
                          authorization=strategies.sampled_from(TOKENS))
        def check(case: Any, authorization: dict[str, str]) -> None:
            response = case.call(app=app, headers=authorization)
            case.validate_response(response, checks=CHECKS, headers=authorization)
            calls.append(response.status_code)  # noqa: B023 - check() runs in this iteration, with its calls

        check()
        checked[f"{key[0]} {key[1]}"] = len(calls)
    assert len(checked) >= 15 and all(checked.values()), checked
