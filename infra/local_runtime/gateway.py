"""API Gateway, emulated over Chalice's local gateway.

Chalice's LocalGateway runs routes and built-in authorizers in-process. Three
things API Gateway does that it does not are added here: an authorizer that
raises "Unauthorized" makes API Gateway answer 401 (Chalice's would crash),
every request gets a request id, and the identity's source IP is the real
client's. The local HTTP server and the tests both go through this class, so
they see what AWS would answer.

Two front doors, as deployed: the public hit routes are the HTTP API's
routes in infra/template.yaml (HitFrontDoor HttpApi, the default), whose
integration sends payload format 1.0 events: the REST proxy event plus
`version`, with the `$default` stage, no stage in `requestContext.path`
and the route key as `resourceId`. A request whose route is one of the
HTTP API's route keys gets that event; every other route gets the REST
API's event (stage `api`). One local address serves both.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from functools import lru_cache
from http.server import BaseHTTPRequestHandler
from typing import Any, Mapping
from urllib.parse import urlencode

from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    InvalidAuthorizerError,
    LocalDevServer,
    LocalGateway,
    LocalGatewayException,
    NotAuthorizedError,
)
from chalice.test import HTTPResponse

from infra.local_runtime import lambda_metrics
from infra.template import evaluate_conditions, load_template, parameter_values

logger = logging.getLogger("sendtrail.local.gateway")

HTTP_API_ID = "localhits"  # the local HTTP API's id in its events (requestContext.apiId)


@lru_cache(maxsize=8)
def _http_api_routes(parameters: tuple[tuple[str, str], ...]) -> dict[str, str]:
    template = load_template()
    conditions = evaluate_conditions(template, parameter_values(template, {"Stage": "local", **dict(parameters)}))
    routes = {}
    for spec in template["Resources"].values():
        if spec.get("Type") == "AWS::ApiGatewayV2::Route" and conditions.get(spec.get("Condition", ""), True):
            route_key = spec["Properties"]["RouteKey"]
            routes[route_key.split(" ", 1)[1]] = route_key
    return routes


def http_api_routes(parameters: Mapping[str, str] | None = None) -> dict[str, str]:
    """The HTTP API's route keys by path ('/r/{token}': 'ANY /r/{token}'), as the template declares them
    for these parameters (none when HitFrontDoor is RestApi)."""
    return _http_api_routes(tuple(sorted((parameters or {}).items())))


def as_http_api_event(event: dict[str, Any], route_key: str) -> dict[str, Any]:
    """A REST proxy event as an HTTP API integration with payload format 1.0 sends it."""
    context = event["requestContext"]
    headers = event.get("headers") or {}
    query = event.get("multiValueQueryStringParameters")
    now = time.time()
    context.update({
        "apiId": HTTP_API_ID, "stage": "$default", "resourceId": route_key,
        "path": context["path"], "protocol": "HTTP/1.1", "extendedRequestId": context["requestId"],
        "requestTimeEpoch": int(now * 1000),
        "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "domainPrefix": str(context.get("domainName", "")).split(".", 1)[0],
    })
    return {
        "version": "1.0",
        "resource": context["resourcePath"],
        "path": context["path"],
        "httpMethod": context["httpMethod"],
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {name: values[-1] for name, values in query.items()} if query else None,
        "multiValueQueryStringParameters": query,
        "requestContext": context,
        "pathParameters": event.get("pathParameters") or None,
        "stageVariables": None,
        "body": event.get("body"),
        "isBase64Encoded": bool(event.get("isBase64Encoded", False)),
    }


class _ApiHandler:
    """The app as API Gateway invokes it: one invocation of the api_handler function
    (infra/local_runtime/lambda_metrics.py)."""

    def __init__(self, app_object: Any) -> None:
        self._app = app_object

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        return lambda_metrics.invoke("api_handler", self._app, event, context)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)


class ApiGatewayEmulator(LocalGateway):
    def __init__(self, app_object: Any, config: Config, source_ip: str = "127.0.0.1",
                 http_api: Mapping[str, str] | None = None) -> None:
        super().__init__(app_object, config)
        self._app_object = _ApiHandler(app_object)
        self.source_ip = source_ip
        self.http_api = http_api_routes() if http_api is None else http_api

    def _generate_lambda_event(self, method: str, path: str, headers: Any, body: bytes | None) -> dict[str, Any]:
        event = super()._generate_lambda_event(method, path, headers, body)
        context = event["requestContext"]
        context["requestId"] = str(uuid.uuid4())
        context["identity"] = {**context.get("identity", {}), "sourceIp": self.source_ip,
                               "userAgent": event["headers"].get("user-agent", "")}
        context.setdefault("domainName", event["headers"].get("host", "127.0.0.1"))
        route_key = self.http_api.get(context["resourcePath"])
        if route_key is not None:
            return as_http_api_event(event, route_key)
        context.setdefault("stage", "api")
        return event

    def handle_request(self, method: str, path: str, headers: Any, body: bytes | None) -> dict[str, Any]:
        try:
            return super().handle_request(method, path, headers, body)
        except LocalGatewayException as error:
            if error.body and error.headers is not None:  # API Gateway's own answers are JSON, and say so
                error.headers.setdefault("Content-Type", "application/json")
            raise
        except Exception as error:  # noqa: BLE001 - only an authorizer's exception gets here
            request_id = str(uuid.uuid4())
            if str(error) == "Unauthorized":
                raise NotAuthorizedError(
                    {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": "UnauthorizedException",
                     "Content-Type": "application/json"},
                    b'{"message":"Unauthorized"}') from None
            logger.exception("authorizer failed")
            raise InvalidAuthorizerError(
                {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": "AuthorizerConfigurationException",
                 "Content-Type": "application/json"},
                b'{"message":null}') from None


class EmulatedRequestHandler(ChaliceRequestHandler):
    """Chalice's local HTTP handler, through ApiGatewayEmulator, without access logs."""

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any, config: Config) -> None:
        self.local_gateway = ApiGatewayEmulator(app_object, config, source_ip=client_address[0])
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)  # type: ignore[arg-type]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        logger.debug("%s - %s", self.address_string(), format % args)


def local_server(app_object: Any, host: str, port: int) -> LocalDevServer:
    config = Config.create(chalice_stage="local", app_name="sendtrail", lambda_timeout=60)
    return LocalDevServer(app_object, config, host, port, handler_cls=EmulatedRequestHandler)


class GatewayClient:
    """In-process HTTP client for tests: requests go through ApiGatewayEmulator."""

    def __init__(self, app_object: Any, source_ip: str = "203.0.113.7",
                 http_api: Mapping[str, str] | None = None) -> None:
        """`http_api`: the HTTP API's route keys by path (default: the template's; {}: every route on the REST API)."""
        self._app = app_object
        self._config = Config.create(chalice_stage="local", app_name="sendtrail", lambda_timeout=60)
        self.source_ip = source_ip
        self.http_api = http_api

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | str | dict | None = None, query: dict[str, str] | None = None) -> HTTPResponse:
        headers = dict(headers or {})
        if isinstance(body, dict):
            body = json.dumps(body)
            headers.setdefault("content-type", "application/json")
        if isinstance(body, str):
            body = body.encode("utf-8")
        if query:
            path = f"{path}?{urlencode(query)}"
        gateway = ApiGatewayEmulator(self._app, self._config, self.source_ip, self.http_api)
        try:
            response = gateway.handle_request(method, path, headers, body)
        except LocalGatewayException as error:
            return HTTPResponse(headers=error.headers, body=error.body or b"", status_code=error.CODE)
        return HTTPResponse.create_from_dict(response)

    def get(self, path: str, **kwargs: Any) -> HTTPResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> HTTPResponse:
        return self.request("POST", path, **kwargs)
