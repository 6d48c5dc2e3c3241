"""Pacing and backoff on a fake clock; chunks of a send job; which new recipients are ignored and why."""

from __future__ import annotations

from chalicelib.mta.jobs import chunks
from chalicelib.mta.pacing import Backoff, Pacer
from chalicelib.mta.recipients import exclusions


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_the_pacer_spaces_calls_at_the_rate_without_bursts() -> None:
    clock = FakeClock()
    pacer = Pacer(4.0, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(9):
        pacer.wait()
        times.append(clock.now)
    assert times == [100.0 + index * 0.25 for index in range(9)]
    clock.now += 10  # an idle spell is not credit for a burst
    pacer.wait()
    pacer.wait()
    assert clock.sleeps[-1] == 0.25


def test_backoff_grows_exponentially_to_its_cap_with_full_jitter() -> None:
    backoff = Backoff(0.25, 5.0, random=lambda: 1.0)
    ceilings = [backoff.next_delay() for _ in range(8)]
    assert ceilings == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    jittered = Backoff(0.25, 5.0, random=lambda: 0.5)
    assert [jittered.next_delay() for _ in range(3)] == [0.125, 0.25, 0.5]
    jittered.reset()
    assert jittered.next_delay() == 0.125


def test_a_job_is_consecutive_ranges_of_log_ids() -> None:
    assert chunks("d", 5, 2) == [{"delivery_id": "d", "first": 1, "last": 2},
                                 {"delivery_id": "d", "first": 3, "last": 4},
                                 {"delivery_id": "d", "first": 5, "last": 5}]
    assert len(chunks("d", 100_000, 500)) == 200
    assert chunks("d", 500, 500) == [{"delivery_id": "d", "first": 1, "last": 500}]


def test_preparation_ignores_invalid_and_duplicate_addresses() -> None:
    found = exclusions(["ann@example.net", "not an address", "bob@localhost", "Ann@Example.net ", "bob@exa_mple.com",
                        "", "carl@example.net", "ann@example.net"])
    assert [(failure.type, failure.reason) if failure else None for failure in found] == [
        None, ("ignored", "address_not_specified"), ("ignored", "invalid_domain"), ("ignored", "duplicate"),
        ("ignored", "invalid_domain"), ("ignored", "address_not_specified"), None, ("ignored", "duplicate")]
