"""The report service (chalicelib/reports) over moto: numbers checked against hand-computed answers,
and the reads each report makes counted (a bounded number of GetItem/Query, never a Scan)."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.errors import InvalidField, NotFound
from chalicelib.reports import activity
from tests.reports_harness import MINUTE, T0, play, reads, send, set_started
from tests.tracking_logs import record

EMAILS = [f"p{index}@example.net" for index in range(1, 11)]


def _opens_and_clicks(delivery_id: str) -> list[dict[str, Any]]:
    """A known pattern, each hit from another recipient (the 1-minute rule drops none).

    Opens (10): 4 in the window [T0, T0+5m), 2 in [T0+5m, T0+10m), 2 in [T0+15m, T0+20m),
    2 in [T0+2h, T0+2h05).  Clicks (4): 1 in [T0, T0+5m), 3 in [T0+1h, T0+1h05).
    """
    opens = [(1, 0), (2, 1), (3, 2), (4, 4), (5, 6), (6, 9), (7, 15), (8, 19), (9, 120), (10, 121)]
    clicks = [(1, 3), (2, 60), (3, 61), (4, 64)]
    return ([record(kind="open", delivery_id=delivery_id, log_id=log_id, ts=T0 + minute * MINUTE)
             for log_id, minute in opens]
            + [record(kind="click", delivery_id=delivery_id, log_id=log_id, url_id=4, ts=T0 + minute * MINUTE)
               for log_id, minute in clicks])


@pytest.fixture
def reacted(api: Any, mta: Any) -> str:
    delivery_id = send(api, mta, EMAILS)
    set_started(delivery_id, T0 + MINUTE)  # sending started one minute into the first window
    play(_opens_and_clicks(delivery_id))
    return delivery_id


def test_time_to_react_against_hand_computed_percentiles(reacted: str) -> None:
    with reads() as calls:
        report = activity.time_to_react(reacted)
    assert calls == {"dynamodb.GetItem": 1, "dynamodb.Query": 1}
    # Sending started at S = T0+60 s. Windows as seconds after S, the first clipped at 0:
    #   opens  W0 (0, 240): 4   W1 (240, 540): 2   W3 (840, 1140): 2   W24 (7140, 7440): 2   total 10
    #   25% = 2.5 opens: in W0, 0 + 2.5/4 x 240 = 150 s
    #   50% = 5:   4 before W1, 240 + 1/2 x 300 = 390 s
    #   75% = 7.5: 6 before W3, 840 + 1.5/2 x 300 = 1065 s
    #   90% = 9:   8 before W24, 7140 + 1/2 x 300 = 7290 s
    #   by 1 h (3600 s): W0+W1+W3 = 8 of 10 = 80%; by 3 h and 24 h: all
    assert report.started_at == T0 + MINUTE
    assert report.opens.total == 10
    assert [(p.percent, p.seconds) for p in report.opens.percentiles] == [
        (25, 150.0), (50, 390.0), (75, 1065.0), (90, 7290.0)]
    assert [(s.label, s.seconds, s.percent) for s in report.opens.shares] == [
        ("1h", 3600, 80.0), ("3h", 10800, 100.0), ("24h", 86400, 100.0)]
    #   clicks W0 (0, 240): 1   W12 (3540, 3840): 3   total 4
    #   25% = 1:   0 + 1/1 x 240 = 240 s
    #   50% = 2:   1 before W12, 3540 + 1/3 x 300 = 3640 s
    #   75% = 3:   3540 + 2/3 x 300 = 3740 s
    #   90% = 3.6: 3540 + 2.6/3 x 300 = 3800 s
    #   by 1 h: 1 + 3 x (3600-3540)/300 = 1.6 of 4 = 40%
    assert report.clicks.total == 4
    assert [(p.percent, p.seconds) for p in report.clicks.percentiles] == [
        (25, 240.0), (50, 3640.0), (75, 3740.0), (90, 3800.0)]
    assert [s.percent for s in report.clicks.shares] == [40.0, 100.0, 100.0]
    # The curve: the cumulative shares at each window's end (W0, W1, W3, W12, W24).
    assert [(point.seconds, point.opens_percent, point.clicks_percent) for point in report.curve] == [
        (240.0, 40.0, 25.0), (540.0, 60.0, 25.0), (1140.0, 80.0, 25.0), (3840.0, 80.0, 100.0),
        (7440.0, 100.0, 100.0)]


def test_time_to_react_without_hits_says_so(api: Any, mta: Any) -> None:
    delivery_id = send(api, mta, EMAILS[:1])
    report = activity.time_to_react(delivery_id)
    assert report.opens.total == 0 and all(p.seconds is None for p in report.opens.percentiles)
    assert [s.percent for s in report.clicks.shares] == [0.0, 0.0, 0.0] and report.curve == []
    assert report.started_at is not None  # the MTA started sending


@pytest.mark.parametrize("bucket, expected", [
    # 5m: the stored windows as they are
    ("5m", [(0, 4, 1), (5, 2, 0), (15, 2, 0), (60, 0, 3), (120, 2, 0)]),
    # 1h: 10:00-11:00 holds W0, W1, W3 (8 opens, 1 click); 11:00 the 3 clicks; 12:00 the last 2 opens
    ("1h", [(0, 8, 1), (60, 0, 3), (120, 2, 0)]),
    # 1d: everything on 2025-03-01 (UTC), whose day starts 10 h before T0
    ("1d", [(-600, 10, 4)]),
])
def test_timeline_rolls_the_windows_up(reacted: str, bucket: str, expected: list[tuple[int, int, int]]) -> None:
    with reads() as calls:
        report = activity.timeline(reacted, bucket)  # type: ignore[arg-type]
    assert calls == {"dynamodb.GetItem": 1, "dynamodb.Query": 1}
    assert [((row.start - T0) // MINUTE, row.opens, row.clicks) for row in report.buckets] == expected
    assert (report.opens_total, report.clicks_total) == (10, 4)


def test_reports_refuse_unknown_deliveries_and_buckets(reacted: str) -> None:
    for unknown in ("0011223344556677", "nope"):
        with pytest.raises(NotFound):
            activity.time_to_react(unknown)
    with pytest.raises(InvalidField):
        activity.timeline(reacted, "2h")  # type: ignore[arg-type]
