"""Every /api and /local route needs the bearer token; tracking routes stay open.

Routes are enumerated from the app's own route table, so a route added later
is covered without editing this test.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import API_TOKEN

PROTECTED_PREFIXES = ("/api/", "/local/")


def _all_routes(app_object: Any) -> list[tuple[str, str, Any]]:
    from infra.local_runtime.local_routes import register_local_routes

    if "/local/outbox" not in app_object.routes:
        register_local_routes(app_object, app_object.routes["/api/deliveries"]["POST"].authorizer)
    return [(path, method, entry) for path, methods in app_object.routes.items() for method, entry in methods.items()]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "0011223344556677", path)


def test_there_are_protected_routes_to_check(app_object: Any) -> None:
    protected = [path for path, _, _ in _all_routes(app_object) if path.startswith(PROTECTED_PREFIXES)]
    assert "/api/deliveries" in protected and "/local/outbox" in protected


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer wrong-token", f"Basic {API_TOKEN}",
                                           f"Bearer {API_TOKEN}x", API_TOKEN])
def test_every_protected_route_answers_401_without_the_token(client: Any, app_object: Any,
                                                             authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    checked = 0
    for path, method, entry in _all_routes(app_object):
        if not path.startswith(PROTECTED_PREFIXES):
            continue
        assert entry.authorizer is not None, f"{method} {path} has no authorizer"
        response = client.request(method, _concrete(path), headers=dict(headers), body={})
        assert response.status_code == 401, f"{method} {path} answered {response.status_code}"
        assert response.json_body == {"message": "Unauthorized"}
        checked += 1
    assert checked >= 2


def test_the_token_opens_every_protected_route(client: Any, app_object: Any) -> None:
    for path, method, _ in _all_routes(app_object):
        if path.startswith(PROTECTED_PREFIXES):
            response = client.request(method, _concrete(path), headers={"Authorization": f"Bearer {API_TOKEN}"},
                                      body={})
            assert response.status_code not in (401, 403, 500), f"{method} {path}: {response.status_code}"


def test_tracking_routes_need_no_token(app_object: Any) -> None:
    public = [path for path, _, entry in _all_routes(app_object) if not path.startswith(PROTECTED_PREFIXES)]
    assert {"/r/{token}", "/o/{token}", "/u/{token}", "/m/{token}", "/r/test"} <= set(public)
    for path, _, entry in _all_routes(app_object):
        if path in public:
            assert entry.authorizer is None, path
