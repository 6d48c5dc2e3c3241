"""Campaign's indicator formulas over a delivery's counts and consolidated tracking."""

from __future__ import annotations

import pytest

from chalicelib.tracking import indicators


def test_formulas() -> None:
    summary = {"counts": {"sent": 90, "delivered": 6, "failed": 3, "ignored": 5, "pending": 1},
               "tracking": {"enabled": True, "opens": True}}
    stats = {"opens_unique": 40, "opens_total": 55, "clicks_unique": 10, "clicks_total": 17, "persons_clicking": 13,
             "optouts": 2, "mirror_views": 4, "hits": 99, "last_updated": 1_700_000_000_000,
             "opens_unique_human": 16, "opens_total_human": 20, "clicks_unique_human": 4, "clicks_total_human": 5,
             "hits_machine": 60, "machine_apple_proxy": 30, "machine_scanner_address": 28, "machine_burst": 25,
             "machine_no_open": 12}
    result = indicators.compute(summary, stats)
    assert result == {
        "processed": 100, "success": 96, "to_deliver": 100, "text_only": 0,
        "opens_unique": 40, "opens_total": 55, "opens_estimated": 40,
        "clicks_unique": 10, "clicks_total": 17, "persons_clicking": 13, "forwards_estimated": 3,
        "reactivity": 25.0, "reactivity_estimated": 25.0, "optouts": 2, "mirror_views": 4,
        "opens_unique_human": 16, "opens_total_human": 20, "clicks_unique_human": 4, "clicks_total_human": 5,
        "reactivity_human": 25.0,
        "machine": {"hits": 60, "by_reason": {"apple_proxy": 30, "scanner_agent": 0, "scanner_address": 28,
                                              "crawler": 0, "prefetch": 0, "honeypot": 0, "burst": 25, "too_fast": 0,
                                              "no_open": 12}},
        "rates": {"opens_unique": 41.67, "opens_total": 57.29, "opens_estimated": 41.67, "clicks_unique": 10.42,
                  "clicks_total": 17.71, "persons_clicking": 13.54, "forwards_estimated": 3.13, "optouts": 2.08,
                  "mirror_views": 4.17, "opens_unique_human": 16.67, "opens_total_human": 20.83,
                  "clicks_unique_human": 4.17, "clicks_total_human": 5.21},
        "last_updated": 1_700_000_000_000,
    }


@pytest.mark.parametrize(("opens", "to_deliver", "text_only", "expected"), [
    (10, 100, 0, 10), (10, 100, 20, 13), (1, 3, 1, 2), (3, 4, 1, 4), (5, 10, 10, 0), (0, 0, 0, 0), (7, 10, 15, 0),
])
def test_estimated_opens_rounds_half_up_and_is_zero_without_a_denominator(opens: int, to_deliver: int,
                                                                          text_only: int, expected: int) -> None:
    assert indicators.estimated_opens(opens, to_deliver, text_only) == expected


def test_nothing_sent_nothing_tracked_is_all_zero() -> None:
    result = indicators.compute({"state": "draft"}, None)
    assert result["success"] == 0 and result["processed"] == 0 and result["last_updated"] is None
    assert all(value == 0 for value in result["rates"].values())
    assert result["reactivity"] == 0 and result["opens_estimated"] == 0


def test_without_an_open_pixel_every_message_is_text_only() -> None:
    summary = {"counts": {"sent": 10}, "tracking": {"enabled": True, "opens": False}}
    result = indicators.compute(summary, {"opens_unique": 4, "clicks_unique": 2})
    assert (result["text_only"], result["opens_estimated"], result["reactivity"], result["reactivity_estimated"]) == \
        (10, 0, 50.0, 0.0)


def test_counts_are_read_defensively() -> None:
    summary = {"counts": {"sent": "7", "delivered": None, "weird": "x", "failed": -3}}
    assert indicators.delivery_volumes(summary) == {"processed": 7, "success": 7, "to_deliver": 7, "text_only": 0}
    assert indicators.delivery_volumes({"counts": "broken"})["success"] == 0
