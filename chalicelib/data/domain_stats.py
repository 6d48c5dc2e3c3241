"""Statistics by recipient domain: counters per (delivery, domain) in the tracking stats table.

One item per delivery and domain, stat=domain#<domain>, kept by the code
that sees each event, inside the write that already makes that event count
once:

    sent                       the send worker, in the transaction that records SES's acceptance
    delivered, bounces_hard,   the SES events consumer (and the worker), in the transaction that
    bounces_soft, complaints   moves the log: the same deltas as the delivery's own counters
    opens, clicks              the tracking workflow, with the run guard of every stats item:
                               recipients who opened (any hit) / clicked, not hits
    opens_human, clicks_human  the same, of recipients a person was seen opening (any hit
                               classified human) / clicking (a human click): classify.py

So each counter is exactly as exact as the counter it shadows: a redelivered
SES event or a retried workflow run changes nothing twice. The workflow's
counters go to the delivery's tally items instead (data/counters.py): the
large mailbox providers' to the tally, written once a run with the
delivery's other counters, the other domains' to tally#d<n> shards sized by
the delivery's audience (an older version's runs wrote them to domain#).
Reading a delivery's domains is two Queries (begins_with domain#, the tally
items), summed.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from chalicelib.data.dynamo import to_value
from chalicelib.mta import statuses
from chalicelib.mta.reasons import DENYLISTED, HARD, SOFT

DOMAIN_PREFIX = "domain#"
UNKNOWN_DOMAIN = "(unknown)"
OUTCOMES = ("delivered", "bounces_hard", "bounces_soft", "complaints")
TRACKED = ("opens", "clicks", "opens_human", "clicks_human")  # the tracking workflow's counters
COUNTERS = ("sent",) + OUTCOMES + TRACKED


def domain_of(email: Optional[str]) -> str:
    """The address's domain, lowercased (the part after the last @)."""
    _, at, domain = (email or "").rpartition("@")
    domain = domain.strip().strip(".").lower()
    return domain if at and domain else UNKNOWN_DOMAIN


def domain_stat(domain: str) -> str:
    return f"{DOMAIN_PREFIX}{domain}"


def _outcome(status: Optional[str], failure: Optional[tuple[str, str]]) -> Optional[str]:
    """Which outcome counter a log in this status counts in, if any."""
    if status == statuses.DELIVERED:
        return "delivered"
    if status != statuses.FAILED or not failure:
        return None
    failure_type, reason = failure
    if failure_type == HARD:
        return "complaints" if reason == DENYLISTED else "bounces_hard"
    return "bounces_soft" if failure_type == SOFT else None


def outcome_deltas(from_status: str, previous_failure: Optional[tuple[str, str]], to_status: str,
                   failure: Optional[tuple[str, str]]) -> dict[str, int]:
    """The outcome counters' changes when a log moves (as the summary's status and failure counters move)."""
    before, after = _outcome(from_status, previous_failure), _outcome(to_status, failure)
    if before == after:
        return {}
    deltas = {}
    if before:
        deltas[before] = -1
    if after:
        deltas[after] = 1
    return deltas


def counter_update(table: str, delivery_id: str, stat: str, deltas: Mapping[str, int],
                   expires_at_epoch: int) -> dict[str, Any]:
    """A TransactWriteItems entry adding `deltas` to one stats item (kept as long as the tracking)."""
    names = {f"#c{index}": name for index, name in enumerate(deltas)}
    values = {f":c{index}": to_value(value) for index, value in enumerate(deltas.values())}
    values[":expires"] = {"N": str(expires_at_epoch)}
    return {"Update": {
        "TableName": table,
        "Key": {"delivery_id": {"S": delivery_id}, "stat": {"S": stat}},
        "UpdateExpression": "SET expires_at_epoch = :expires ADD "
                            + ", ".join(f"#c{index} :c{index}" for index in range(len(deltas))),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }}


def expiry(now_ms: int, retention_days: int) -> int:
    """When a counter written now expires (epoch seconds): with the tracking it describes."""
    return now_ms // 1000 + retention_days * 86_400
