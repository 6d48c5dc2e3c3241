"""The hit routes' front door: an HTTP API (payload format 1.0) before the same handlers as the REST API.

The local gateway sends each hit route the event the template's HTTP API
sends (infra/local_runtime/gateway.py); these tests pin that event's shape
and that the handlers answer it exactly as they answer the REST API's.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import boto3
from chalice.config import Config

from chalicelib import tokens
from chalicelib.base_url import stage_prefix
from chalicelib.hits.endpoints import ROUTE_METHODS
from infra.local_runtime.gateway import ApiGatewayEmulator, GatewayClient, http_api_routes
from tests.integration.test_hit_endpoints import CHROME_UA, URLS, assert_exact_record, hits, make_delivery, token


def _event(app_object: Any, method: str, path: str, http_api: dict[str, str] | None = None) -> dict[str, Any]:
    config = Config.create(chalice_stage="local", app_name="sendtrail", lambda_timeout=60)
    gateway = ApiGatewayEmulator(app_object, config, "203.0.113.7", http_api)
    return gateway._generate_lambda_event(method, path, {"Host": "t.example.com", "User-Agent": CHROME_UA}, None)


def test_the_http_api_routes_are_the_public_routes_and_only_those() -> None:
    assert http_api_routes() == {path: f"ANY {path}" for path in ROUTE_METHODS}
    assert http_api_routes({"HitFrontDoor": "RestApi"}) == {}


def test_a_hit_route_gets_the_http_apis_payload_format_1_0_event(app_object: Any) -> None:
    event = _event(app_object, "GET", "/r/abc?utm_source=x&p=1&p=2")
    assert event["version"] == "1.0"
    assert (event["resource"], event["path"], event["httpMethod"]) == ("/r/{token}", "/r/abc", "GET")
    assert event["pathParameters"] == {"token": "abc"} and event["stageVariables"] is None
    assert event["multiValueQueryStringParameters"] == {"utm_source": ["x"], "p": ["1", "2"]}
    assert event["queryStringParameters"] == {"utm_source": "x", "p": "2"}
    assert event["multiValueHeaders"]["user-agent"] == [CHROME_UA]
    context = event["requestContext"]
    assert (context["stage"], context["resourceId"], context["resourcePath"], context["path"]) == (
        "$default", "ANY /r/{token}", "/r/{token}", "/r/abc")
    assert context["identity"]["sourceIp"] == "203.0.113.7" and context["requestId"]


def test_the_dashboard_api_keeps_the_rest_apis_event(app_object: Any) -> None:
    event = _event(app_object, "GET", "/api/deliveries")
    assert "version" not in event and event["requestContext"]["stage"] == "api"
    rest = _event(app_object, "GET", "/r/abc", http_api={})  # HitFrontDoor RestApi
    assert "version" not in rest and rest["requestContext"]["stage"] == "api"


def test_a_click_answers_and_records_the_same_through_either_front_door(resources: Any, app_object: Any) -> None:
    make_delivery()
    click = token(tokens.KIND_CLICK, 4)
    for http_api in (None, {}):  # the template's HTTP API, then the REST API
        response = GatewayClient(app_object, http_api=http_api).get(
            f"/r/{click}", headers={"User-Agent": CHROME_UA}, query={"utm_source": "x"})
        assert response.status_code == 302
        assert response.headers["Location"] == URLS["4"]["url"]
    first, second = hits()
    for record in (first, second):
        assert_exact_record(record, "click", 4, click, ua=CHROME_UA)


def test_the_pixel_head_and_options_answer_through_the_http_api(client: Any) -> None:
    make_delivery()
    opened = token(tokens.KIND_OPEN, 1)
    assert client.get(f"/o/{opened}", headers={"Accept": "text/html"}).body[:6] == b"GIF89a"
    head = client.request("HEAD", f"/o/{opened}")
    assert head.status_code == 200 and head.body == b""
    assert client.request("OPTIONS", f"/r/{opened}").status_code == 204
    assert client.request("DELETE", f"/r/{opened}").status_code == 405
    assert len(hits()) == 1  # the GET only


def test_links_on_the_http_apis_default_endpoint_have_no_stage_path() -> None:
    def request(stage: str, domain: str) -> Any:
        return SimpleNamespace(context={"stage": stage, "domainName": domain})

    assert stage_prefix(request("$default", "abc123.execute-api.eu-west-1.amazonaws.com")) == ""
    assert stage_prefix(request("api", "abc123.execute-api.eu-west-1.amazonaws.com")) == "/api"
    assert stage_prefix(request("api", "t.example.com")) == ""


def test_the_local_stack_has_the_http_api_with_the_templates_route_throttling(resources: Any) -> None:
    apis = boto3.client("apigatewayv2").get_apis()["Items"]
    [api] = [api for api in apis if api["Name"] == "sendtrail-local-hits"]
    stage = boto3.client("apigatewayv2").get_stage(ApiId=api["ApiId"], StageName="$default")
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == 50.0
    assert stage["RouteSettings"] == {f"ANY {path}": {"ThrottlingRateLimit": 5000.0, "ThrottlingBurstLimit": 2500}
                                      for path in ROUTE_METHODS if "{token}" in path}
