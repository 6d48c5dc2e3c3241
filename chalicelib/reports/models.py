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


# --- statistics by recipient domain ----------------------------------------------

class DomainRow(_Report):
    domain: str = Field(description="the recipients' domain; 'other' sums the domains after the top ones")
    domains: int = Field(description="how many domains the row sums (1 for a domain)")
    sent: int = Field(description="messages SES accepted")
    delivered: int = Field(description="messages the mailbox provider accepted (SES Delivery events)")
    bounces_hard: int = Field(description="messages failed with a hard bounce (complaints apart)")
    bounces_soft: int = Field(description="messages failed with a soft bounce")
    complaints: int = Field(description="messages whose recipient complained")
    opens: int = Field(description="recipients who opened (any tracked hit, a machine's too): recipients, not hits")
    clicks: int = Field(description="recipients who clicked (any click, a machine's too): recipients, not hits")
    opens_human: int = Field(description="recipients a person was seen opening (a hit not made by a privacy proxy, "
                                         "link scanner, crawler or prefetch)")
    clicks_human: int = Field(description="recipients a person was seen clicking")
    delivered_rate: float = Field(description="delivered as a % of sent")
    bounces_hard_rate: float = Field(description="as a % of sent")
    bounces_soft_rate: float = Field(description="as a % of sent")
    complaints_rate: float = Field(description="as a % of sent")
    opens_rate: float = Field(description="as a % of sent")
    clicks_rate: float = Field(description="as a % of sent")
    opens_human_rate: float = Field(description="as a % of sent")
    clicks_human_rate: float = Field(description="as a % of sent")


class DomainsReport(_Report):
    delivery_id: str
    rows: list[DomainRow] = Field(description="the top domains by messages sent, then 'other' when there are more")
    total: DomainRow = Field(description="every domain")


# --- throughput across deliveries ----------------------------------------------------

ThroughputBucket = Literal["1h", "1d"]


class ThroughputRow(_Report):
    start: int = Field(description="bucket start (ms since the epoch, UTC-aligned)")
    messages: int = Field(description="messages SES accepted in the bucket, every delivery")
    bytes: int = Field(description="their raw size")
    messages_per_hour: float
    bits_per_second: float = Field(description="bytes x 8 / the bucket's seconds")


class Throughput(_Report):
    start: int = Field(description="the range asked for, widened to whole buckets: its first ms")
    end: int = Field(description="its last ms")
    bucket: ThroughputBucket
    rows: list[ThroughputRow] = Field(description="buckets with messages, oldest first")
    messages: int
    bytes: int
    peak_messages_per_hour: float


# --- the delivery's Tracking tab ---------------------------------------------------

HitKind = Literal["click", "open", "optout", "mirror"]


class TrackingCursor(_Report):
    at: int = Field(description="the time (ms) of the last hit of the previous page")
    hit_id: str


class TrackingLogEntry(_Report):
    at: int = Field(description="when (ms since the epoch)")
    kind: HitKind
    recipient_id: str = Field(description="your id of the recipient ('' if the delivery log has none)")
    log_id: int = Field(description="the recipient's delivery log in this delivery")
    url_id: int
    url: str = Field(description="the tracked URL ('' for the open pixel and sendtrail's own pages)")
    label: str
    user_agent: str
    hit_id: str
    hit_class: Literal["human", "machine", "unclassified"] = Field(
        alias="class", description="who made the hit as it counts now: a person, or a machine (privacy proxy, link "
                                   "scanner, crawler, prefetch); unclassified when stored before classification")
    reasons: list[str] = Field(description="the signals behind the class (README: people or machines)")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DeliveryTracking(_Report):
    delivery_id: str
    kind: Optional[HitKind] = Field(description="the kind asked for; null: every kind")
    items: list[TrackingLogEntry] = Field(description="every hit recorded (opens within a minute of the last "
                                                      "included), newest first")
    next: Optional[TrackingCursor] = Field(description="where the next page starts; null on the last page")
