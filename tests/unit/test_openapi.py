"""The OpenAPI document: generated from the route table and the declared models, valid OpenAPI 3.1."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from openapi_spec_validator import validate

from app import app
from chalicelib.api import openapi, operations
from chalicelib.api.http import BadRequest
from chalicelib.auth import ADMIN, READ, required_scope


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads(openapi.document_json(app))


def _api_routes() -> list[tuple[str, str]]:
    return [(method, path) for path, methods in app.routes.items() if path.startswith("/api/") for method in methods]


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    reference = schema["$ref"]
    assert reference.startswith("#/components/schemas/")
    return document["components"]["schemas"][reference.rsplit("/", 1)[1]]


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_api_route_is_in_the_document_with_its_declared_models(document: dict[str, Any]) -> None:
    routes = _api_routes()
    assert len(routes) >= 15
    for method, path in routes:
        declared = operations.OPERATIONS[(method, path)]
        described = document["paths"][path][method.lower()]
        answer = described["responses"][str(declared.status)]["content"]["application/json"]["schema"]
        assert answer == {"$ref": f"#/components/schemas/{declared.response.__name__}"}, (method, path)
        assert _resolve(document, answer)["properties"].keys() >= {
            field.alias or name for name, field in declared.response.model_fields.items()
            if not field.exclude} or declared.response.model_config.get("extra") == "allow"
        scope = required_scope(app.routes[path][method])
        assert scope in (READ, ADMIN) and described["security"] == [{"bearerAuth": [scope]}]
        assert f"Scope: `{scope}`" in described["description"]
        assert "401" in described["responses"] and "503" in described["responses"]
        assert ("403" in described["responses"]) == (scope == ADMIN)
        names = {(parameter["in"], parameter["name"]) for parameter in described.get("parameters", [])}
        assert {("path", name) for name in app.routes[path][method].view_args} <= names
        if declared.query is not None:
            assert {("query", field.alias or name) for name, field in declared.query.model_fields.items()} <= names
            assert "400" in described["responses"]
    assert set(document["paths"]) == {path for _, path in routes}, "only /api routes are described"


def test_every_reference_resolves_to_one_model_of_that_name(document: dict[str, Any]) -> None:
    """Two models with one class name would be told apart by pydantic under other names: their $refs would dangle."""
    references: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                references.add(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    defined = {f"#/components/schemas/{name}" for name in document["components"]["schemas"]}
    assert references and references <= defined, references - defined


def test_the_request_body_and_query_parameters_come_from_their_models(document: dict[str, Any]) -> None:
    create = document["paths"]["/api/deliveries"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/DeliveryIn"}
    assert set(_resolve(document, body)["required"]) >= {"name", "subject", "from_address", "html", "recipients"}
    assert set(create["responses"]) >= {"201", "400", "401", "403"}
    logs = {parameter["name"]: parameter for parameter in
            document["paths"]["/api/deliveries/{delivery_id}/logs"]["get"]["parameters"]}
    assert logs["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000}
    assert "failed" in logs["status"]["schema"]["enum"] and logs["status"]["required"] is False
    assert logs["format"]["schema"]["enum"] == ["json", "csv"]


def test_csv_answers_are_described_with_their_link_header(document: dict[str, Any]) -> None:
    for path in ("/api/deliveries/{delivery_id}/logs", "/api/recipients/{recipient_id}/tracking"):
        answer = document["paths"][path]["get"]["responses"]["200"]
        assert set(answer["content"]) == {"application/json", "text/csv"}
        assert "Link" in answer["headers"]


def test_a_route_without_a_declared_operation_is_refused() -> None:
    route = SimpleNamespace(view_args=[], view_name="undeclared", authorizer=None)
    fake = SimpleNamespace(routes={"/api/undeclared": {"GET": route}})
    with pytest.raises(openapi.RouteNotDeclared, match="GET /api/undeclared"):
        openapi.build(fake)


def test_an_operation_cannot_be_declared_twice() -> None:
    from chalicelib.api.models import WorkflowRun

    with pytest.raises(ValueError, match="declared twice"):
        operations.operation("POST", "/api/workflow/run", response=WorkflowRun, summary="again", tag="operations")(
            lambda request: None)


def test_query_parameters_are_parsed_into_their_model_or_refused_with_each_reason() -> None:
    from chalicelib.deliveries.models import DeliveryLogsQuery

    request = SimpleNamespace(query_params={"limit": "20", "status": "failed", "other": "ignored", "next": ""})
    query = operations.parse_query(request, DeliveryLogsQuery)  # type: ignore[arg-type]
    assert (query.limit, query.status, query.next) == (20, "failed", None)
    with pytest.raises(BadRequest) as refused:
        operations.parse_query(SimpleNamespace(query_params={"limit": "x", "status": "lost"}),  # type: ignore[arg-type]
                               DeliveryLogsQuery)
    assert [item["field"] for item in refused.value.fields] == ["limit", "status"]
    assert "limit" in refused.value.message and "status" in refused.value.message
