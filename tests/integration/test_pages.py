"""The dashboard pages through the API Gateway emulation: sessions, headers, escaping, friendly errors."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import API_TOKEN, READ_TOKEN

ORIGIN = {"origin": "http://127.0.0.1:8000", "host": "127.0.0.1:8000"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


def login(client: Any, token: str = API_TOKEN, headers: dict[str, str] | None = None, **fields: str) -> Any:
    body = urlencode({"token": token, **fields})
    return client.post("/dashboard/login", headers={**FORM, **ORIGIN, **(headers or {})}, body=body)


def session_cookie(response: Any) -> str:
    match = re.match(r"sendtrail_session=([^;]*)", response.headers["Set-Cookie"])
    assert match, response.headers
    return f"sendtrail_session={match.group(1)}"


@pytest.fixture
def signed_in(client: Any) -> dict[str, str]:
    response = login(client)
    assert response.status_code == 303, response.body
    return {"cookie": session_cookie(response), **ORIGIN}


def test_a_page_without_a_session_redirects_to_the_login(client: Any) -> None:
    response = client.get("/dashboard/deliveries/0123456789abcdef")
    assert response.status_code == 303
    assert response.headers["Location"] == "/dashboard/login?next=%2Fdashboard%2Fdeliveries%2F0123456789abcdef"


def test_login_sets_a_strict_http_only_expiring_cookie(client: Any) -> None:
    response = login(client, next="/dashboard/status")
    assert response.status_code == 303
    assert response.headers["Location"] == "/dashboard/status"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=28800" in cookie
    assert "Secure" not in cookie  # the local stack is plain HTTP on 127.0.0.1
    assert API_TOKEN not in cookie


def test_a_wrong_token_or_a_foreign_origin_gets_no_session(client: Any) -> None:
    wrong = login(client, token="not-the-token")
    assert wrong.status_code == 401 and "Set-Cookie" not in wrong.headers
    assert b"not an API token" in wrong.body
    foreign = login(client, headers={"origin": "https://evil.example"})
    assert foreign.status_code == 403 and "Set-Cookie" not in foreign.headers
    cross_site = login(client, headers={"sec-fetch-site": "cross-site"})
    assert cross_site.status_code == 403


def test_the_login_never_sends_a_person_to_another_site(client: Any) -> None:
    for target in ("https://evil.example/", "//evil.example/dashboard", "/dashboard//evil", "/api/deliveries"):
        response = login(client, next=target)
        assert response.headers["Location"] == "/dashboard", target


def test_pages_send_the_security_headers(client: Any, signed_in: dict[str, str]) -> None:
    for path in ("/dashboard", "/dashboard/status", "/dashboard/login"):
        response = client.get(path, headers=signed_in)
        assert response.status_code in (200, 303), path
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_forged_or_expired_session_is_no_session(client: Any, signed_in: dict[str, str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    value = signed_in["cookie"].split("=", 1)[1]
    forged = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    assert client.get("/dashboard", headers={"cookie": f"sendtrail_session={forged}"}).status_code == 303
    assert client.get("/dashboard", headers={"cookie": "sendtrail_session=v1.1.99999999999.x.y"}).status_code == 303
    from chalicelib.pages import web

    monkeypatch.setattr(web, "now_s", lambda: 10 ** 11)
    assert client.get("/dashboard", headers=signed_in).status_code == 303


def test_a_new_api_token_ends_every_session(client: Any, signed_in: dict[str, str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.auth import ADMIN, token_entry

    assert client.get("/dashboard", headers=signed_in).status_code == 200
    monkeypatch.setenv("SENDTRAIL_API_TOKENS", token_entry(ADMIN, "a-new-token"))
    assert client.get("/dashboard", headers=signed_in).status_code == 303


def test_a_read_token_opens_the_dashboard(client: Any) -> None:
    """Dashboards need the read scope only (chalicelib/auth.py); the session holds while the token is configured."""
    response = login(client, token=READ_TOKEN)
    assert response.status_code == 303
    assert client.get("/dashboard", headers={"cookie": session_cookie(response)}).status_code == 200


def test_logout_needs_the_form_token_and_clears_the_cookie(client: Any, signed_in: dict[str, str]) -> None:
    page = client.get("/dashboard", headers=signed_in).body.decode()
    form_token = re.search(r'name="form_token" value="([^"]+)"', page).group(1)
    refused = client.post("/dashboard/logout", headers={**FORM, **signed_in}, body="form_token=guess")
    assert refused.status_code == 403
    done = client.post("/dashboard/logout", headers={**FORM, **signed_in}, body=f"form_token={form_token}")
    assert done.status_code == 303 and done.headers["Location"] == "/dashboard/login"
    assert "Max-Age=0" in done.headers["Set-Cookie"]


@pytest.mark.parametrize("tab", ["", "/hot-clicks", "/tracking"])
@pytest.mark.parametrize("delivery_id", ["0123456789abcdef", "not-an-id", "%3Cscript%3E"])
def test_an_unknown_delivery_is_a_friendly_404_page(client: Any, signed_in: dict[str, str], delivery_id: str,
                                                    tab: str) -> None:
    response = client.get(f"/dashboard/deliveries/{delivery_id}{tab}", headers=signed_in)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")
    assert b"Not found" in response.body and b"<script>" not in response.body


@pytest.mark.parametrize("path", ["/dashboard/deliveries/0123456789abcdef/tracking?kind=%3Cb%3E",
                                  "/dashboard/recipients/ann?next=bm90LWEtY3Vyc29y", "/dashboard/recipients?id="])
def test_bad_parameters_are_a_friendly_400_page(client: Any, signed_in: dict[str, str], path: str) -> None:
    response = client.get(path, headers=signed_in)
    assert response.status_code in (400, 404), response.body
    assert response.headers["Content-Type"].startswith("text/html") and b"<b>" not in response.body
