"""The OpenAPI 3.1 document: Chalice's route table joined to the declared operations.

Every /api route of `app.routes` must have an operation declared with
`chalicelib.api.operations.operation` (a route without one is an error,
caught by the unit tests); its path parameters come from the route, its
query parameters, body and answers from the declared pydantic models, whose
JSON schemas become `components/schemas`. The document is built from
openapi-pydantic's models (validated as it is built), never from
hand-written dicts, and cached per process: routes cannot change at run time.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from openapi_pydantic.util import PydanticSchema, construct_open_api_with_schema_class
from openapi_pydantic.v3.v3_1 import (
    Components,
    Header,
    Info,
    MediaType,
    OpenAPI,
    Operation,
    Parameter,
    PathItem,
    RequestBody,
    Response,
    Schema,
    SecurityScheme,
    Server,
    Tag,
)
from pydantic import BaseModel

from chalicelib.api import operations
from chalicelib.api.models import ErrorBody, GatewayError, MissingScope
from chalicelib.auth import ADMIN, required_scope
from chalicelib.version import VERSION

API_PREFIX = "/api/"
BEARER = "bearerAuth"
# The modules whose handlers declare the /api operations (app.py loads them lazily).
HANDLER_MODULES = ("chalicelib.api.deliveries", "chalicelib.api.tracking", "chalicelib.api.reports",
                   "chalicelib.api.quarantine", "chalicelib.api.status", "chalicelib.api.docs",
                   "chalicelib.api.privacy")
ERROR_MEANINGS = {
    400: "a query parameter or the body is invalid: `fields` names each one",
    401: "no bearer token, or not the API's",
    403: "the token lacks the scope this route needs",
    404: "no such delivery (or other resource)",
    409: "the request conflicts with the resource's state: `message` says why",
    503: "a backing AWS service did not answer; retry shortly",
}
TAGS = (("deliveries", "Create, read and list deliveries, their logs, the quarantine list"),
        ("sending", "Start, pause, resume and stop sending"),
        ("reports", "Campaign's reports: indicators, hot clicks, URLs, timeline, breakdowns, tracking"),
        ("privacy", "Export or erase what is kept about a person; purge a delivery"),
        ("operations", "The status check, signing keys, the tracking workflow, this document"))


class RouteNotDeclared(LookupError):
    pass


def load_operations() -> dict[tuple[str, str], operations.Operation]:
    """Import every handler module so that each declares its operations; the registry."""
    for name in HANDLER_MODULES:
        importlib.import_module(name)
    return operations.OPERATIONS


def _query_parameters(model: type[BaseModel]) -> list[Parameter]:
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    parameters = []
    for name, field_schema in schema.get("properties", {}).items():
        field_schema = {key: value for key, value in field_schema.items() if key != "title"}
        description = field_schema.pop("description", None)
        branches = field_schema.pop("anyOf", None)
        if branches:  # Optional[X]: an absent parameter is the None; a query string cannot say null
            [value_schema] = [branch for branch in branches if branch.get("type") != "null"]
            field_schema = {**value_schema, **field_schema}
        if field_schema.get("default", 0) is None:
            del field_schema["default"]
        parameters.append(Parameter(  # type: ignore[call-arg]  # by field name (populate_by_name), not the alias
            name=name, param_in="query", required=name in required, description=description,
            param_schema=Schema.model_validate(field_schema)))
    return parameters


def _json(model: type[BaseModel]) -> dict[str, MediaType]:
    return {operations.JSON: MediaType(media_type_schema=PydanticSchema(schema_class=model))}


def _answers(declared: operations.Operation, scope: str | None) -> dict[str, Response]:
    content = _json(declared.response)
    headers = None
    if declared.csv:
        content[operations.CSV] = MediaType(media_type_schema=Schema(type="string"))
        headers = {"Link": Header(description='CSV only: `<?...&next=...>; rel="next"` while more pages follow',
                                  param_schema=Schema(type="string"))}
    answers = {str(declared.status): Response(description=declared.summary, content=content, headers=headers)}
    if scope == ADMIN:  # every valid token has read: only an admin route can refuse one
        answers["403"] = Response(description=ERROR_MEANINGS[403], content=_json(MissingScope))
    for status in declared.errors:
        model = GatewayError if status == 401 else ErrorBody
        answers.setdefault(str(status), Response(description=ERROR_MEANINGS.get(status, "error"),
                                                 content=_json(model)))
    return answers


def _operation(route: Any, declared: operations.Operation) -> Operation:
    parameters = [Parameter(  # type: ignore[call-arg]  # by field name (populate_by_name), not the alias
        name=name, param_in="path", required=True, param_schema=Schema(type="string")) for name in route.view_args]
    if declared.query is not None:
        parameters += _query_parameters(declared.query)
    body = None
    if declared.body is not None:
        body = RequestBody(required=True, content=_json(declared.body))
    scope = required_scope(route)
    description = "\n\n".join(part for part in (declared.description, f"Scope: `{scope}`." if scope else "") if part)
    return Operation(operationId=route.view_name, summary=declared.summary, description=description or None,
                     tags=[declared.tag], parameters=parameters or None, requestBody=body,
                     responses=_answers(declared, scope), **({"deprecated": True} if declared.deprecated else {}),
                     security=[{BEARER: [scope]}] if scope else None)


def build(app: Any, server_url: str = "/") -> OpenAPI:
    """The document for `app`'s /api routes; RouteNotDeclared names a route without a declared operation."""
    declared_operations = load_operations()
    paths: dict[str, PathItem] = {}
    for path, methods in sorted(app.routes.items()):
        if not path.startswith(API_PREFIX):
            continue
        item: dict[str, Operation] = {}
        for method, route in sorted(methods.items()):
            declared = declared_operations.get((method, path))
            if declared is None:
                raise RouteNotDeclared(f"{method} {path} has no operation declared (chalicelib/api/operations.py)")
            item[method.lower()] = _operation(route, declared)
        paths[path] = PathItem.model_validate(item)
    document = OpenAPI(
        openapi="3.1.0",
        info=Info(title="sendtrail API", version=VERSION,
                  description="Deliveries, send jobs and Campaign's tracking reports for SES senders. Every "
                              "route needs `Authorization: Bearer <API token>` of a scope that covers it (read, "
                              "or admin: each operation says which); counts say whether they count people "
                              "(unique) or all hits (total)."),
        servers=[Server(url=server_url)],
        paths=paths,
        tags=[Tag(name=name, description=description) for name, description in TAGS],
        components=Components(securitySchemes={BEARER: SecurityScheme(type="http", scheme="bearer")}),
    )
    return construct_open_api_with_schema_class(document)


@functools.lru_cache(maxsize=4)
def document_json(app: Any, server_url: str = "/") -> str:
    """The document as JSON text (built once per process and server URL)."""
    return build(app, server_url).model_dump_json(by_alias=True, exclude_none=True, exclude_unset=True)
