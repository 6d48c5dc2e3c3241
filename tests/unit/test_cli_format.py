"""The CLI shows the API's epoch-millisecond times as dates a person reads."""

from __future__ import annotations

from infra.cli import _when, _with_times


def test_epoch_milliseconds_read_as_utc_dates() -> None:
    assert _when(1_796_137_420_859) == "2026-12-01 15:03:40Z"
    assert _when(0) == "1970-01-01 00:00:00Z"


def test_what_is_not_a_time_is_shown_as_it_is() -> None:
    assert _when(None) == "" and _when("soon") == "soon" and _when(True) == "True"


def test_only_the_named_columns_of_the_rows_that_have_them_change() -> None:
    rows = [{"address": "a@example.com", "since": 1_796_137_420_859}, {"address": "b@example.com"}]
    assert _with_times(rows, "since") == [{"address": "a@example.com", "since": "2026-12-01 15:03:40Z"},
                                          {"address": "b@example.com"}]
