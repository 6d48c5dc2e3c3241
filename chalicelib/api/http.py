"""JSON in, JSON out, and every failure a clear answer.

Handlers raise; `api_handler` turns what they raise into a 4xx naming the
problem (the field, the missing thing, the conflicting state) or a 503 when
AWS could not be reached. No stack trace ever reaches a client.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import logging
from typing import Any, Callable, Mapping, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from chalice import Response
from chalice.app import Request
from pydantic import BaseModel, ValidationError

from chalicelib.errors import Conflict, InvalidField, NotFound

logger = logging.getLogger("sendtrail.api")
Model = TypeVar("Model", bound=BaseModel)


class BadRequest(Exception):
    def __init__(self, message: str, fields: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body=json.dumps(body, separators=(",", ":"), default=str), status_code=status,
                    headers={"Content-Type": "application/json", "Cache-Control": "no-store", **(headers or {})})


def model_response(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A response model as the JSON body (its aliases, None as null unless the field excludes it)."""
    return Response(body=model.model_dump_json(by_alias=True), status_code=status,
                    headers={"Content-Type": "application/json", "Cache-Control": "no-store", **(headers or {})})


def error_response(status: int, code: str, message: str, fields: list[dict[str, str]] | None = None) -> Response:
    body: dict[str, Any] = {"error": code, "message": message}
    if fields:
        body["fields"] = fields
    return json_response(body, status)


def field_path(location: tuple[Any, ...]) -> str:
    """('recipients', 2, 'email') -> 'recipients[2].email'."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path or "body"


def parse_body(request: Request, model: type[Model]) -> Model:
    """The request's JSON body as `model`, or BadRequest naming each bad field."""
    raw = request.raw_body
    if not raw:
        raise BadRequest("the request body must be a JSON object")
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise BadRequest("the request body must be a JSON object")
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise refusal(error, "invalid request") from None


def refusal(error: ValidationError, what: str, whole: str = "body") -> BadRequest:
    """A 400 naming each invalid field (`whole` when the error is about all of them) and the first five reasons."""
    fields = [{"field": field_path(tuple(detail["loc"])) if detail["loc"] else whole, "message": detail["msg"]}
              for detail in error.errors()]
    summary = "; ".join(f"{item['field']}: {item['message']}" for item in fields[:5])
    return BadRequest(f"{what}: {summary}", fields)


def query_params(request: Request) -> Mapping[str, str]:
    """The request's query parameters (Chalice gives None when there are none)."""
    return request.query_params or {}


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = query_params(request).get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number", [{"field": name, "message": "not a whole number"}]) from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}",
                         [{"field": name, "message": f"between {low} and {high}"}])
    return value


def decode_cursor(request: Request, scope: str = "") -> dict[str, Any] | None:
    """The `next` query parameter: a cursor an earlier page returned (a table key), or None."""
    return cursor_value(query_params(request).get("next"), scope)


# Cursors are signed so that a client can only hand back what the API returned: a table key a client made up
# (an ExclusiveStartKey of another shape, or of another delivery's partition) would reach DynamoDB otherwise.
# The MAC key derives from the link-signing ring (every key verifies, the active one signs: a rotation keeps
# open listings working) and covers the scope, the listing the cursor belongs to.
_CURSOR_PURPOSE = b"sendtrail api cursor v1"
_CURSOR_MAC_BYTES = 16


def _cursor_mac(secret: bytes, scope: str, body: str) -> bytes:
    key = hmac.new(secret, _CURSOR_PURPOSE, hashlib.sha256).digest()
    return hmac.new(key, f"{scope}\n{body}".encode(), hashlib.sha256).digest()[:_CURSOR_MAC_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cursor_value(raw: str | None, scope: str = "") -> dict[str, Any] | None:
    """A `next` cursor this listing (`scope`) returned, verified and decoded; None for none; a 400 for anything
    else: garbled, tampered with, made up, or returned by another listing."""
    if not raw:
        return None
    from chalicelib.settings import get_settings

    refused = BadRequest("next is not a cursor this listing returned (start again without it)",
                         [{"field": "next", "message": "invalid"}])
    body, _, signature = raw.partition(".")
    try:
        mac = _unb64(signature)
        if not body or not any(hmac.compare_digest(mac, _cursor_mac(secret, scope, body))
                               for secret in get_settings().keyring().keys.values()):
            raise refused
        cursor = json.loads(_unb64(body))
    except (ValueError, binascii.Error):
        raise refused from None
    if not isinstance(cursor, dict) or not cursor:
        raise refused
    return cursor


def encode_cursor(key: dict[str, Any] | None, scope: str = "") -> str | None:
    """The cursor of the page after this one, for the listing `scope` (see cursor_value); None on the last page."""
    if not key:
        return None
    from chalicelib.settings import get_settings

    body = _b64(json.dumps(key, separators=(",", ":")).encode())
    return f"{body}.{_b64(_cursor_mac(get_settings().keyring().active_secret, scope, body))}"


def query_choice(request: Request, name: str, choices: tuple[str, ...] | frozenset[str]) -> str | None:
    """An optional query parameter that must be one of `choices`."""
    raw = query_params(request).get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        allowed = ", ".join(sorted(choices))
        raise BadRequest(f"{name} must be one of {allowed}", [{"field": name, "message": f"one of {allowed}"}])
    return raw


def api_handler(function: Callable[..., Response]) -> Callable[..., Response]:
    """Map what a handler raises to a clear JSON answer."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return function(*args, **kwargs)
        except BadRequest as error:
            return error_response(400, "invalid_request", error.message, error.fields)
        except InvalidField as error:
            return error_response(400, "invalid_request", f"{error.field}: {error.message}",
                                  [{"field": error.field, "message": error.message}])
        except NotFound as error:
            return error_response(404, "not_found", str(error))
        except Conflict as error:
            return error_response(409, getattr(error, "code", "conflict"), str(error))
        except (ClientError, BotoCoreError):
            logger.exception("AWS call failed")
            return error_response(503, "service_unavailable", "a backing AWS service did not answer; retry shortly")

    return wrapper
