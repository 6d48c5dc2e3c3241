"""Campaign's statistics by recipient domain: where a mailbox provider refuses or ignores the sender.

The counters per (delivery, domain) are kept where each event is counted
once (chalicelib/data/domain_stats.py; the large mailbox providers' opens
and clicks in the delivery's tally, data/counters.py); this reads them with
two Queries and keeps the top domains by messages sent, summing the rest as
"other".
"""

from __future__ import annotations

from typing import Mapping

from chalicelib.data.domain_stats import COUNTERS, DOMAIN_PREFIX
from chalicelib.reports.common import stores
from chalicelib.reports.models import DomainRow, DomainsReport
from chalicelib.settings import Settings
from chalicelib.tracking.indicators import percentage

OTHER = "other"
TOP = 10


def _row(domain: str, domains: int, counts: Mapping[str, int]) -> DomainRow:
    sent = counts["sent"]
    rates = {f"{name}_rate": percentage(counts[name], sent)
             for name in ("delivered", "bounces_hard", "bounces_soft", "complaints", "opens", "clicks", "opens_human",
                          "clicks_human")}
    return DomainRow(domain=domain, domains=domains, **{name: counts[name] for name in COUNTERS}, **rates)


def _sum(rows: list[dict[str, int]]) -> dict[str, int]:
    return {name: sum(row[name] for row in rows) for name in COUNTERS}


def domains(delivery_id: str, top: int = TOP, settings: Settings | None = None) -> DomainsReport:
    """The `top` domains by messages sent (then by name), the rest as "other", and the total."""
    context = stores(settings)
    context.summary(delivery_id)
    counted = sorted(((item["stat"][len(DOMAIN_PREFIX):], {name: max(0, int(item.get(name) or 0)) for name in COUNTERS})
                      for item in context.tracking.counter_items(delivery_id, DOMAIN_PREFIX)),
                     key=lambda entry: (-entry[1]["sent"], -sum(entry[1].values()), entry[0]))
    rows = [_row(domain, 1, counts) for domain, counts in counted[:top]]
    rest = [counts for _, counts in counted[top:]]
    if rest:
        rows.append(_row(OTHER, len(rest), _sum(rest)))
    return DomainsReport(delivery_id=delivery_id, rows=rows,
                         total=_row("all", len(counted), _sum([counts for _, counts in counted])))
