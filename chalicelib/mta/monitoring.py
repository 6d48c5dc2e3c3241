"""Where a delivery stands: counts, failures, throughput, and why it is not moving.

    counts      one per log status (prepared, pending, sent, delivered,
                failed, ignored, canceled), exact (the summary's counters move
                with every log), and `processed` as the indicators define it
                (chalicelib/tracking/indicators.py: every log but the ignored
                and canceled ones)
    failures    per failure type (hard, soft, ignored): total, and per reason
                its Campaign code and count
    throughput  while and after sending: messages SES accepted per hour and
                the raw messages' size in bits per second, over the time from
                the first accepted message to the last one (or to now while the
                delivery is in progress)
    stalled     a delivery that should be sending and is not, with `reason`
                {code, message, since}, first match in this order:
                affinity_not_configured   the affinity, its configuration set or its dedicated IP
                                          pool is not configured (affinities.check, as the worker)
                ses_sending_paused        SES sending is paused (account, or the
                                          configuration set as the worker found)
                ses_daily_quota           the account's 24-hour quota is used up
                job_stalled               nothing moved for `send_stall_seconds`
                                          (no send worker took it, or they stopped)

The SES checks (one GetConfigurationSet, one GetAccount) are made only for a
delivery in start_pending or in_progress, when one delivery is asked for.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from chalicelib.data import mailer
from chalicelib.errors import AffinityNotConfigured
from chalicelib.mta import affinities, states, statuses
from chalicelib.mta.reasons import FAILURE_TYPES, REASON_CODES
from chalicelib.settings import Settings
from chalicelib.tracking.indicators import delivery_volumes, mapping_at

SUMMARY_FIELDS = ("name", "subject", "from_address", "affinity", "configuration_set", "validity_days", "tracking",
                  "state", "state_since", "recipients", "created_at", "start_requested_at", "started_at",
                  "paused_at", "resumed_at", "stopped_at", "finished_at", "failure")


def counts(summary: Mapping[str, Any]) -> dict[str, int]:
    stored = mapping_at(summary, "counts")
    view = {status: max(0, int(stored.get(status) or 0)) for status in statuses.STATUSES}
    return {"processed": delivery_volumes(summary)["processed"], **view}


def failures(summary: Mapping[str, Any]) -> dict[str, Any]:
    stored = mapping_at(summary, "failures")
    view = {}
    for failure_type in FAILURE_TYPES:
        reasons = mapping_at(stored, failure_type)
        rows: list[dict[str, Any]] = sorted(({"reason": reason, "code": REASON_CODES.get(reason), "count": int(count)}
                       for reason, count in reasons.items() if int(count or 0) > 0),
                      key=lambda row: (-row["count"], row["reason"]))
        view[failure_type] = {"total": sum(row["count"] for row in rows), "reasons": rows}
    return view


def throughput(summary: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    sent = int(summary.get("messages_sent") or 0)
    first = summary.get("first_sent_at")
    if not sent or first is None:
        return {"messages": 0, "bytes": 0, "messages_per_hour": 0.0, "bits_per_second": 0.0, "seconds": 0.0}
    end = now_ms if summary.get("state") == states.IN_PROGRESS else int(summary.get("last_sent_at") or first)
    seconds = max(1.0, (end - int(first)) / 1000)
    size = int(summary.get("bytes_sent") or 0)
    return {"messages": sent, "bytes": size, "messages_per_hour": round(sent * 3600 / seconds, 1),
            "bits_per_second": round(size * 8 / seconds, 1), "seconds": round(seconds, 1)}


def stall(summary: Mapping[str, Any], settings: Settings, now_ms: int) -> Optional[dict[str, Any]]:
    """Why a delivery that should be sending is not, or None (also None when it is not meant to send)."""
    state = summary.get("state")
    if state not in states.SENDING:
        return None
    since = int(summary.get("state_since") or now_ms)
    try:
        affinities.check(summary.get("affinity"), settings)  # the same check the send worker makes
    except AffinityNotConfigured as error:
        return {"code": "affinity_not_configured", "message": str(error), "since": since}
    blocked = summary.get("blocked") if isinstance(summary.get("blocked"), Mapping) else None
    ses = mailer.get_account()
    if ses.get("SendingEnabled") is False:
        return {"code": "ses_sending_paused", "message": "SES sending is paused for the account",
                "since": (blocked or {}).get("since", since)}
    quota = ses.get("SendQuota") or {}
    maximum, sent = float(quota.get("Max24HourSend", -1)), float(quota.get("SentLast24Hours") or 0)
    if 0 <= maximum <= sent:
        return {"code": "ses_daily_quota", "message": f"the SES daily quota is used up ({sent:g} of "
                f"{maximum:g} in the last 24 h)", "since": (blocked or {}).get("since", since)}
    if blocked and blocked.get("code") == "ses_sending_paused":
        return dict(blocked)
    last = stalled_since(summary, settings, now_ms)
    if last is not None:
        what = ("no send worker has taken it" if state == states.START_PENDING
                else "its send workers stopped making progress")
        return {"code": "job_stalled", "message": f"{what} (is the send worker running? are chunks in the "
                                                  "dead-letter queue?)", "since": last}
    return None


def stalled_since(summary: Mapping[str, Any], settings: Settings, now_ms: int) -> Optional[int]:
    """When a sending delivery last moved, if that is `send_stall_seconds` ago or more; else None.

    From the summary alone (no AWS call): the job_stalled rule, which the
    delivery monitor (gauges.py) counts for every sending delivery.
    """
    last = max(int(summary.get("last_progress_at") or 0), int(summary.get("state_since") or now_ms))
    return last if now_ms - last >= settings.send_stall_seconds * 1000 else None


def summary_view(delivery_id: str, summary: Mapping[str, Any]) -> dict[str, Any]:
    """A delivery in a list: its summary fields and counts (no AWS call)."""
    return {"id": delivery_id, **{name: summary[name] for name in SUMMARY_FIELDS if name in summary},
            "counts": counts(summary)}


def delivery_view(delivery_id: str, summary: Mapping[str, Any], settings: Settings, now_ms: int) -> dict[str, Any]:
    """One delivery: summary_view, failures, throughput, and stalled/reason."""
    reason = stall(summary, settings, now_ms)
    return {**summary_view(delivery_id, summary), "failures": failures(summary),
            "throughput": throughput(summary, now_ms), "stalled": reason is not None, "reason": reason}
