"""The per-container URL table cache of the redirect endpoint."""

from __future__ import annotations

from chalicelib.hits.link_cache import LinkTableCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_warm_hits_do_not_read_and_entries_expire() -> None:
    reads: list[str] = []
    clock = Clock()
    cache = LinkTableCache(lambda delivery: reads.append(delivery) or {"urls": {}}, ttl_seconds=300, clock=clock)
    for _ in range(5):
        assert cache.get("d1") == {"urls": {}}
    assert reads == ["d1"]
    clock.now = 301
    cache.get("d1")
    assert reads == ["d1", "d1"]


def test_unknown_deliveries_are_remembered_briefly() -> None:
    reads: list[str] = []
    clock = Clock()
    cache = LinkTableCache(lambda delivery: reads.append(delivery) and None, missing_ttl_seconds=30, clock=clock)
    assert cache.get("x") is None and cache.get("x") is None
    assert reads == ["x"]
    clock.now = 31
    cache.get("x")
    assert reads == ["x", "x"]


def test_size_is_bounded_least_recently_used_first() -> None:
    reads: list[str] = []
    cache = LinkTableCache(lambda delivery: reads.append(delivery) or {"id": delivery}, max_entries=2)
    cache.get("a"); cache.get("b"); cache.get("a"); cache.get("c")  # noqa: E702
    reads.clear()
    cache.get("a")
    cache.get("b")
    assert reads == ["b"]
