"""The status check: Campaign's pdump and /r/test in one answer (GET /api/status, `sendtrail status`).

Campaign's troubleshooting starts with three questions: does /r/test
answer, is trackinglogd running, has the tracking workflow run recently and
without error. Each component below answers one, from what AWS says now,
with OK, WARN (working, but needs a look) or FAIL (broken: hits or tracking
are being lost or delayed) and the reason in words:

    hit_endpoints      the /r/test answer, the key ring the links are checked
                       with, and the URL tables a click is redirected by
    signing_keys       every key that signed links still valid is in the ring,
                       and none is announced for removal before they expire
    hit_stream         the Kinesis hit stream: status, open shards, accepts writes
    hit_fallback       where hits went when Kinesis failed (the last FALLBACK_WINDOW_MINUTES
                       of the hit path's metrics): WARN while hits take the fallback
                       delivery stream, FAIL when its puts fail too (each such hit
                       became an S3 object of its own) or a hit was recorded nowhere;
                       WARN when the fallback stream is missing or not ACTIVE
    redirection_logs   the Firehose delivery stream (trackinglogd): status,
                       reading the hit stream, writing the log bucket
    tracking_workflow  last run, last success, lag (its state item): FAIL when no
                       run succeeded in STALLED_AFTER_PERIODS schedule periods
                       (the stalled alarm's rule), WARN over BACKLOG_WARN_SECONDS of lag
    ses                sending enabled, enforcement, sandbox, 24-hour quota use
    send_work_queue    the send jobs' queue: there, and how many chunks wait,
                       are being sent or are held back (delayed)
    send_work_dlq      send jobs that failed every retry: FAIL while any is
                       there (their recipients are not sent)
    ses_events_queue   SES events waiting for the ses_events function: WARN and
                       FAIL from the settings' ses_events_queue_warn_at, _fail_at
    ses_events_dlq     SES events that failed every retry: WARN while any is
                       there (delivery logs and quarantine miss them)

Every check runs at once, each bounded (a slow service is a FAIL with its
reason, not a slow answer), and a check that raises reports why rather than
failing the others. A component is one entry of CHECKS; a queue is one
`queue_backlog(...)` or `dead_letter_queue(...)` entry, and a queue that does
not exist is a FAIL saying what that breaks.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.data import aws, health
from chalicelib.data.deliveries import DeliveryStore
from chalicelib.data.signing_keys import SigningKeyUses
from chalicelib.data.tracking import WorkflowStateStore
from chalicelib.settings import Settings

OK, WARN, FAIL = "OK", "WARN", "FAIL"
SEVERITY = {OK: 0, WARN: 1, FAIL: 2}

# The tracking workflow's schedule (app.py: every minute) and the rules its
# alarms apply (infra/template.yaml); tests/unit/test_status_rules.py keeps
# the three in step.
WORKFLOW_SCHEDULE_SECONDS = 60
STALLED_AFTER_PERIODS = 3
BACKLOG_WARN_SECONDS = 600
SES_QUOTA_WARN_PERCENT = 80
CHECK_TIMEOUT_SECONDS = 10.0
FALLBACK_WINDOW_MINUTES = 15
PROBE_DELIVERY_ID = "status-probe"  # a links item that never exists: reading it proves the table answers


@dataclass(frozen=True)
class ComponentStatus:
    component: str
    status: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusContext:
    """What a check may use: the settings, the time, and the /r/test answer of the current request."""

    settings: Settings
    now_ms: int
    redirection_status: Callable[[], Any] | None = None  # the /r/test handler, bound to the request
    tracking_base_url: str = ""


@dataclass(frozen=True)
class Check:
    component: str
    probe: Callable[[StatusContext], ComponentStatus]


def _duration(ms: int) -> str:
    seconds = max(0, ms // 1000)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def describe_error(error: BaseException) -> str:
    """An AWS error as its code and message (no stack), anything else as its type and text."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'Error')}: {details.get('Message', '')}".strip()
    return f"{type(error).__name__}: {error}"


# --- components ---------------------------------------------------------------

def hit_endpoints(context: StatusContext) -> ComponentStatus:
    """The public endpoints can answer: /r/test, the key ring, the URL tables (what every click needs)."""
    from chalicelib.hits.config import get_hit_config
    from chalicelib.keyring import KeyRingError, load_keyring

    name = "hit_endpoints"
    details: dict[str, Any] = {"url": f"{context.tracking_base_url}/r/test" if context.tracking_base_url else None}
    if context.redirection_status is not None:
        answer = context.redirection_status()
        body = answer.body if isinstance(answer.body, str) else bytes(answer.body).decode("utf-8", "replace")
        details["redirection_status"] = body.strip()
        if answer.status_code != 200 or "status='OK'" not in body:
            return ComponentStatus(name, FAIL, f"/r/test answers {answer.status_code}: {body.strip()[:200]}", details)
    config = get_hit_config()
    try:
        ring = load_keyring(config.signing_keys, config.signing_keys_parameter, config.signing_keys_max_age_seconds)
    except KeyRingError as error:
        return ComponentStatus(name, FAIL, f"links cannot be verified: {error}", details)
    except Exception as error:  # noqa: BLE001 - e.g. the SSM parameter missing or not readable
        return ComponentStatus(name, FAIL, f"links cannot be verified: the key ring cannot be read "
                                           f"({describe_error(error)})", details)
    details.update(signing_keys=len(ring.keys), active_key=ring.active_key_id)
    try:
        DeliveryStore(config.deliveries_table, config.delivery_logs_table, aws.PROBE).get_links(PROBE_DELIVERY_ID)
    except (ClientError, BotoCoreError) as error:
        return ComponentStatus(name, FAIL, f"URL tables unreadable ({config.deliveries_table}): "
                                           f"{describe_error(error)}", details)
    return ComponentStatus(name, OK, f"/r/test answers status='OK'; {len(ring.keys)} signing key(s), "
                                     f"active {ring.active_key_id}; URL tables readable", details)


def key_schedule(ring: Any, valid_until: dict[int, int], hits_in_flight_hours: int) -> list[dict[str, Any]]:
    """Each key in the ring or that signed links still kept: whether it is there and when it may go (epoch ms)."""
    from chalicelib.keyring import removable_from

    rows = []
    for key_id in sorted(set(ring.keys) | set(valid_until)):
        until = valid_until.get(key_id)
        rows.append({"key_id": key_id, "in_ring": key_id in ring.keys, "active": key_id == ring.active_key_id,
                     "links_valid_until": until,
                     "may_remove_after": removable_from(until, hits_in_flight_hours) if until else None,
                     "announced_removal": ring.remove_after.get(key_id)})
    return rows


def assess_signing_keys(rows: list[dict[str, Any]], now_ms: int) -> ComponentStatus:
    """FAIL when a key still needed is missing (its links answer "not found"); WARN when one is announced for
    removal before its links expire."""
    from chalicelib.keyring import format_time

    name = "signing_keys"
    details = {"keys": rows}
    missing = [row for row in rows if not row["in_ring"] and (row["may_remove_after"] or 0) > now_ms]
    if missing:
        return ComponentStatus(name, FAIL, "; ".join(
            f"key {row['key_id']} is missing from the ring but signed links valid until "
            f"{format_time(row['links_valid_until'])}: they answer 'not found' and their hits are rejected "
            f"(token unknown_key). Put it back until {format_time(row['may_remove_after'])}"
            for row in missing), details)
    early = [row for row in rows if row["in_ring"] and row["announced_removal"] and row["may_remove_after"]
             and row["announced_removal"] < row["may_remove_after"]]
    if early:
        return ComponentStatus(name, WARN, "; ".join(
            f"key {row['key_id']} is announced for removal after {format_time(row['announced_removal'])} but signed "
            f"links valid until {format_time(row['links_valid_until'])}: keep it until "
            f"{format_time(row['may_remove_after'])}" for row in early), details)
    retiring = [f"key {row['key_id']} may be removed after {format_time(row['may_remove_after'])}"
                for row in rows if row["in_ring"] and not row["active"] and row["may_remove_after"]]
    active = next((row["key_id"] for row in rows if row["active"]), None)
    return ComponentStatus(name, OK, "; ".join([f"{len([row for row in rows if row['in_ring']])} key(s) in the "
                                                f"ring, active {active}", *retiring]), details)


def signing_key_schedule(settings: Settings) -> list[dict[str, Any]]:
    """The ring as the functions read it, and each key's recorded dates."""
    from chalicelib.hits.config import get_hit_config
    from chalicelib.keyring import load_keyring

    config = get_hit_config()
    ring = load_keyring(config.signing_keys, config.signing_keys_parameter, config.signing_keys_max_age_seconds)
    uses = SigningKeyUses(settings.deliveries_table, aws.PROBE).valid_until()
    return key_schedule(ring, uses, settings.workflow_lookback_hours)


def signing_keys(context: StatusContext) -> ComponentStatus:
    return assess_signing_keys(signing_key_schedule(context.settings), context.now_ms)


def hit_stream(context: StatusContext) -> ComponentStatus:
    """The Kinesis hit stream exists and accepts puts (ACTIVE or UPDATING, with open shards)."""
    name, stream = "hit_stream", context.settings.hit_stream
    try:
        summary = health.stream_summary(stream)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return ComponentStatus(name, FAIL, f"the hit stream {stream} does not exist: every hit goes to the "
                                               "fallback objects", {"stream": stream})
        raise
    status, shards = summary.get("StreamStatus"), int(summary.get("OpenShardCount") or 0)
    details = {"stream": stream, "stream_status": status, "open_shards": shards,
               "retention_hours": summary.get("RetentionPeriodHours"), "encryption": summary.get("EncryptionType")}
    if status not in ("ACTIVE", "UPDATING"):
        return ComponentStatus(name, FAIL, f"the hit stream {stream} is {status}: it does not accept hits", details)
    if shards < 1:
        return ComponentStatus(name, FAIL, f"the hit stream {stream} has no open shard", details)
    return ComponentStatus(name, OK, f"{stream} {status}, {shards} open shard(s), accepts writes", details)


def hit_fallback(context: StatusContext) -> ComponentStatus:
    """Are hits taking the fallback (Kinesis puts failing), and does the fallback itself hold?"""
    from chalicelib import metrics

    name, settings, window = "hit_fallback", context.settings, FALLBACK_WINDOW_MINUTES
    names = [metrics.HIT_STREAM_PUT_FAILURES, metrics.FALLBACK_STREAM_WRITES, metrics.FALLBACK_STREAM_PUT_FAILURES,
             metrics.FALLBACK_WRITES, metrics.HITS_UNRECORDED]
    sums = health.metric_sums(metrics.NAMESPACE, names, {metrics.STAGE_DIMENSION: settings.stage}, window)
    stream = settings.redirection_log_fallback_stream
    details: dict[str, Any] = {"window_minutes": window, "sums": sums, "fallback_stream": stream}
    problems, stream_state = [], ""
    if not stream:
        problems.append("no fallback stream configured (SENDTRAIL_REDIRECTION_LOG_FALLBACK_STREAM): a hit Kinesis "
                        "refuses becomes an S3 object of its own")
    else:
        try:
            stream_state = str(health.delivery_stream(stream).get("DeliveryStreamStatus"))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            problems.append(f"the fallback stream {stream} does not exist: a hit Kinesis refuses becomes an S3 "
                            "object of its own")
        else:
            details["fallback_stream_status"] = stream_state
            if stream_state != "ACTIVE":
                problems.append(f"the fallback stream {stream} is {stream_state}")
    taken, refused = sums[metrics.HIT_STREAM_PUT_FAILURES], sums[metrics.FALLBACK_STREAM_PUT_FAILURES]
    unrecorded = sums[metrics.HITS_UNRECORDED]
    said = []
    if taken:
        said.append(f"{taken} hit(s) took the fallback in the last {window} min (Kinesis puts failed): the fallback "
                    f"stream took {sums[metrics.FALLBACK_STREAM_WRITES]}")
    if refused:
        said.append(f"the fallback stream refused {refused}: written as {sums[metrics.FALLBACK_WRITES]} object(s) "
                    "of their own (check the fallback stream and the API role)")
    if unrecorded:
        said.append(f"{unrecorded} hit(s) recorded nowhere (stream, fallback stream and bucket all failed)")
    if refused or unrecorded:
        return ComponentStatus(name, FAIL, "; ".join(said + problems), details)
    if taken or problems:
        return ComponentStatus(name, WARN, "; ".join(said + problems), details)
    return ComponentStatus(name, OK, f"no hit took the fallback in the last {window} min; fallback stream {stream} "
                                     f"{stream_state}", details)


def redirection_logs(context: StatusContext) -> ComponentStatus:
    """Firehose (trackinglogd): the delivery stream is ACTIVE, reads the hit stream, writes the log bucket."""
    name, settings = "redirection_logs", context.settings
    delivery_stream = settings.redirection_log_delivery_stream
    if not delivery_stream:
        return ComponentStatus(name, WARN, "no delivery stream configured (SENDTRAIL_REDIRECTION_LOG_DELIVERY_STREAM)")
    try:
        description = health.delivery_stream(delivery_stream)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return ComponentStatus(name, FAIL, f"the delivery stream {delivery_stream} does not exist: hits stay in "
                                               "Kinesis and reach no redirection log",
                                   {"delivery_stream": delivery_stream})
        raise
    status = description.get("DeliveryStreamStatus")
    source = (description.get("Source") or {}).get("KinesisStreamSourceDescription", {}).get("KinesisStreamARN", "")
    buckets = [destination.get("ExtendedS3DestinationDescription", destination.get("S3DestinationDescription", {}))
               .get("BucketARN", "") for destination in description.get("Destinations", [])]
    details = {"delivery_stream": delivery_stream, "delivery_stream_status": status, "source": source,
               "buckets": buckets}
    failure = description.get("FailureDescription")
    if failure:
        return ComponentStatus(name, FAIL, f"{delivery_stream} failed: {failure.get('Type')}: "
                                           f"{failure.get('Details')}", details)
    if status != "ACTIVE":
        return ComponentStatus(name, FAIL, f"{delivery_stream} is {status}: redirection logs are not written", details)
    if source and not source.endswith(f"/{settings.hit_stream}"):
        return ComponentStatus(name, FAIL, f"{delivery_stream} reads {source}, not the hit stream "
                                           f"{settings.hit_stream}", details)
    if buckets and not any(bucket.endswith(f":::{settings.redirection_log_bucket}") for bucket in buckets):
        return ComponentStatus(name, FAIL, f"{delivery_stream} writes {', '.join(buckets)}, not the redirection-log "
                                           f"bucket {settings.redirection_log_bucket}", details)
    return ComponentStatus(name, OK, f"{delivery_stream} ACTIVE, from {settings.hit_stream} to "
                                     f"{settings.redirection_log_bucket}", details)


def tracking_workflow(context: StatusContext) -> ComponentStatus:
    """Has the tracking workflow run recently, without error, and is it keeping up? (its state item)"""
    state = WorkflowStateStore(context.settings.workflow_table, aws.PROBE).get_state()
    return assess_workflow(state, context.now_ms)


def assess_workflow(state: dict[str, Any], now_ms: int) -> ComponentStatus:
    name = "tracking_workflow"
    last_run, last_success = state.get("last_run_at"), state.get("last_success_at")
    waiting = int(state.get("backlog_objects") or 0)
    oldest = state.get("oldest_waiting_at")
    # The backlog's age now, not at the last run: it keeps growing while nothing runs.
    lag = max(0, (now_ms - int(oldest)) // 1000) if waiting and oldest else int(state.get("lag_seconds") or 0)
    details = {"last_run_at": last_run, "last_run_status": state.get("last_run_status"),
               "last_success_at": last_success, "lag_seconds": lag, "last_error": state.get("last_error"),
               "backlog_objects": waiting, "backlog_exact": state.get("backlog_exact", True),
               "cursor": state.get("cursor"), "sweep_cursor": state.get("sweep_cursor"),
               "last_completed_run": state.get("last_completed_run"), "pending_run": state.get("pending_run"),
               "lease_until": state.get("lease_until")}
    backlog = (f"{'' if details['backlog_exact'] else 'at least '}{waiting} redirection log(s) waiting, the oldest "
               f"{_duration(lag * 1000)} old" if waiting else "")
    stalled_after_ms = STALLED_AFTER_PERIODS * WORKFLOW_SCHEDULE_SECONDS * 1000
    if last_success is None:
        failed = f" (last run failed: {state.get('last_error')})" if state.get("last_run_status") == "failed" else ""
        return ComponentStatus(name, FAIL, f"the tracking workflow has never run successfully{failed}", details)
    since = now_ms - int(last_success)
    if since > stalled_after_ms:
        last = (f"; last run {_duration(now_ms - int(last_run))} ago: {state.get('last_run_status')}"
                + (f" ({state.get('last_error')})" if state.get("last_run_status") == "failed" else "")
                if last_run else "")
        return ComponentStatus(name, FAIL, f"stalled: no successful run for {_duration(since)} (more than "
                                           f"{STALLED_AFTER_PERIODS} schedule periods){last}"
                                           + (f"; {backlog}" if backlog else ""), details)
    if state.get("last_run_status") == "failed":
        return ComponentStatus(name, WARN, f"the last run failed: {state.get('last_error')}; last success "
                                           f"{_duration(since)} ago", details)
    if lag > BACKLOG_WARN_SECONDS:
        return ComponentStatus(name, WARN, f"backlog: {backlog}" if backlog else
                               f"backlog: the oldest unprocessed redirection log is {_duration(lag * 1000)} old",
                               details)
    return ComponentStatus(name, OK, f"last success {_duration(since)} ago, lag {_duration(lag * 1000)}"
                                     + (f"; {backlog}" if backlog else ""), details)


def ses(context: StatusContext) -> ComponentStatus:
    """SES can send for this account: sending enabled, not shut down, within its 24-hour quota."""
    return assess_ses(health.ses_account())


def assess_ses(account: dict[str, Any]) -> ComponentStatus:
    name = "ses"
    quota = account.get("SendQuota") or {}
    maximum, sent = float(quota.get("Max24HourSend") or 0), float(quota.get("SentLast24Hours") or 0)
    used = round(100 * sent / maximum, 1) if maximum > 0 else None
    details = {"sending_enabled": account.get("SendingEnabled"), "production_access": account.get(
        "ProductionAccessEnabled"), "enforcement_status": account.get("EnforcementStatus"),
        "max_24_hour_send": maximum, "sent_last_24_hours": sent, "max_send_rate": quota.get("MaxSendRate"),
        "quota_used_percent": used}
    enforcement = account.get("EnforcementStatus") or "HEALTHY"
    if account.get("SendingEnabled") is False:
        return ComponentStatus(name, FAIL, "sending is disabled for the account: SES sends nothing", details)
    if enforcement == "SHUTDOWN":
        return ComponentStatus(name, FAIL, "SES has shut sending down for the account (enforcement SHUTDOWN)", details)
    if used is not None and used >= 100:
        return ComponentStatus(name, FAIL, f"the 24-hour quota is used up ({sent:g} of {maximum:g})", details)
    problems = []
    if enforcement != "HEALTHY":
        problems.append(f"enforcement status {enforcement} (bounces or complaints too high)")
    if account.get("ProductionAccessEnabled") is False:
        problems.append("sandbox: only verified addresses receive mail")
    if used is not None and used >= SES_QUOTA_WARN_PERCENT:
        problems.append(f"{used:g} % of the 24-hour quota used ({sent:g} of {maximum:g})")
    if problems:
        return ComponentStatus(name, WARN, "; ".join(problems), details)
    use = f"{used:g} % of the 24-hour quota used" if used is not None else "no 24-hour quota"
    return ComponentStatus(name, OK, f"sending enabled; {use}; up to {quota.get('MaxSendRate', 0):g} messages/s",
                           details)


# SQS's answer for a queue that is not there (the JSON protocol's code, and the query protocol's).
MISSING_QUEUE_CODES = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


def _queue_depth(component: str, queue_url: Callable[[Settings], str | None], if_missing: str,
                 context: StatusContext) -> tuple[str, dict[str, int]] | ComponentStatus:
    """(url, the queue's counts), or the component's status when there is no queue to count.

    No queue configured is a WARN; a configured queue that does not exist is
    a FAIL saying what that breaks (`if_missing`).
    """
    url = queue_url(context.settings)
    if not url:
        return ComponentStatus(component, WARN, "no queue configured")
    try:
        return url, health.queue_depth(url)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in MISSING_QUEUE_CODES:
            raise
        return ComponentStatus(component, FAIL, f"the queue {url.rsplit('/', 1)[-1]} does not exist: {if_missing}",
                               {"queue_url": url})


def queue_backlog(component: str, queue_url: Callable[[Settings], str | None], if_missing: str,
                  warn_at: Callable[[Settings], int] | None = None,
                  fail_at: Callable[[Settings], int] | None = None) -> Check:
    """A queue a consumer drains: WARN from `warn_at` messages waiting, FAIL from `fail_at` (None: never).

    Without thresholds the check says the queue is there and how deep it is
    (the send work queue: a large delivery queues hundreds of chunks, which is
    no fault). A queue that does not exist is a FAIL saying `if_missing`.
    """

    def probe(context: StatusContext) -> ComponentStatus:
        found = _queue_depth(component, queue_url, if_missing, context)
        if isinstance(found, ComponentStatus):
            return found
        url, depth = found
        waiting, in_flight = depth["ApproximateNumberOfMessages"], depth["ApproximateNumberOfMessagesNotVisible"]
        delayed = depth["ApproximateNumberOfMessagesDelayed"]
        details = {"queue_url": url, "waiting": waiting, "in_flight": in_flight, "delayed": delayed}
        for severity, threshold in ((FAIL, fail_at), (WARN, warn_at)):
            limit = threshold(context.settings) if threshold else None
            if limit is not None and waiting >= limit:
                return ComponentStatus(component, severity, f"{waiting} messages waiting ({severity} from {limit})",
                                       details)
        held_back = f", {delayed} delayed" if delayed else ""
        return ComponentStatus(component, OK, f"{waiting} waiting, {in_flight} in flight{held_back}", details)

    return Check(component, probe)


def dead_letter_queue(component: str, queue_url: Callable[[Settings], str | None], held_means: str,
                      if_missing: str, severity: str = FAIL) -> Check:
    """A dead-letter queue: `severity` while it holds messages, each one work that failed every retry.

    The reason is the count followed by `held_means`: what those messages
    are, what their being there costs, and what to do.
    """

    def probe(context: StatusContext) -> ComponentStatus:
        found = _queue_depth(component, queue_url, if_missing, context)
        if isinstance(found, ComponentStatus):
            return found
        url, depth = found
        held = depth["ApproximateNumberOfMessages"] + depth["ApproximateNumberOfMessagesNotVisible"]
        details = {"queue_url": url, "messages": held}
        if held:
            return ComponentStatus(component, severity, f"{held} {held_means}", details)
        return ComponentStatus(component, OK, "empty", details)

    return Check(component, probe)


CHECKS: list[Check] = [
    Check("hit_endpoints", hit_endpoints),
    Check("signing_keys", signing_keys),
    Check("hit_stream", hit_stream),
    Check("hit_fallback", hit_fallback),
    Check("redirection_logs", redirection_logs),
    Check("tracking_workflow", tracking_workflow),
    Check("ses", ses),
    queue_backlog("send_work_queue", lambda settings: settings.send_queue_url,
                  if_missing="send jobs cannot be queued: sending a delivery fails"),
    dead_letter_queue(
        "send_work_dlq", lambda settings: settings.send_dead_letter_queue_url,
        held_means="send job(s) failed every retry: their recipients are not sent and the delivery shows as "
                   "stalled. Fix the cause (the send worker's log), then redrive them to the send work queue "
                   "(a chunk never sends a message twice)",
        if_missing="send jobs that fail every retry have nowhere to go"),
    queue_backlog("ses_events_queue", lambda settings: settings.ses_events_queue_url,
                  if_missing="SES events reach no delivery log: deliveries, bounces and complaints go unrecorded",
                  warn_at=lambda settings: settings.ses_events_queue_warn_at,
                  fail_at=lambda settings: settings.ses_events_queue_fail_at),
    dead_letter_queue(
        "ses_events_dlq", lambda settings: settings.ses_events_dead_letter_queue_url,
        held_means="SES event(s) failed every retry: delivery logs, bounces and quarantine miss them. Fix the "
                   "cause (the ses_events function's log), then redrive them to the SES events queue (an event "
                   "applied twice changes nothing)",
        if_missing="SES events that fail every retry have nowhere to go", severity=WARN),
]


# --- the report -----------------------------------------------------------------

def _run(check: Check, context: StatusContext) -> ComponentStatus:
    try:
        return check.probe(context)
    except Exception as error:  # noqa: BLE001 - one broken check must not hide the others
        return ComponentStatus(check.component, FAIL, f"could not be checked: {describe_error(error)}")


def report(context: StatusContext, checks: list[Check] | None = None,
           timeout_seconds: float = CHECK_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Every component's status (all checked at once), and the worst of them as the overall status."""
    checks = CHECKS if checks is None else checks
    pool = ThreadPoolExecutor(max_workers=max(1, len(checks)), thread_name_prefix="status")
    try:
        futures = [pool.submit(_run, check, context) for check in checks]
        wait(futures, timeout=timeout_seconds)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    components = [future.result() if future.done() else
                  ComponentStatus(check.component, FAIL, f"no answer within {timeout_seconds:g} s")
                  for check, future in zip(checks, futures, strict=True)]
    overall = max((component.status for component in components), key=SEVERITY.__getitem__, default=OK)
    return {"status": overall, "checked_at": context.now_ms, "components": [asdict(item) for item in components]}


