"""The reports' answers: pydantic models, each number saying what it counts (people or hits)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

OPENS_COUNTED = "open hits counted after the 1-minute rule (total opens, not people)"
CLICKS_COUNTED = "click hits (total clicks, not people)"
OPENS_HUMAN = "people's open hits (no privacy proxy, scanner or crawler), after the 1-minute rule among them"
CLICKS_HUMAN = "people's click hits (no scanner, crawler or burst)"


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
    opens_human: ReactionSeries = Field(description="the same over people's opens only")
    clicks_human: ReactionSeries = Field(description="the same over people's clicks only")
    curve: list[CurvePoint] = Field(description="the cumulative shares at the end of each window with hits")


# --- timeline -----------------------------------------------------------------------

Bucket = Literal["5m", "1h", "1d"]


class TimelineBucket(_Report):
    start: int = Field(description="window start (ms since the epoch, UTC-aligned)")
    opens: int = Field(description=OPENS_COUNTED)
    clicks: int = Field(description=CLICKS_COUNTED)
    opens_human: int = Field(description=OPENS_HUMAN)
    clicks_human: int = Field(description=CLICKS_HUMAN)


class Timeline(_Report):
    delivery_id: str
    bucket: Bucket
    bucket_ms: int
    buckets: list[TimelineBucket] = Field(description="windows with hits, oldest first (empty windows left out)")
    opens_total: int = Field(description=OPENS_COUNTED)
    clicks_total: int = Field(description=CLICKS_COUNTED)
    opens_total_human: int = Field(description=OPENS_HUMAN)
    clicks_total_human: int = Field(description=CLICKS_HUMAN)


# --- URLs and click streams ---------------------------------------------------------

UrlGroup = Literal["url", "label", "category"]


class UrlRow(_Report):
    key: str = Field(description="the URL, label or category the row sums ('' for URLs without a category)")
    url_ids: list[int]
    urls: list[str] = Field(description="the distinct URLs summed ('' for sendtrail's unsubscribe and mirror pages)")
    labels: list[str]
    types: list[str] = Field(description="the URL types summed: click, optout, mirror")
    clicks_total: int = Field(description="hits on the row's URLs")
    clicks_unique: int = Field(description="recipients who clicked, summed over the row's URLs as Campaign sums them "
                                           "(a recipient who clicked two of its URLs counts twice)")
    clicks_total_rate: float = Field(description="clicks_total as a % of success (messages delivered)")
    clicks_unique_rate: float = Field(description="clicks_unique as a % of success")
    share_percent: float = Field(description="clicks_total as a % of all the delivery's URL hits")
    clicks_total_human: int = Field(description="people's hits on the row's URLs (no scanner, crawler or burst)")
    clicks_unique_human: int = Field(description="recipients a person was seen clicking, summed as clicks_unique")


class UrlsReport(_Report):
    delivery_id: str
    group: UrlGroup
    success: int = Field(description="messages accepted by the provider (the rates' base)")
    clicks_total: int = Field(description="hits on every tracked URL of the delivery (clicks, opt-outs, mirror views)")
    clicks_total_human: int = Field(description="people's hits on every tracked URL of the delivery")
    rows: list[UrlRow] = Field(description="most clicked first")


# --- hot clicks ---------------------------------------------------------------------

HOT_LINK_ATTRIBUTE = "data-sendtrail-link"


class HotLink(_Report):
    url_id: int = Field(description=f"the link's id; its tags carry {HOT_LINK_ATTRIBUTE}=\"<url_id>\" in `html`")
    url: str = Field(description="the target as written, placeholders included")
    label: str
    clicks_total: int = Field(description="click hits on the link")
    clicks_unique: int = Field(description="recipients who clicked the link")
    percent: float = Field(description="clicks_total as a % of all the delivery's URL hits")
    in_html: bool
    in_text: bool


class TextSegment(_Report):
    text: str = Field(description="literal text, or the link's URL as written")
    url_id: Optional[int] = Field(default=None, description="set when the segment is a tracked link shown")


class HotClicks(_Report):
    delivery_id: str
    subject: str = Field(description="as written: placeholders stay placeholders")
    clicks_total: int = Field(description="hits on every tracked URL (clicks, opt-outs, mirror views): the 100%")
    links: list[HotLink] = Field(description="the message's click links, in order of first appearance")
    shown_percent: float = Field(description="the links' share of clicks_total")
    hidden_clicks: int = Field(description="hits on opt-out and mirror links: in the total, not shown")
    hidden_percent: float
    marker_attribute: str = Field(default=HOT_LINK_ATTRIBUTE)
    html: str = Field(description="the message's HTML as written (placeholders as placeholders, no open pixel), "
                                  "each shown link's tag marked with marker_attribute; the author's markup: "
                                  "display it sandboxed")
    text: Optional[list[TextSegment]] = Field(description="the text part, when there is one, in segments")


# --- breakdown by user agent -------------------------------------------------------

BreakdownBy = Literal["os", "device", "browser", "client"]


class BreakdownRow(_Report):
    value: str = Field(description="the family (e.g. iOS, Mobile, Chrome, Gmail (image proxy)); Other when unknown")
    opens: int = Field(description=OPENS_COUNTED)
    clicks: int = Field(description=CLICKS_COUNTED)
    opens_percent: float = Field(description="opens as a % of the delivery's opens")
    clicks_percent: float = Field(description="clicks as a % of the delivery's clicks")
    opens_human: int = Field(description=OPENS_HUMAN)
    clicks_human: int = Field(description=CLICKS_HUMAN)


class Breakdown(_Report):
    delivery_id: str
    by: BreakdownBy
    opens_total: int = Field(description=OPENS_COUNTED)
    clicks_total: int = Field(description=CLICKS_COUNTED)
    opens_total_human: int = Field(description=OPENS_HUMAN)
    clicks_total_human: int = Field(description=CLICKS_HUMAN)
    rows: list[BreakdownRow] = Field(description="most opens first")
