"""URLs and click streams: clicks per URL, label or category, summed as Campaign sums
"URLs or labels with the same name".

Per URL the workflow keeps total hits and distinct recipients (in the
delivery's tally items, data/counters.py; url#<id> items from older
versions). Grouping sums both: a distinct count summed over URLs is
Campaign's figure, not a count of people, and the row says so. The open
pixel (URL id 1) is not a link and is left out. Four reads: the summary,
the links item and two Queries of the URL counters.
"""

from __future__ import annotations

from typing import Any, Callable

from chalicelib.data.tracking import URL_PREFIX
from chalicelib.deliveries.links import URL_ID_OPEN
from chalicelib.errors import InvalidField
from chalicelib.reports.common import stores
from chalicelib.reports.models import UrlGroup, UrlRow, UrlsReport
from chalicelib.settings import Settings
from chalicelib.tracking.indicators import delivery_volumes, percentage

GROUPS: dict[str, Callable[[dict[str, Any]], str]] = {
    "url": lambda entry: str(entry.get("url") or entry.get("label") or ""),
    "label": lambda entry: str(entry.get("label") or ""),
    "category": lambda entry: str(entry.get("category") or ""),
}


def url_counters(delivery_id: str, context: Any) -> dict[int, tuple[int, int, int, int]]:
    """(total, unique, total_human, unique_human) per URL id from the delivery's URL counters (two Queries:
    the grouped items, and the url# items of older versions)."""
    return {int(item["stat"][len(URL_PREFIX):]): (int(item.get("total") or 0), int(item.get("unique") or 0),
                                                  int(item.get("total_human") or 0), int(item.get("unique_human") or 0))
            for item in context.tracking.counter_items(delivery_id, URL_PREFIX)}


def urls(delivery_id: str, group: UrlGroup = "url", settings: Settings | None = None) -> UrlsReport:
    """Clicks per URL, label or category, with rates of success and shares of the delivery's clicks."""
    if group not in GROUPS:
        raise InvalidField("group", f"group must be one of {', '.join(GROUPS)}")
    context = stores(settings)
    success = delivery_volumes(context.summary(delivery_id))["success"]
    links = (context.deliveries.get_links(delivery_id) or {}).get("urls") or {}
    counters = url_counters(delivery_id, context)
    rows: dict[str, dict[str, Any]] = {}
    for url_id in sorted(int(key) for key in links):
        if url_id == URL_ID_OPEN:
            continue
        entry = links[str(url_id)]
        row = rows.setdefault(GROUPS[group](entry), {"url_ids": [], "urls": [], "labels": [], "types": [],
                                                     "total": 0, "unique": 0, "total_human": 0,
                                                     "unique_human": 0})
        row["url_ids"].append(url_id)
        for name, value in (("urls", entry.get("url", "")), ("labels", entry.get("label", "")),
                            ("types", entry.get("type", "click"))):
            if value not in row[name]:
                row[name].append(value)
        for name, value in zip(("total", "unique", "total_human", "unique_human"), counters.get(url_id, (0, 0, 0, 0)),
                               strict=True):
            row[name] += value
    clicks = sum(row["total"] for row in rows.values())
    shaped = [UrlRow(key=key, url_ids=row["url_ids"], urls=row["urls"], labels=row["labels"], types=row["types"],
                     clicks_total=row["total"], clicks_unique=row["unique"],
                     clicks_total_rate=percentage(row["total"], success),
                     clicks_unique_rate=percentage(row["unique"], success),
                     share_percent=percentage(row["total"], clicks), clicks_total_human=row["total_human"],
                     clicks_unique_human=row["unique_human"])
              for key, row in rows.items()]
    shaped.sort(key=lambda row: (-row.clicks_total, -row.clicks_unique, row.url_ids[0]))
    return UrlsReport(delivery_id=delivery_id, group=group, success=success, clicks_total=clicks,
                      clicks_total_human=sum(row["total_human"] for row in rows.values()), rows=shaped)
