"""The breakdown of opens and clicks by operating system, device, browser or mail client.

The workflow classifies each user agent once and keeps counters per family
(grouped in the tally items, data/counters.py, or one item per family from
older versions); this reads one dimension's (two Queries) and gives each
value's share of the opens and of the clicks.
"""

from __future__ import annotations

from chalicelib.data.tracking import ua_stat
from chalicelib.errors import InvalidField
from chalicelib.reports.common import stores
from chalicelib.reports.models import Breakdown, BreakdownBy, BreakdownRow
from chalicelib.settings import Settings
from chalicelib.tracking.indicators import percentage

DIMENSIONS: dict[str, str] = {"os": "os", "device": "device", "browser": "browser", "client": "mail_client"}
COUNTERS = ("opens", "clicks", "opens_human", "clicks_human")  # of each family's stats item


def breakdown(delivery_id: str, by: BreakdownBy = "os", settings: Settings | None = None) -> Breakdown:
    if by not in DIMENSIONS:
        raise InvalidField("by", f"by must be one of {', '.join(DIMENSIONS)}")
    context = stores(settings)
    context.summary(delivery_id)
    prefix = ua_stat(DIMENSIONS[by], "")
    counts = [(item["stat"][len(prefix):], *(int(item.get(name) or 0) for name in COUNTERS))
              for item in context.tracking.counter_items(delivery_id, prefix)]
    counts = [entry for entry in counts if entry[1] or entry[2]]
    opens, clicks = sum(entry[1] for entry in counts), sum(entry[2] for entry in counts)
    rows = [BreakdownRow(value=value, opens=value_opens, clicks=value_clicks,
                         opens_percent=percentage(value_opens, opens), clicks_percent=percentage(value_clicks, clicks),
                         opens_human=opens_human, clicks_human=clicks_human)
            for value, value_opens, value_clicks, opens_human, clicks_human in counts]
    rows.sort(key=lambda row: (-row.opens, -row.clicks, row.value))
    return Breakdown(delivery_id=delivery_id, by=by, opens_total=opens, clicks_total=clicks,
                     opens_total_human=sum(row.opens_human for row in rows),
                     clicks_total_human=sum(row.clicks_human for row in rows), rows=rows)
