"""The status check judges the tracking workflow by the same rules as its alarms, and by its real schedule."""

from __future__ import annotations

from chalice.app import ScheduledEventConfig

from chalicelib import status
from infra.local_runtime.schedules import rate_seconds
from infra.template import load_template


def test_the_workflow_schedule_is_the_one_the_status_check_assumes() -> None:
    from app import app

    [schedule] = [source for source in app.event_sources
                  if isinstance(source, ScheduledEventConfig) and source.name == "tracking_workflow"]
    assert rate_seconds(schedule.schedule_expression.to_string()) == status.WORKFLOW_SCHEDULE_SECONDS


def test_stalled_and_backlog_mean_the_same_in_the_status_check_and_the_alarms() -> None:
    resources = load_template()["Resources"]
    stalled = resources["TrackingWorkflowStalledAlarm"]["Properties"]
    assert stalled["Period"] == status.WORKFLOW_SCHEDULE_SECONDS
    assert stalled["EvaluationPeriods"] == stalled["DatapointsToAlarm"] == status.STALLED_AFTER_PERIODS
    assert resources["TrackingBacklogAlarm"]["Properties"]["Threshold"] == status.BACKLOG_WARN_SECONDS


def test_a_workflow_that_succeeded_recently_is_ok_and_one_that_stalled_fails() -> None:
    now = 10_000_000
    limit = status.STALLED_AFTER_PERIODS * status.WORKFLOW_SCHEDULE_SECONDS * 1000
    fresh = status.assess_workflow({"last_success_at": now - limit, "last_run_at": now - limit,
                                    "last_run_status": "idle"}, now)
    stale = status.assess_workflow({"last_success_at": now - limit - 1000, "last_run_at": now - 1000,
                                    "last_run_status": "failed", "last_error": "LeaseLost: run 9"}, now)
    assert (fresh.status, stale.status) == ("OK", "FAIL")
    assert stale.reason == ("stalled: no successful run for 3 min 1 s (more than 3 schedule periods); last run 1 s "
                            "ago: failed (LeaseLost: run 9)")


def test_the_delivery_monitor_measures_once_in_every_period_of_the_alarms_on_its_gauges() -> None:
    """One sample a minute: the start-pending alarm (Maximum, 1 minute) always has one, and the throughput
    alarm's Minimum of DeliveriesSending over 5 minutes is over 5 samples."""
    from app import app

    [schedule] = [source for source in app.event_sources
                  if isinstance(source, ScheduledEventConfig) and source.name == "delivery_monitor"]
    every = rate_seconds(schedule.schedule_expression.to_string())
    resources = load_template()["Resources"]
    assert resources["DeliveryStuckInStartPendingAlarm"]["Properties"]["Period"] == every == 60
    [sending] = [query["MetricStat"] for query in resources["SendingThroughputLowAlarm"]["Properties"]["Metrics"]
                 if query["Id"] == "sending"]
    assert sending["Stat"] == "Minimum" and sending["Period"] == 5 * every


def test_the_backlog_is_judged_by_its_age_now_not_at_the_last_run() -> None:
    """A run left 1,200 objects, the oldest 2 min old; 9 minutes later nothing ran: 11 min old, and stalled."""
    now = 10_000_000
    run = {"last_success_at": now - 60_000, "last_run_at": now - 60_000, "last_run_status": "completed",
           "lag_seconds": 120, "backlog_objects": 1200, "backlog_exact": False, "oldest_waiting_at": now - 180_000}
    recent = status.assess_workflow(run, now)
    assert (recent.status, recent.reason) == (
        "OK", "last success 1 min 0 s ago, lag 3 min 0 s; at least 1200 redirection log(s) waiting, the oldest "
              "3 min 0 s old")
    later = status.assess_workflow(run, now + 480_000)
    assert later.status == "FAIL" and later.reason.endswith(
        "; at least 1200 redirection log(s) waiting, the oldest 11 min 0 s old")
    assert later.details["lag_seconds"] == 660
    caught_up = status.assess_workflow({**run, "backlog_objects": 0, "lag_seconds": 0}, now)
    assert (caught_up.status, caught_up.reason) == ("OK", "last success 1 min 0 s ago, lag 0 s")
