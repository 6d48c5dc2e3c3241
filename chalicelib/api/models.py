"""What every /api route may answer besides its own model, and the operational answers (status, workflow runs).

Response models are documentation as much as code: their field descriptions
are the API reference (GET /api/openapi.json, GET /docs).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.errors import InvalidField
from chalicelib.reports.models import TrackingLogEntry


class FieldError(BaseModel):
    field: str = Field(description="the parameter or body field, e.g. `bucket` or `recipients[2].email`")
    message: str


class ErrorBody(BaseModel):
    """Every 4xx and 5xx the API itself answers."""

    error: str = Field(description="a stable code: invalid_request, not_found, conflict, service_unavailable, ...")
    message: str = Field(description="what is wrong, for a person")
    fields: Optional[list[FieldError]] = Field(default=None, exclude_if=lambda value: value is None,
                                               description="each invalid field or parameter (400 only)")


class GatewayError(BaseModel):
    """API Gateway's own answer when the authorizer refuses the request (no token, wrong token)."""

    message: Optional[str]


class MissingScope(BaseModel):
    """403: the token is valid but its scope does not cover the route (chalicelib/auth.py)."""

    message: str
    missing_scope: Literal["read", "admin"]


class ComponentStatus(BaseModel):
    component: str
    status: Literal["OK", "WARN", "FAIL"]
    reason: str
    details: dict[str, Any] = Field(default_factory=dict)


class StatusReport(BaseModel):
    """Campaign's pdump and /r/test in one: each component's state and why."""

    status: Literal["OK", "WARN", "FAIL"] = Field(description="the worst component status")
    checked_at: int = Field(description="epoch milliseconds")
    components: list[ComponentStatus]


class WorkflowRun(BaseModel):
    """The statistics of one tracking workflow run (chalicelib/tracking/workflow.py)."""

    model_config = ConfigDict(extra="allow")

    status: str = Field(description="completed, idle or busy")
    run: Optional[int] = None
    objects: int = 0
    lines: int = 0
    hits_accepted: int = 0
    rejected: dict[str, int] = Field(default_factory=dict, description="rejected hits per reason")
    duplicates: int = 0
    duration_ms: int = 0


# --- query parameters shared by the paged routes that also answer CSV ---------

MAX_JSON_PAGE, MAX_CSV_PAGE = 200, 1000


class QueryParameters(BaseModel):
    """Query parameters: unknown ones are ignored, as API Gateway passes them all."""

    model_config = ConfigDict(extra="ignore")


class PagedExportQuery(QueryParameters):
    limit: Optional[int] = Field(default=None, ge=1, le=MAX_CSV_PAGE,
                                 description=f"items per page: 50 by default ({MAX_CSV_PAGE} as CSV), at most "
                                             f"{MAX_JSON_PAGE} as JSON and {MAX_CSV_PAGE} as CSV")
    next: Optional[str] = Field(default=None, description="the `next` of the previous page (as CSV: the Link "
                                                          "header's next address)")
    format: Optional[Literal["json", "csv"]] = Field(default=None, description="csv: the same page as CSV "
                                                     "(or send Accept: text/csv)")

    def page_size(self, as_csv: bool) -> int:
        """The page's size: the limit asked for, or the format's default; a JSON page is at most MAX_JSON_PAGE."""
        if self.limit is None:
            return MAX_CSV_PAGE if as_csv else 50
        if not as_csv and self.limit > MAX_JSON_PAGE:
            raise InvalidField("limit", f"at most {MAX_JSON_PAGE} as JSON ({MAX_CSV_PAGE} as CSV)")
        return self.limit


# --- the reports' query parameters (their answers: chalicelib/reports/models.py) ---

class UrlsQuery(QueryParameters):
    group: Literal["url", "label", "category"] = Field(
        default="url", description="sum the URLs with the same URL, label or category (Campaign's grouping)")
    format: Optional[Literal["json", "csv"]] = Field(default=None, description="csv: the rows as CSV "
                                                     "(or send Accept: text/csv)")


class TimelineQuery(QueryParameters):
    bucket: Literal["5m", "1h", "1d"] = Field(default="5m", description="the windows' length (UTC-aligned)")


class BreakdownQuery(QueryParameters):
    by: Literal["os", "device", "browser", "client"] = Field(default="os", description="the user agent's "
                                                             "operating system, device, browser or email client")



class DeliveryTrackingQuery(QueryParameters):
    kind: Optional[Literal["click", "open", "optout", "mirror"]] = Field(
        default=None, description="only the hits of this kind")
    limit: int = Field(default=50, ge=1, le=200, description="hits per page")
    next: Optional[str] = Field(default=None, description="the `next` of the previous page")


class DeliveryTrackingPage(BaseModel):
    """The delivery's Tracking tab: its tracking logs newest first, a page at a time (an index, never a scan)."""

    delivery_id: str
    kind: Optional[Literal["click", "open", "optout", "mirror"]] = Field(description="the kind asked for; null: all")
    items: list[TrackingLogEntry] = Field(description="newest first")
    next: Optional[str] = Field(description="pass as ?next= for the following page; null on the last")


class ThroughputQuery(QueryParameters):
    """`from` and `to` are epoch milliseconds (the model names them start and end: `from` is Python's)."""

    start: Optional[int] = Field(default=None, alias="from", ge=0,
                                 description="the range's start, epoch ms (default: 24 hours before `to`)")
    end: Optional[int] = Field(default=None, alias="to", ge=0, description="the range's end, epoch ms (default: now)")
    bucket: Literal["1h", "1d"] = Field(default="1h", description="messages per hour or per day (UTC)")
