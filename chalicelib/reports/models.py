"""The reports' answers: pydantic models, each number saying what it counts (people or hits)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

OPENS_COUNTED = "open hits counted after the 1-minute rule (total opens, not people)"
CLICKS_COUNTED = "click hits (total clicks, not people)"


class _Report(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- time to react (Campaign's tracking statistics) ---------------------------------

class Percentile(_Report):
    percent: int = Field(description="share of the series' hits reached, in %")
    seconds: Optional[float] = Field(description="seconds from the start of sending until it was reached "
                                                 "(interpolated within a 5-minute window); null without hits")


class Share(_Report):
    label: str = Field(description="the scale, e.g. 1h")
    seconds: int = Field(description="seconds after the start of sending")
    percent: float = Field(description="share of the series' hits that came by then, in %")


class CurvePoint(_Report):
    seconds: float = Field(description="seconds after the start of sending (the end of a 5-minute window)")
    opens_percent: float = Field(description="cumulative share of the opens by then, in %")
    clicks_percent: float = Field(description="cumulative share of the clicks by then, in %")


class ReactionSeries(_Report):
    counts: str = Field(description="what is counted")
    total: int = Field(description="hits in the series")
    percentiles: list[Percentile]
    shares: list[Share]


class TimeToReact(_Report):
    delivery_id: str
    started_at: Optional[int] = Field(description="start of sending (ms since the epoch); null before it")
    opens: ReactionSeries
    clicks: ReactionSeries
    curve: list[CurvePoint] = Field(description="the cumulative shares at the end of each window with hits")


# --- timeline -----------------------------------------------------------------------

Bucket = Literal["5m", "1h", "1d"]


class TimelineBucket(_Report):
    start: int = Field(description="window start (ms since the epoch, UTC-aligned)")
    opens: int = Field(description=OPENS_COUNTED)
    clicks: int = Field(description=CLICKS_COUNTED)


class Timeline(_Report):
    delivery_id: str
    bucket: Bucket
    bucket_ms: int
    buckets: list[TimelineBucket] = Field(description="windows with hits, oldest first (empty windows left out)")
    opens_total: int = Field(description=OPENS_COUNTED)
    clicks_total: int = Field(description=CLICKS_COUNTED)
