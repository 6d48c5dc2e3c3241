"""Campaign's delivery indicators, from the delivery's counts and the consolidated tracking.

The formulas are the reference's (shared/reference/tracking-domain.md):

    success             messages accepted by the provider = counts.sent + counts.delivered
    processed           prepared + errors + success = every delivery log that went through
                        preparation: the sum of all counts except "ignored" (messages excluded
                        before sending, which Campaign does not count as processed) and
                        "canceled" (never sent: the delivery was stopped)
    opens_unique        distinct delivery logs with any tracking log (a click implies an open)
    opens_total         open hits, after the 1-minute rule
    opens_estimated     round(opens_unique x toDeliver / (toDeliver - textOnly)), 0 when the
                        denominator is 0; toDeliver = processed; textOnly = messages nobody can
                        see opening: every message has an HTML part (the API requires `html`),
                        so textOnly is 0, unless the delivery has no open pixel (tracking or
                        open tracking off), in which case every message is text-only as far as
                        opens go
    clicks_unique       distinct delivery logs with a click (URL type 1)
    clicks_total        click hits
    persons_clicking    distinct requesters clicking. Campaign counts cookies; a tracked link
                        carries none, so a requester is a recipient's (user agent, IP) pair:
                        what a cookie distinguishes (one browser on one network) and what a
                        forwarded message changes
    forwards_estimated  persons_clicking - clicks_unique
    reactivity          clicks_unique / opens_unique, in %
    reactivity_estimated clicks_unique / opens_estimated, in %
    optouts             recipients with an opt-out (once per recipient)
    mirror_views        mirror page hits
    rates               each count as a percentage of success, 0 when success is 0

People first, every hit kept (chalicelib/tracking/classify.py classifies each hit):

    opens_unique_human  distinct delivery logs with a hit by a person (not Apple's proxy, a
                        scanner, a crawler...); a person's click implies an open
    opens_total_human   people's open hits, after the 1-minute rule among them
    clicks_unique_human distinct delivery logs with a person's click
    clicks_total_human  people's click hits
    reactivity_human    clicks_unique_human / opens_unique_human, in %
    machine             {hits, by_reason: {reason: hits}}: machine hits, each counted under every
                        reason it has (so the reasons can add up to more than hits)

The indicators without _human count every hit, as Campaign does.

Rounding: half away from zero, for estimated opens and for percentages (2 decimals).
"""

from __future__ import annotations

from typing import Any, Mapping

from chalicelib.tracking.classify import REASONS

RATED = ("opens_unique", "opens_total", "opens_estimated", "clicks_unique", "clicks_total", "persons_clicking",
         "forwards_estimated", "optouts", "mirror_views", "opens_unique_human", "opens_total_human",
         "clicks_unique_human", "clicks_total_human")
HUMAN_COUNTERS = ("opens_unique_human", "opens_total_human", "clicks_unique_human", "clicks_total_human")
TRACKED_COUNTERS = ("opens_unique", "opens_total", "clicks_unique", "clicks_total", "persons_clicking", "optouts",
                    "mirror_views", *HUMAN_COUNTERS)


def mapping_at(document: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """`document[name]` when it is a mapping, else an empty one (summaries are read defensively)."""
    value = document.get(name)
    return value if isinstance(value, Mapping) else {}


def _count(counts: Mapping[str, Any], name: str) -> int:
    value: Any = counts.get(name)
    try:
        return max(0, int(value))  # counts are maintained by another workstream: read defensively
    except (TypeError, ValueError):
        return 0


def delivery_volumes(summary: Mapping[str, Any]) -> dict[str, int]:
    """processed, success, to_deliver and text_only of a delivery summary."""
    counts = mapping_at(summary, "counts")
    processed = sum(_count(counts, name) for name in counts if name not in ("ignored", "canceled"))
    success = _count(counts, "sent") + _count(counts, "delivered")
    tracking = mapping_at(summary, "tracking")
    has_pixel = bool(tracking.get("enabled", True)) and bool(tracking.get("opens", True))
    return {"processed": processed, "success": success, "to_deliver": processed,
            "text_only": 0 if has_pixel else processed}


def percentage(part: int, whole: int) -> float:
    """part / whole in %, to 2 decimals rounded half away from zero (integer arithmetic: no 3.125 -> 3.12)."""
    if whole <= 0:
        return 0.0
    return ((2 * 10_000 * part + whole) // (2 * whole)) / 100


def estimated_opens(opens: int, to_deliver: int, text_only: int) -> int:
    denominator = to_deliver - text_only
    if denominator <= 0:
        return 0
    return (2 * opens * to_deliver + denominator) // (2 * denominator)  # round half away from zero


def compute(summary: Mapping[str, Any], stats: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every indicator of one delivery, unique and total always named."""
    volumes = delivery_volumes(summary)
    stats = stats or {}
    values = {name: max(0, int(stats.get(name) or 0)) for name in TRACKED_COUNTERS}
    values["opens_estimated"] = estimated_opens(values["opens_unique"], volumes["to_deliver"], volumes["text_only"])
    values["forwards_estimated"] = max(0, values["persons_clicking"] - values["clicks_unique"])
    success = volumes["success"]
    return {
        "processed": volumes["processed"],
        "success": success,
        "to_deliver": volumes["to_deliver"],
        "text_only": volumes["text_only"],
        "opens_unique": values["opens_unique"],
        "opens_total": values["opens_total"],
        "opens_estimated": values["opens_estimated"],
        "clicks_unique": values["clicks_unique"],
        "clicks_total": values["clicks_total"],
        "persons_clicking": values["persons_clicking"],
        "forwards_estimated": values["forwards_estimated"],
        "reactivity": percentage(values["clicks_unique"], values["opens_unique"]),
        "reactivity_estimated": percentage(values["clicks_unique"], values["opens_estimated"]),
        "optouts": values["optouts"],
        "mirror_views": values["mirror_views"],
        **{name: values[name] for name in HUMAN_COUNTERS},
        "reactivity_human": percentage(values["clicks_unique_human"], values["opens_unique_human"]),
        "machine": {"hits": _count(stats, "hits_machine"),
                    "by_reason": {reason: _count(stats, f"machine_{reason}") for reason in REASONS}},
        "rates": {name: percentage(values[name], success) for name in RATED},
        "last_updated": int(stats["last_updated"]) if stats.get("last_updated") is not None else None,
    }
