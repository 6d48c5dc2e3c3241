"""Each /api route's contract in one declaration: its query, its body, its answer.

`@operation("GET", "/api/...", response=Model, query=QueryModel)` on a
handler registers the contract in OPERATIONS and applies it: the query
parameters and the JSON body are parsed into their models (a 400 naming each
bad parameter otherwise), the handler gets them as `query=` and `body=`, and
the model it returns is serialised with the declared status. The OpenAPI
document (chalicelib/api/openapi.py) is generated from this registry joined
to Chalice's route table, so what it says is what the handler does.

A handler may return a chalice Response instead: CSV (declared with
`csv=True`), or an error status it declares in `errors`.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from chalice import Response
from chalice.app import Request
from pydantic import BaseModel, ValidationError

from chalicelib.api.http import api_handler, model_response, parse_body, refusal

JSON = "application/json"
CSV = "text/csv"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    description: str
    tag: str
    response: type[BaseModel]
    status: int = 200
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    csv: bool = False  # the answer is also available as text/csv (Accept or ?format=csv)
    deprecated: bool = False


OPERATIONS: dict[tuple[str, str], Operation] = {}


def parse_query(request: Request, model: type[BaseModel]) -> Any:
    """The request's query parameters as `model` (an empty value counts as absent), or a 400 naming each one."""
    params: Mapping[str, str] = request.query_params or {}
    values = {name: params[name] for name in _parameter_names(model) if params.get(name) not in (None, "")}
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise refusal(error, "invalid query parameters", whole="query") from None


def _parameter_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def wants_csv(request: Request, query: Any = None) -> bool:
    """CSV when asked by `?format=csv` or by an Accept header whose first type is text/csv (as API Gateway reads it)."""
    if query is not None and getattr(query, "format", None) == "csv":
        return True
    accept: str = request.headers.get("accept") or "" if request.headers else ""
    return accept.split(",")[0].split(";")[0].strip().lower() == CSV


def operation(method: str, path: str, *, response: type[BaseModel], summary: str, tag: str, status: int = 200,
              query: type[BaseModel] | None = None, body: type[BaseModel] | None = None,
              errors: tuple[int, ...] = (404,),
              csv: bool = False, deprecated: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Response]]:
    """Declare and apply a route's contract (see the module's docstring); `errors` lists its 4xx/5xx statuses."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Response]:
        @functools.wraps(function)
        @api_handler
        def handler(request: Request, *args: Any) -> Response:
            extra: dict[str, Any] = {}
            if query is not None:
                extra["query"] = parse_query(request, query)
            if body is not None:
                extra["body"] = parse_body(request, body)
            result = function(request, *args, **extra)
            if isinstance(result, Response):
                return result
            if not isinstance(result, response):
                raise TypeError(f"{method} {path} answered {type(result).__name__}, not {response.__name__}")
            return model_response(result, status)

        statuses = {*errors, 401, 503, *((400,) if query or body else ())}
        declared = Operation(method=method, path=path, summary=summary, tag=tag, response=response, status=status,
                             description=inspect.cleandoc(function.__doc__ or ""), query=query, body=body,
                             errors=tuple(sorted(statuses)), csv=csv,
                             deprecated=deprecated)
        if (method, path) in OPERATIONS:
            raise ValueError(f"{method} {path} is declared twice")
        OPERATIONS[(method, path)] = declared
        return handler

    return decorate
