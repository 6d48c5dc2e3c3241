"""CSV answers: one page of rows per request, the next page's address in a Link header.

Lambda behind API Gateway cannot stream a body, and a whole export in one
answer would hit the 6 MB response and 29 s limits on a large delivery. So
a CSV export is paged like the JSON it mirrors: the page's rows, and when
there are more, `Link: <?...&next=...>; rel="next"` (RFC 8288, relative to
the request's own URL). The header row is written on the first page only
(the request without `next`), so the pages appended in order are one CSV
file: `sendtrail`-style clients and curl loops need nothing else.

Cells are spreadsheet-safe: a text cell starting with = + - @ or a control
character gets a leading apostrophe (stored strings such as user agents
and labels come from the outside world; OWASP's CSV injection advice).
A list field is one cell, its items joined with " | ".
"""

from __future__ import annotations

import csv
import io
from typing import Any, Iterable
from urllib.parse import quote, urlencode

from chalice import Response
from chalice.app import Request
from pydantic import BaseModel

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
LIST_SEPARATOR = " | "  # a list field (a URL row's URLs, labels) in one cell


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return LIST_SEPARATOR.join(str(_cell(item)) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(model: type[BaseModel], rows: Iterable[BaseModel], header: bool = True) -> str:
    """`rows` as CSV, one column per field of `model` (its declared order), RFC 4180 line ends."""
    columns = [field.alias or name for name, field in model.model_fields.items()]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        values = row.model_dump(mode="json", by_alias=True)
        writer.writerow([_cell(values.get(column)) for column in columns])
    return buffer.getvalue()


def next_link(request: Request, cursor: str) -> str:
    """The following page's address, relative to this request's URL: its query with `next` replaced."""
    params = {name: value for name, value in (request.query_params or {}).items() if name != "next"}
    params["next"] = cursor
    return f'<?{urlencode(params, quote_via=quote)}>; rel="next"'


def csv_page(request: Request, model: type[BaseModel], rows: Iterable[BaseModel], next_cursor: str | None,
             first: bool, filename: str) -> Response:
    headers: dict[str, str | list[str]] = {"Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
               "Content-Disposition": f'attachment; filename="{filename}"'}
    if next_cursor:
        headers["Link"] = next_link(request, next_cursor)
    return Response(body=csv_text(model, rows, header=first), status_code=200, headers=headers)
