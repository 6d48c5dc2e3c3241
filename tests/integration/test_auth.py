"""Every /api and /local route needs a token of the right scope; tracking routes stay open.

Routes are enumerated from the app's own route table, so a route added later
is walked without editing the walk: it fails until its scope is declared in
app.py (`@requires(READ)` / `@requires(ADMIN)` under its `@app.route`) and
entered in ROUTES below, with what an admin token gets from it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from chalicelib import auth
from tests.conftest import API_TOKEN, READ_TOKEN
from tests.integration.test_deliveries_api import delivery_body

PROTECTED_PREFIXES = ("/api/", "/local/")
READ, ADMIN = auth.READ, auth.ADMIN

# (method, path): (the scope it needs, what an admin token gets). Walked in this order with the ids of a
# delivery made for the walk, so the admin walk steers it through send, pause, resume and stop, then erases.
ROUTES: dict[tuple[str, str], tuple[str, int]] = {
    ("POST", "/api/deliveries"): (ADMIN, 201),
    ("GET", "/api/deliveries"): (READ, 200),
    ("GET", "/api/deliveries/{delivery_id}"): (READ, 200),
    ("GET", "/api/deliveries/{delivery_id}/indicators"): (READ, 200),
    ("GET", "/api/deliveries/{delivery_id}/urls"): (READ, 200),
    ("GET", "/api/deliveries/{delivery_id}/timeline"): (READ, 200),
    ("GET", "/api/deliveries/{delivery_id}/user-agents"): (READ, 200),
    ("GET", "/api/deliveries/{delivery_id}/hot-clicks"): (READ, 200),
    ("GET", "/api/deliveries/{delivery_id}/time-to-react"): (READ, 200),
    ("GET", "/api/deliveries/{delivery_id}/breakdown"): (READ, 200),
    ("GET", "/api/openapi.json"): (READ, 200),
    ("GET", "/api/deliveries/{delivery_id}/domains"): (READ, 200),
    ("GET", "/api/deliveries/{delivery_id}/tracking"): (READ, 200),
    ("GET", "/api/throughput"): (READ, 200),
    ("GET", "/api/deliveries/{delivery_id}/logs"): (READ, 200),
    ("GET", "/api/recipients/{recipient_id}/tracking"): (READ, 200),
    ("GET", "/api/quarantine"): (READ, 200),
    ("GET", "/api/status"): (READ, 200),
    ("GET", "/api/signing-keys"): (READ, 200),
    ("POST", "/api/deliveries/{delivery_id}/send"): (ADMIN, 202),
    ("POST", "/api/deliveries/{delivery_id}/pause"): (ADMIN, 200),
    ("POST", "/api/deliveries/{delivery_id}/resume"): (ADMIN, 200),
    ("POST", "/api/deliveries/{delivery_id}/stop"): (ADMIN, 200),
    ("POST", "/api/workflow/run"): (ADMIN, 200),
    ("GET", "/local/outbox"): (ADMIN, 200),
    ("GET", "/api/recipients/{recipient_id}/export"): (ADMIN, 200),
    ("DELETE", "/api/recipients/{recipient_id}"): (ADMIN, 200),
    ("DELETE", "/api/deliveries/{delivery_id}"): (ADMIN, 200),
}


def _all_routes(app_object: Any) -> list[tuple[str, str, Any]]:
    from infra.local_runtime.local_routes import register_local_routes

    if "/local/outbox" not in app_object.routes:
        register_local_routes(app_object, app_object.routes["/api/deliveries"]["POST"].authorizer)
    return [(path, method, entry) for path, methods in app_object.routes.items() for method, entry in methods.items()]


def _protected(app_object: Any) -> list[tuple[str, str, Any]]:
    routes = [route for route in _all_routes(app_object) if route[0].startswith(PROTECTED_PREFIXES)]
    order = list(ROUTES)
    return sorted(routes, key=lambda route: order.index((route[1], route[0])) if (route[1], route[0]) in order
                  else len(order))


def _concrete(path: str, delivery_id: str = "0011223344556677") -> str:
    return path.replace("{delivery_id}", delivery_id).replace("{recipient_id}", "ann") if "{" in path else path


def _request(client: Any, method: str, path: str, token: str | None, delivery_id: str = "0011223344556677") -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    body = delivery_body() if (method, path) == ("POST", "/api/deliveries") else {}
    return client.request(method, _concrete(path, delivery_id), headers=headers, body=body)


def test_every_protected_route_declares_its_scope_and_is_in_the_table(app_object: Any) -> None:
    routes = _protected(app_object)
    assert len(routes) >= len(ROUTES) - 1
    for path, method, entry in routes:
        assert entry.authorizer is not None, f"{method} {path} has no authorizer"
        declared = getattr(entry.view_function, auth.REQUIRED_SCOPE_ATTRIBUTE, None)
        assert declared in auth.SCOPES, f"{method} {path}: declare its scope with @requires(READ|ADMIN) in app.py"
        assert (method, path) in ROUTES, f"{method} {path}: add it to ROUTES with its scope and admin status"
        assert ROUTES[(method, path)][0] == declared, f"{method} {path} declares {declared}"


def test_each_scope_gets_what_the_table_says(client: Any, app_object: Any) -> None:
    """No token: 401. A read token: 2xx on read routes, 403 naming admin on the others. An admin token: 2xx."""
    created = client.post("/api/deliveries", headers={"Authorization": f"Bearer {API_TOKEN}"}, body=delivery_body())
    delivery_id = created.json_body["id"]
    routes = _protected(app_object)
    for path, method, _ in routes:
        response = _request(client, method, path, None, delivery_id)
        assert response.status_code == 401, f"{method} {path} without a token: {response.status_code}"
        assert response.json_body == {"message": "Unauthorized"}
    for path, method, _ in routes:
        scope, _ = ROUTES[(method, path)]
        response = _request(client, method, path, READ_TOKEN, delivery_id)
        if scope == READ:
            assert 200 <= response.status_code < 300, f"{method} {path} read: {response.status_code} {response.body}"
        else:
            assert response.status_code == 403, f"{method} {path} read: {response.status_code}"
            assert response.json_body["missing_scope"] == ADMIN
            assert "needs the admin scope" in response.json_body["message"]
    for path, method, _ in routes:
        _, status = ROUTES[(method, path)]
        response = _request(client, method, path, API_TOKEN, delivery_id)
        assert response.status_code == status, f"{method} {path} admin: {response.status_code} {response.body}"


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer wrong-token", f"Basic {API_TOKEN}",
                                           f"Bearer {API_TOKEN}x", API_TOKEN, f"Bearer {READ_TOKEN[:-1]}"])
def test_no_valid_token_is_401_everywhere(client: Any, app_object: Any, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for path, method, _ in _protected(app_object):
        response = client.request(method, _concrete(path), headers=dict(headers), body={})
        assert response.status_code == 401, f"{method} {path} answered {response.status_code}"


def test_tracking_routes_need_no_token(app_object: Any) -> None:
    public = [path for path, _, entry in _all_routes(app_object) if not path.startswith(PROTECTED_PREFIXES)]
    assert {"/r/{token}", "/o/{token}", "/u/{token}", "/m/{token}", "/r/test"} <= set(public)
    for path, _, entry in _all_routes(app_object):
        if path in public:
            assert entry.authorizer is None, path
            assert auth.required_scope(entry) is None


def test_an_undeclared_route_behind_the_authorizer_needs_admin(client: Any, app_object: Any) -> None:
    """Fail-closed: a route someone forgot to declare is admin-only, not open to read tokens."""
    from chalice import Blueprint

    extra = Blueprint("undeclared")

    @extra.route("/api/test-undeclared", methods=["GET"], authorizer=app_object.routes["/api/status"]["GET"].authorizer)
    def undeclared() -> dict[str, bool]:
        return {"ok": True}

    app_object.register_blueprint(extra)
    try:
        assert client.get("/api/test-undeclared", headers={"Authorization": f"Bearer {READ_TOKEN}"}).status_code == 403
        assert client.get("/api/test-undeclared", headers={"Authorization": f"Bearer {API_TOKEN}"}).status_code == 200
    finally:
        del app_object.routes["/api/test-undeclared"]


def test_rotation_keeps_every_configured_token_valid(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several hashes at once: the old and the new token both work until the old entry is removed."""
    old, new = "old-admin-token-0123456789", "new-admin-token-0123456789"
    monkeypatch.setenv(auth.TOKENS_VARIABLE, f"{auth.token_entry(ADMIN, old)}, {auth.token_entry(ADMIN, new)}")
    for token in (old, new):
        assert client.get("/api/status", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    monkeypatch.setenv(auth.TOKENS_VARIABLE, auth.token_entry(ADMIN, new))
    assert client.get("/api/status", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    assert client.get("/api/status", headers={"Authorization": f"Bearer {new}"}).status_code == 200


def test_the_authorizer_answer_is_safe_to_cache_per_token() -> None:
    """API Gateway caches an answer by the Authorization header: it must name no route, only that token's scope."""
    import os

    saved = os.environ.get(auth.TOKENS_VARIABLE)
    os.environ[auth.TOKENS_VARIABLE] = f"{auth.token_entry(READ, READ_TOKEN)},{auth.token_entry(ADMIN, API_TOKEN)}"
    try:
        from chalice.app import AuthRequest

        request = AuthRequest("TOKEN", "", "arn:aws:execute-api:eu-west-1:123456789012:abc/api/GET/api/status")
        answers = {token: auth.authorize(f"Bearer {token}").to_dict(request) for token in (READ_TOKEN, API_TOKEN)}
    finally:
        os.environ.pop(auth.TOKENS_VARIABLE)
        if saved is not None:
            os.environ[auth.TOKENS_VARIABLE] = saved
    assert answers[READ_TOKEN]["context"] == {"scope": READ}
    assert answers[API_TOKEN]["context"] == {"scope": ADMIN}
    for answer in answers.values():
        resources = answer["policyDocument"]["Statement"][0]["Resource"]
        assert resources == ["arn:aws:execute-api:eu-west-1:123456789012:abc/api/*/*"], resources
        assert READ_TOKEN not in answer["principalId"] and API_TOKEN not in answer["principalId"]
    from app import api_auth

    assert api_auth.config.header == "Authorization"  # the cache key: the token, never shared between tokens


@pytest.mark.parametrize("text", ["admin", "read:abc", "owner:" + "0" * 64, "admin:" + "g" * 64])
def test_a_malformed_token_entry_is_an_error(text: str) -> None:
    with pytest.raises(auth.TokenConfigurationError):
        auth.parse_token_hashes(text)


def test_the_cli_prints_a_token_and_its_entry(capsys: pytest.CaptureFixture[str]) -> None:
    from infra.cli import main

    assert main(["token", "new", "--scope", "read"]) == 0
    printed = capsys.readouterr().out
    token = re.search(r"^token: (\S+)$", printed, re.M).group(1)  # type: ignore[union-attr]
    entry = re.search(r"^entry: (\S+)$", printed, re.M).group(1)  # type: ignore[union-attr]
    assert auth.parse_token_hashes(entry) == (auth.TokenHash(READ, auth.token_sha256(token)),)
    with pytest.raises(SystemExit):
        main(["token", "new", "--scope", "owner"])
