"""What the tracking routes answer: Campaign's indicators, user agents, a recipient's hits.

Every count says whether it counts people (unique: distinct recipients) or
all hits (total), in its name and in its description.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.models import PagedExportQuery


class IndicatorRates(BaseModel):
    """Each count as a percentage of success (messages the provider accepted), 2 decimals."""

    opens_unique: float
    opens_total: float
    opens_estimated: float
    clicks_unique: float
    clicks_total: float
    persons_clicking: float
    forwards_estimated: float
    optouts: float
    mirror_views: float
    opens_unique_human: float
    opens_total_human: float
    clicks_unique_human: float
    clicks_total_human: float


class MachineHits(BaseModel):
    """Hits made by machines, beside the people's: each counted under every reason it has."""

    hits: int
    by_reason: dict[str, int]


class Indicators(BaseModel):
    """Campaign's delivery indicators (chalicelib/tracking/indicators.py has the formulas)."""

    delivery_id: str
    processed: int = Field(description="delivery logs that went through preparation (all but ignored and canceled)")
    success: int = Field(description="messages the provider accepted (sent + delivered)")
    to_deliver: int
    text_only: int = Field(description="messages nobody can be seen opening (no open pixel)")
    opens_unique: int = Field(description="recipients who opened (a click implies an open)")
    opens_total: int = Field(description="open hits after the 1-minute rule")
    opens_estimated: int = Field(description="opens_unique scaled to the messages that could show an open")
    clicks_unique: int = Field(description="recipients who clicked")
    clicks_total: int = Field(description="click hits")
    persons_clicking: int = Field(description="distinct requesters clicking (recipient, user agent, IP)")
    forwards_estimated: int = Field(description="persons_clicking - clicks_unique")
    reactivity: float = Field(description="clicks_unique / opens_unique, percent")
    reactivity_estimated: float = Field(description="clicks_unique / opens_estimated, percent")
    optouts: int = Field(description="recipients who opted out")
    mirror_views: int = Field(description="mirror page hits")
    opens_unique_human: int = Field(description="recipients a person was seen opening (not a proxy or scanner)")
    opens_total_human: int = Field(description="people's open hits after the 1-minute rule")
    clicks_unique_human: int = Field(description="recipients a person was seen clicking")
    clicks_total_human: int = Field(description="people's click hits")
    reactivity_human: float = Field(description="clicks_unique_human / opens_unique_human, percent")
    machine: MachineHits
    rates: IndicatorRates
    last_updated: Optional[int] = Field(description="when the tracking workflow last counted (epoch ms); null: never")


class FamilyCount(BaseModel):
    family: str
    opens: int
    clicks: int


class UserAgentBreakdown(BaseModel):
    """Opens and clicks per operating system, device, browser and email client (all hits, not people)."""

    delivery_id: str
    os: list[FamilyCount]
    device: list[FamilyCount]
    browser: list[FamilyCount]
    mail_client: list[FamilyCount]
    definitions: dict[str, str]


class TrackingHit(BaseModel):
    """One tracking log: a recipient's open or click."""

    delivery_id: str
    log_id: int
    hit_id: str
    at: int = Field(description="epoch ms")
    kind: Literal["open", "click", "optout", "mirror"]
    url_id: int
    url: str
    label: str
    user_agent: str
    ip: str = Field(description="as the privacy setting keeps it (possibly truncated or empty)")
    counted: bool = Field(description="false for an open within a minute of the previous one (not counted)")
    hit_class: Literal["human", "machine", "unclassified"] = Field(
        alias="class", description="who made the hit: a person, or a machine (privacy proxy, link scanner, crawler); "
                                   "unclassified when stored before classification")
    reasons: list[str] = Field(description="the signals behind the class (README: people or machines)")

    model_config = ConfigDict(populate_by_name=True)


class RecipientTracking(BaseModel):
    recipient_id: str
    items: list[TrackingHit] = Field(description="newest first")
    next: Optional[str] = Field(description="pass as ?next= for the following page; null on the last")


class RecipientTrackingQuery(PagedExportQuery):
    pass
