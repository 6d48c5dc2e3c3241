"""The native aggregation gives exactly the Python reference's answers, with prior state and in batches.

core.aggregate and the native backend's aggregate run on the same hits and
the same stored hits (prior), batch after batch as the workflow feeds them
(each batch's stored hits are the previous batch's updates); every result is
compared whole: recipient updates (hits in order, the very objects given,
added, over_limit), delivery deltas (values and key order), duplicates and
over_limit. Hits cover the 1-minute rule's edges, caps down to 0, repeated
hit ids in a batch and in prior, unicode user agents, kinds and values the
parser never makes (negative times, other kinds), and values the native side
does not represent (ints past 64 bits), where the backend falls back.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib import native
from chalicelib.tracking import core
from chalicelib.tracking.core import Hit

if os.environ.get("REQUIRE_NATIVE_MODULE") != "1":  # make test requires it; elsewhere, skip where never built
    pytest.importorskip("sendtrail_native", reason="sendtrail_native is not built; `make native` builds it")

NATIVE = native.select("on")
T0 = 1_700_000_000_000
DELIVERIES = ("00112233445566ff", "0a0b0c0d0e0f1011", "ffffffffffffffff")


def assert_same(actual: core.Aggregates, expected: core.Aggregates) -> None:
    assert (actual.duplicates, actual.over_limit) == (expected.duplicates, expected.over_limit)
    assert actual.recipients == expected.recipients
    for mine, theirs in zip(actual.recipients, expected.recipients, strict=True):
        assert all(a is b for a, b in zip(mine.hits, theirs.hits, strict=True))  # the objects given, not copies
    assert actual.deliveries == expected.deliveries
    for mine, theirs in zip(actual.deliveries, expected.deliveries, strict=True):
        for group in ("indicators", "urls", "buckets", "user_agents"):
            assert list(getattr(mine, group).items()) == list(getattr(theirs, group).items())


hits = st.builds(
    Hit,
    hit_id=st.one_of(st.integers(0, 60).map(lambda serial: f"{serial:032x}"), st.sampled_from(["", "Z", "é", "a" * 40])),
    ts=st.one_of(st.integers(0, 700_000).map(lambda offset: T0 + offset),
                 st.sampled_from([T0, T0 + 59_999, T0 + 60_000, T0 + 120_000, 0, -1, -300_001, 2**53 - 1])),
    kind=st.sampled_from(["open", "open", "click", "click", "optout", "mirror", "other"]),
    delivery_id=st.sampled_from(DELIVERIES),
    log_id=st.integers(0, 4),
    url_id=st.integers(-1, 6),
    ua=st.sampled_from(["", "a", "b", "Mozilla/5.0", "Ünïcödé 😀", "z"]),
    ip=st.sampled_from(["203.0.113.0", "198.51.100.0", ""]),
    purpose=st.sampled_from(["", "", "", "prefetch", "preview", "x"]),  # any text but "" is declared
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(hits, max_size=25), min_size=1, max_size=4),
       limit=st.sampled_from([0, 1, 3, 500]), prior_extra=st.lists(hits, max_size=6))
def test_batches_with_prior_state(batches: list[list[Hit]], limit: int, prior_extra: list[Hit]) -> None:
    """Batch after batch, each with the previous updates as its stored hits (plus arbitrary stored hits)."""
    stored: dict[tuple[str, int], tuple[Hit, ...]] = {}
    for hit in prior_extra:
        stored[hit.recipient] = stored.get(hit.recipient, ()) + (hit,)
    for batch in batches:
        expected = core.aggregate(batch, stored, limit)
        actual = NATIVE.aggregate(batch, stored, limit)
        assert_same(actual, expected)
        for update in expected.recipients:
            stored[(update.delivery_id, update.log_id)] = update.hits


@settings(max_examples=100, deadline=None)
@given(new=st.lists(hits, max_size=30))
def test_no_prior_and_default_cap(new: list[Hit]) -> None:
    assert_same(NATIVE.aggregate(new), core.aggregate(new))
    assert_same(NATIVE.aggregate(new, {}), core.aggregate(new, {}))


def test_the_one_minute_rule_and_indicators() -> None:
    delivery = DELIVERIES[0]
    opens = [Hit(f"{index:032x}", T0 + offset, "open", delivery, 1, 1, "ua", "ip")
             for index, offset in enumerate([0, 30_000, 59_999, 60_000, 100_000, 125_000])]
    clicks = [Hit(f"{index + 10:032x}", T0 + index, "click", delivery, 2, 4, ua, ip)
              for index, (ua, ip) in enumerate([("a", "x"), ("a", "x"), ("a", "y"), ("b", "x")])]
    expected = core.aggregate(opens + clicks)
    assert_same(NATIVE.aggregate(opens + clicks), expected)
    assert expected.deliveries[0].indicators["opens_total"] == 3
    assert expected.deliveries[0].indicators["persons_clicking"] == 3


@pytest.mark.parametrize("hit", [
    Hit("0" * 32, 2**64, "open", DELIVERIES[0], 1, 1, "ua", "ip"),  # past 64 bits
    Hit("0" * 32, T0, "open", DELIVERIES[0], -(2**70), 1, "ua", "ip"),
    Hit("0" * 32, True, "open", DELIVERIES[0], 1, 1, "ua", "ip"),  # type: ignore[arg-type]  # not exactly int
    Hit("0" * 32, T0, "open", DELIVERIES[0], 1, 1, "\ud800", "ip"),  # not Unicode
])
def test_values_the_native_side_does_not_represent_fall_back(hit: Hit) -> None:
    others = [Hit("1" * 32, T0, "click", DELIVERIES[0], 1, 4, "ua", "ip")]
    assert_same(NATIVE.aggregate(others + [hit]), core.aggregate(others + [hit]))
    assert_same(NATIVE.aggregate(others, {hit.recipient: (hit,)}), core.aggregate(others, {hit.recipient: (hit,)}))


def test_objects_that_are_not_hits_and_odd_caps_fall_back() -> None:
    class Subclass(str):
        pass

    odd = Hit(Subclass("0" * 32), T0, "open", DELIVERIES[0], 1, 1, "ua", "ip")
    assert_same(NATIVE.aggregate([odd]), core.aggregate([odd]))
    ordinary = [Hit(f"{index:032x}", T0 + index, "click", DELIVERIES[0], 1, 4, "ua", "ip") for index in range(5)]
    for cap in (-1, -3, 2**70):
        assert_same(NATIVE.aggregate(ordinary, None, cap), core.aggregate(ordinary, None, cap))


def test_prior_is_read_with_get_in_recipient_order() -> None:
    asked: list[Any] = []

    class Recording(dict):  # type: ignore[type-arg]
        def get(self, key: Any, default: Any = None) -> Any:
            asked.append(key)
            return super().get(key, default)

    new = [Hit(f"{index:032x}", T0, "open", DELIVERIES[index % 3], index % 2, 1, "ua", "ip") for index in range(6)]
    prior = Recording({(DELIVERIES[0], 0): (new[0],)})
    expected = core.aggregate(new, prior)
    python_asked, asked[:] = list(asked), []
    assert_same(NATIVE.aggregate(new, prior), expected)
    assert asked == python_asked


# --------------------------------------------------------------------------- classification

def _contexts(draw: st.DrawFn) -> Any:
    from chalicelib.tracking import classify

    rules = classify.Rules(
        enabled=draw(st.one_of(st.just(classify.ALL_RULES), st.integers(0, classify.ALL_RULES), st.just(-1))),
        burst_links=draw(st.sampled_from([2, 2, 3, 1, 0, -4])),
        burst_window_ms=draw(st.sampled_from([2_000, 0, 300_000, -1, 2**62])),
        min_click_after_send_ms=draw(st.sampled_from([5_000, 0, 120_000, -5])))
    flags = st.integers(0, 15)
    agents = draw(st.dictionaries(st.sampled_from(["", "a", "b", "Mozilla/5.0", "Ünïcödé 😀", "z"]), flags))
    addresses = draw(st.dictionaries(st.sampled_from(["203.0.113.0", "198.51.100.0", ""]), flags))
    sent_at = draw(st.dictionaries(st.tuples(st.sampled_from(DELIVERIES), st.integers(0, 4)),
                                   st.integers(T0 - 10_000, T0 + 400_000)))
    return classify.Context(rules, agents, addresses, sent_at)


contexts = st.composite(_contexts)()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(hits, max_size=25), min_size=1, max_size=4), limit=st.sampled_from([0, 1, 3, 500]),
       context=contexts, stale=st.dictionaries(st.integers(0, 60).map(lambda serial: f"{serial:032x}"),
                                                st.integers(-1, 600), max_size=5))
def test_classification_matches_batch_after_batch(batches: list[list[Hit]], limit: int, context: Any,
                                                  stale: dict[str, int]) -> None:
    """Verdicts and human counters: the same with flags, send times, rules, and stored verdicts (any int)."""
    from dataclasses import replace

    stored: dict[tuple[str, int], tuple[Hit, ...]] = {}
    verdicts: dict[str, int] = dict(stale)
    for batch in batches:
        classifying = replace(context, stored=dict(verdicts))
        expected = core.aggregate(batch, stored, limit, classifying)
        actual = NATIVE.aggregate(batch, stored, limit, classifying)
        assert_same(actual, expected)
        assert [update.verdicts for update in actual.recipients] == [update.verdicts for update in expected.recipients]
        for update in expected.recipients:
            stored[(update.delivery_id, update.log_id)] = update.hits
            verdicts.update({hit.hit_id: verdict for hit, verdict in zip(update.hits, update.verdicts, strict=True)})


def test_the_corpus_is_classified_the_same_natively() -> None:
    from chalicelib.tracking import classify
    from tests.unit.test_classify import corpus

    hits = [Hit(f"{index:032x}", T0 + index, entry["kind"], DELIVERIES[0], index, 1 if entry["kind"] == "open" else 4,
                entry["ua"], entry["ip"], entry["purpose"]) for index, entry in enumerate(corpus())]
    context = classify.context_for(hits, classify.Rules(), {}, {})
    expected = core.aggregate(hits, context=context)
    actual = NATIVE.aggregate(hits, context=context)
    assert_same(actual, expected)
    assert [u.verdicts for u in actual.recipients] == [u.verdicts for u in expected.recipients]
    assert any(classify.is_machine(u.verdicts[0]) for u in expected.recipients)
    assert any(u.verdicts[0] & classify.BIT["prefetch"] and u.hits[0].purpose for u in expected.recipients)


def test_context_values_the_native_side_does_not_represent_fall_back() -> None:
    from chalicelib.tracking import classify

    new = [Hit("1" * 32, T0, "click", DELIVERIES[0], 1, 4, "ua", "ip")]
    for context in (classify.Context(classify.Rules(burst_links=2**70)), classify.Context(agents={"ua": True}),
                    classify.Context(sent_at={(DELIVERIES[0], 1): 2**64})):
        assert_same(NATIVE.aggregate(new, None, 500, context), core.aggregate(new, None, 500, context))


def test_the_default_rules_and_reasons_are_the_references() -> None:
    import sendtrail_native

    from chalicelib.tracking import classify

    assert sendtrail_native.DEFAULT_RULES == classify.Rules().as_tuple()
    assert sendtrail_native.CLASSIFY_REASONS == list(classify.REASONS)


# --------------------------------------------------------------------------- past the bound: summaries

@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(hits, max_size=25), min_size=1, max_size=5), limit=st.sampled_from([0, 1, 3, 6]),
       first=st.sampled_from([None, 0, 1, 2, 5, -1]), context=contexts, flood=st.integers(0, 40))
def test_summaries_batch_after_batch(batches: list[list[Hit]], limit: int, first: int | None, context: Any,
                                     flood: int) -> None:
    """Past the bound: kept hits, summaries (read back from the reference's), verdicts and deltas are the same,
    with a flood of clicks on one link in the middle of the batches."""
    from dataclasses import replace

    delivery = DELIVERIES[0]
    flooded = [Hit(f"f{index:031x}", T0 + 1_000 + index, "click", delivery, 1, 3, "flood", "203.0.113.9")
               for index in range(flood)]
    batches = batches[:1] + [flooded] + batches[1:]
    stored: dict[tuple[str, int], tuple[Hit, ...]] = {}
    summaries: dict[tuple[str, int], core.Summary] = {}
    verdicts: dict[str, int] = {}
    for batch in batches:
        classifying = replace(context, stored=dict(verdicts))
        expected = core.aggregate(batch, stored, limit, classifying, summaries, first)
        actual = NATIVE.aggregate(batch, stored, limit, classifying, summaries, first)
        assert_same(actual, expected)
        assert [update.verdicts for update in actual.recipients] == [update.verdicts for update in expected.recipients]
        for update in expected.recipients:
            key = (update.delivery_id, update.log_id)
            stored[key] = update.hits
            if update.summary is not None:
                summaries[key] = update.summary
            verdicts.update({hit.hit_id: verdict for hit, verdict in zip(update.hits, update.verdicts, strict=True)})


def test_a_flood_then_a_real_click_natively() -> None:
    delivery = DELIVERIES[0]
    flood = [Hit(f"{index:032x}", T0 + index * 10, "click", delivery, 1, 3, "bot", "203.0.113.9")
             for index in range(5_000)]
    real = Hit("f" * 32, T0 + 3_600_000, "click", delivery, 1, 4, "Mozilla/5.0 (person)", "198.51.100.7")
    first = NATIVE.aggregate(flood)
    assert_same(first, core.aggregate(flood))
    [update] = first.recipients
    stored, summaries = {(delivery, 1): update.hits}, {(delivery, 1): update.summary}
    expected = core.aggregate([real] + flood[2_000:2_100], stored, summaries=summaries)  # replays: duplicates
    actual = NATIVE.aggregate([real] + flood[2_000:2_100], stored, summaries=summaries)
    assert_same(actual, expected)
    assert actual.duplicates == 100 and actual.recipients[0].hits[-1] is real
    assert actual.deliveries[0].indicators["clicks_total"] == 1


@pytest.mark.parametrize("odd", [{"first": (2**64, "a")}, {"filter": b"\x00"}, {"urls": frozenset({2**70})},
                                 {"requesters": frozenset({-1})}])
def test_summaries_the_native_side_does_not_represent_fall_back(odd: dict[str, Any]) -> None:
    from dataclasses import replace

    delivery = DELIVERIES[0]
    hits_in = [Hit(f"{index:032x}", T0 + index, "click", delivery, 1, 4, "ua", "ip") for index in range(8)]
    [update] = core.aggregate(hits_in, None, 4).recipients
    assert update.summary is not None
    summaries = {(delivery, 1): replace(update.summary, **odd)}
    later = [Hit("e" * 32, T0 + 100, "click", delivery, 1, 4, "ua", "ip2")]
    args = ({(delivery, 1): update.hits}, 4, None, summaries)
    assert_same(NATIVE.aggregate(later, *args), core.aggregate(later, *args))
