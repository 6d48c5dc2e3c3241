"""The API's description: GET /api/openapi.json (authenticated) and the reference page GET /docs.

The reference page is Swagger UI from a Python package (swagger-ui-bundle-v2:
Swagger UI 5, which reads OpenAPI 3.1), served by the app itself, no CDN.
The page and its scripts hold nothing secret, so they are public, like a
login page; the document is not: the page asks for the API token, keeps it
in the tab's sessionStorage and sends it as `Authorization: Bearer` when it
loads the document and with every "Try it out" request.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from chalice import Response
from chalice.app import Request
from pydantic import BaseModel, ConfigDict

from chalicelib.api.operations import operation
from chalicelib.base_url import stage_prefix

PAGE_DIRECTORY = Path(__file__).with_name("docs_page")
SWAGGER_UI_FILES = ("swagger-ui-bundle.js", "swagger-ui.css")  # all of the package the page uses
# name -> (content type, where it comes from): our page and script, and Swagger UI's two files.
ASSETS = {
    "docs.js": "text/javascript; charset=utf-8",
    "docs.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "font-src 'self' data:; connect-src 'self'; form-action 'none'; base-uri 'none'; "
                           "frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


class OpenApiDocument(BaseModel):
    """An OpenAPI 3.1 document (https://spec.openapis.org/oas/v3.1.0)."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, object]
    paths: dict[str, object]


@operation("GET", "/api/openapi.json", response=OpenApiDocument, errors=(), tag="operations",
           summary="This API's OpenAPI 3.1 document")
def openapi_document(request: Request, app: Any) -> Response:
    """Generated from the app's route table and each route's declared models (the reference page: GET /docs)."""
    from chalicelib.api.openapi import document_json

    return Response(body=document_json(app, stage_prefix(request) or "/"), status_code=200,
                    headers={"Content-Type": "application/json", "Cache-Control": "no-store"})


@functools.lru_cache(maxsize=None)
def _asset(name: str) -> str:
    if name in SWAGGER_UI_FILES:
        from swagger_ui_bundle import swagger_ui_path

        return (Path(str(swagger_ui_path)) / name).read_text(encoding="utf-8")
    return (PAGE_DIRECTORY / name).read_text(encoding="utf-8")


def page(request: Request) -> Response:
    """GET /docs: the reference page (it asks for the token, then loads the document)."""
    return Response(body=_asset("docs.html"), status_code=200,
                    headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache", **PAGE_HEADERS})


def asset(request: Request, name: str) -> Response:
    """GET /docs/{name}: the page's script and style, Swagger UI's bundle and style; 404 for anything else."""
    if name not in ASSETS:
        return Response(body="not found", status_code=404,
                        headers={"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"})
    return Response(body=_asset(name), status_code=200,
                    headers={"Content-Type": ASSETS[name], "Cache-Control": "public, max-age=3600",
                             "X-Content-Type-Options": "nosniff"})
