"""Opens and clicks over time: Campaign's tracking statistics (time to react) and the timeline.

Both read the delivery's 5-minute windows (kept by the tracking workflow an
hour an item, bucket#h<hour>, or one a window by older versions,
bucket#<start>: one Query however many recipients) and count
hits: opens after the 1-minute rule, and clicks.

Time to react. Within a window the hits are taken as evenly spread, the
usual reading of grouped data: the cumulative count is a line through the
windows, each window running from its start (or the start of sending, if
later) to its end. "Time to X%" is when that line reaches X% of the
series' total; the share at 1 h, 3 h and 24 h is its value then. A window
that ended before sending started (a clock off by a few seconds) counts at
the start.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from chalicelib.data.tracking import BUCKET_PREFIX
from chalicelib.errors import InvalidField
from chalicelib.reports.common import sending_started_at, stores
from chalicelib.reports.models import (
    CLICKS_COUNTED,
    CLICKS_HUMAN,
    OPENS_COUNTED,
    OPENS_HUMAN,
    Bucket,
    CurvePoint,
    Percentile,
    ReactionSeries,
    Share,
    Timeline,
    TimelineBucket,
    TimeToReact,
)
from chalicelib.settings import Settings
from chalicelib.tracking.core import BUCKET_MS

PERCENTILES = (25, 50, 75, 90)
SCALES = (("1h", 3_600), ("3h", 3 * 3_600), ("24h", 24 * 3_600))
BUCKET_SIZES: dict[str, int] = {"5m": BUCKET_MS, "1h": 3_600_000, "1d": 86_400_000}

Window = tuple[int, int, int, int, int]  # (start ms, opens, clicks, people's opens, people's clicks)


def windows(delivery_id: str, settings: Settings | None = None) -> tuple[dict[str, Any], list[Window]]:
    """The delivery's summary and its non-empty 5-minute windows, oldest first (a GetItem and a Query)."""
    context = stores(settings)
    summary = context.summary(delivery_id)
    found = []
    for item in context.tracking.counter_items(delivery_id, BUCKET_PREFIX):
        opens, clicks = int(item.get("opens") or 0), int(item.get("clicks") or 0)
        if opens or clicks:
            found.append((int(item["stat"][len(BUCKET_PREFIX):]), opens, clicks, int(item.get("opens_human") or 0),
                          int(item.get("clicks_human") or 0)))
    return summary, found


# --- time to react --------------------------------------------------------------------

def _spans(starts: Iterable[int], origin: int) -> list[tuple[float, float]]:
    """Each window as seconds after `origin`: (from, to), clipped so that nothing comes before 0."""
    return [(max(0.0, (start - origin) / 1000), max(0.0, (start + BUCKET_MS - origin) / 1000)) for start in starts]


def _time_to(target: float, spans: Sequence[tuple[float, float]], counts: Sequence[int]) -> float | None:
    """Seconds until the cumulative count reaches `target` (> 0), or None when it never does."""
    before = 0
    for (low, high), count in zip(spans, counts, strict=True):
        if count and before + count >= target:
            return low + (target - before) / count * (high - low)
        before += count
    return None


def _count_by(seconds: float, spans: Sequence[tuple[float, float]], counts: Sequence[int]) -> float:
    """The cumulative count `seconds` after the origin (a window is counted pro rata)."""
    reached = 0.0
    for (low, high), count in zip(spans, counts, strict=True):
        if seconds >= high:
            reached += count
        elif seconds > low:
            reached += count * (seconds - low) / (high - low)
    return reached


def _share(part: float, whole: int) -> float:
    return round(100 * part / whole, 2) if whole else 0.0


def _series(counted: str, spans: Sequence[tuple[float, float]], counts: Sequence[int]) -> ReactionSeries:
    total = sum(counts)
    percentiles = []
    for percent in PERCENTILES:
        seconds = _time_to(total * percent / 100, spans, counts) if total else None
        percentiles.append(Percentile(percent=percent, seconds=None if seconds is None else round(seconds, 1)))
    shares = [Share(label=label, seconds=seconds, percent=_share(_count_by(seconds, spans, counts), total))
              for label, seconds in SCALES]
    return ReactionSeries(counts=counted, total=total, percentiles=percentiles, shares=shares)


def time_to_react(delivery_id: str, settings: Settings | None = None) -> TimeToReact:
    """How long it took to reach 25, 50, 75 and 90% of the opens and of the clicks, and the share by 1/3/24 h."""
    summary, found = windows(delivery_id, settings)
    started = sending_started_at(summary)
    origin = started if started is not None else (found[0][0] if found else 0)
    spans = _spans((window[0] for window in found), origin)
    opens = [window[1] for window in found]
    clicks = [window[2] for window in found]
    curve, opened, clicked = [], 0, 0
    for (_, high), window_opens, window_clicks in zip(spans, opens, clicks, strict=True):
        opened += window_opens
        clicked += window_clicks
        curve.append(CurvePoint(seconds=high, opens_percent=_share(opened, sum(opens)),
                                clicks_percent=_share(clicked, sum(clicks))))
    return TimeToReact(delivery_id=delivery_id, started_at=started, opens=_series(OPENS_COUNTED, spans, opens),
                       clicks=_series(CLICKS_COUNTED, spans, clicks),
                       opens_human=_series(OPENS_HUMAN, spans, [window[3] for window in found]),
                       clicks_human=_series(CLICKS_HUMAN, spans, [window[4] for window in found]), curve=curve)


# --- timeline ------------------------------------------------------------------------

def timeline(delivery_id: str, bucket: Bucket = "5m", settings: Settings | None = None) -> Timeline:
    """Opens and clicks per 5 minutes, hour or day (UTC), from the stored 5-minute windows."""
    if bucket not in BUCKET_SIZES:
        raise InvalidField("bucket", f"bucket must be one of {', '.join(BUCKET_SIZES)}")
    size = BUCKET_SIZES[bucket]
    _, found = windows(delivery_id, settings)
    rolled: dict[int, list[int]] = {}
    for start, *counts in found:
        totals = rolled.setdefault(start - start % size, [0, 0, 0, 0])
        for index, count in enumerate(counts):
            totals[index] += count
    rows = [TimelineBucket(start=start, opens=opens, clicks=clicks, opens_human=opens_human, clicks_human=clicks_human)
            for start, (opens, clicks, opens_human, clicks_human) in sorted(rolled.items())]
    return Timeline(delivery_id=delivery_id, bucket=bucket, bucket_ms=size, buckets=rows,
                    opens_total=sum(row.opens for row in rows), clicks_total=sum(row.clicks for row in rows),
                    opens_total_human=sum(row.opens_human for row in rows),
                    clicks_total_human=sum(row.clicks_human for row in rows))

