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
