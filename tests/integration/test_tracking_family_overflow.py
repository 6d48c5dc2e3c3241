"""Hostile user agents cannot stall tracking: a family shard at DynamoDB's item size limit overflows to "Other".

ua-parser's OS and browser families are open-ended (a bot pattern names the
family after the User-Agent: "Qwertybot/1.0" is the browser "Qwertybot"), and
anyone holding one tracked link can replay it with thousands of them. Each
unlisted family is an attribute of a tally#a<nn> shard (data/counters.py),
forever. Here one shard is filled close to the 400 KB limit (as a flood of
past runs would have left it, in the stored format), then a run brings new
families to it: the run completes, every hit counts, and the families the
shard cannot take are counted under the dimension's "Other" family, exactly
once whatever write the process dies after. Long before that limit, a shard
stops taking new families at counters.FAMILY_SHARD_CAP (about 64 KB: every
rewrite stays cheap): the tests below fill one to the cap and check the same,
while the families it holds keep counting in it.

moto 5.2.5 enforces the limit on UpdateItem (ValidationException "Item size
to update has exceeded the maximum allowed size", past 405,000 bytes by its
count); infra/local_runtime/moto_dynamodb.py makes a refused update write
nothing, as DynamoDB does (tests/unit/test_moto_dynamodb.py).
"""

from __future__ import annotations

import zlib
from typing import Any, Callable

import boto3
import pytest

from chalicelib import metrics
from chalicelib.data import counters
from chalicelib.reports import breakdown
from chalicelib.settings import get_settings
from tests.integration.test_tracking_workflow import NOW, T0, make_delivery
from tests.tracking_harness import FakeClock, pin_layout, put_log, replay_after_each_crash, snapshot, tap, workflow
from tests.tracking_logs import record


@pytest.fixture(autouse=True)
def _items_layout(request: pytest.FixtureRequest) -> None:
    """These tests read the items layout's tables (the append layout's: test_tracking_append_layout.py)."""
    pin_layout(request, "items")


SHARD = 8
MOTO_ITEM_LIMIT = 405_000  # moto's own count of an item's bytes (DynamoDB's is 400 KB)
FILLER_OPENS = 3  # each family already in the shard: 3 opens, 1 click
LIMITS = {"write_concurrency": 1}


def _families(prefix: str, count: int) -> list[str]:
    """`count` browser families "<prefix><n>bot" (as ua-parser names them) that land in the shard SHARD."""
    found, index = [], 0
    while len(found) < count:
        family = f"{prefix}{index:05d}bot"
        if zlib.crc32(f"browser#{family}".encode()) % counters.UA_SHARDS == SHARD:
            found.append(family)
        index += 1
    return found


NEW_FAMILIES = _families("Probe", 6)


def _shard() -> str:
    return f"{counters.TALLY}#a{SHARD:02d}"


def _fill_shard(delivery_id: str, packed: int = FILLER_OPENS + 1 * counters.PACK_BASE,
                extra: dict[str, Any] | None = None) -> int:
    """The delivery's family shard SHARD, as past runs left it: unlisted browser families in the stored
    (packed) format, each `packed` (opens 3, clicks 1), after the `extra` attributes, up to a few bytes under
    moto's limit; returns how many families it holds. Written into moto's backend directly (thousands of
    attributes: moto checks the size again on each, quadratic)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.utilities import bytesize

    settings = get_settings()
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][boto3.session.Session().region_name or "us-east-1"]
    key = {"delivery_id": {"S": delivery_id}, "stat": {"S": _shard()}}
    backend.put_item(settings.tracking_stats_table, {**key, "last_run": {"N": "0"}, "last_updated": {"N": str(T0)},
                                                     "expires_at_epoch": {"N": str(T0 // 1000 + 86_400)},
                                                     **(extra or {})})
    item = backend.get_table(settings.tracking_stats_table).get_item(DynamoType(key["delivery_id"]),
                                                                     DynamoType(key["stat"]))
    size, families, index = item.size(), 0, 0
    while True:
        family = f"Filler{index:06d}bot"
        index += 1
        if zlib.crc32(f"browser#{family}".encode()) % counters.UA_SHARDS != SHARD:
            continue
        name, value = f"ab:{family}.{counters.PACKED_CODES}", DynamoType({"N": str(packed)})
        if size + bytesize(name) + value.size() > MOTO_ITEM_LIMIT - 20:
            return families
        dict.__setitem__(item.attrs, name, value)
        size += bytesize(name) + value.size()
        families += 1


def _hits(delivery_id: str) -> list[dict[str, Any]]:
    """Six recipients open once each, r1 clicks too: every browser a new bot family of the full shard."""
    hits = [record(kind="open", delivery_id=delivery_id, log_id=index, ts=T0 + index * 1_000, ua=f"{family}/1.0")
            for index, family in enumerate(NEW_FAMILIES, start=1)]
    return hits + [record(kind="click", delivery_id=delivery_id, log_id=1, url_id=4, ts=T0 + 90_000,
                          ua=f"{NEW_FAMILIES[0]}/1.0")]


def _stored_families(delivery_id: str) -> set[str]:
    item = boto3.client("dynamodb").get_item(TableName=get_settings().tracking_stats_table, Key={
        "delivery_id": {"S": delivery_id}, "stat": {"S": _shard()}}, ConsistentRead=True)["Item"]
    return {name for name in item if name.startswith("ab:")}


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    """(metric, value) of each metric the run emits."""
    found: list[tuple[str, float]] = []
    monkeypatch.setattr(metrics, "emit", lambda name, value=1, *args, **kwargs: found.append((name, value)))
    return found


def test_new_families_for_a_full_shard_are_counted_under_other_and_the_run_completes(
        api: Any, mta: Any, emitted: list[tuple[str, float]]) -> None:
    delivery_id = make_delivery(api, mta)
    filled = _fill_shard(delivery_id)
    assert filled > 4_000
    stored = _stored_families(delivery_id)
    put_log("new-families", _hits(delivery_id), T0)

    result = workflow(FakeClock(NOW), **LIMITS).run()

    assert (result["status"], result["hits_accepted"]) == ("completed", 7)
    assert (metrics.FAMILIES_OVERFLOWED, len(NEW_FAMILIES)) in emitted
    indicators = api.get(f"/api/deliveries/{delivery_id}/indicators").json_body
    assert (indicators["opens_unique"], indicators["opens_total"], indicators["clicks_total"]) == (6, 6, 1)
    assert _stored_families(delivery_id) == stored  # the shard took no new family: its size stays bounded
    by_os = breakdown.breakdown(delivery_id, "os")
    assert (by_os.opens_total, by_os.clicks_total) == (6, 1)
    by_browser = breakdown.breakdown(delivery_id, "browser")
    rows = {row.value: row for row in by_browser.rows}
    assert not set(NEW_FAMILIES) & set(rows)
    assert (rows["Other"].opens, rows["Other"].clicks) == (6, 1)  # every new family's hits, under "Other"
    assert len(rows) == filled + 1 and all(
        (row.opens, row.clicks) == (FILLER_OPENS, 1) for value, row in rows.items() if value != "Other")
    # The breakdown's totals add up: the filler's counts and this run's, each counted once.
    assert (by_browser.opens_total, by_browser.clicks_total) == (filled * FILLER_OPENS + 6, filled + 1)
    assert sum(row.opens for row in by_browser.rows) == by_browser.opens_total

    # The next run's new families for the full shard go the same way: still bounded, still counted.
    later = [record(kind="open", delivery_id=delivery_id, log_id=index, ts=T0 + 600_000 + index, ua=f"{family}/2.0")
             for index, family in enumerate(_families("Later", 3), start=1)]
    put_log("later-families", later, T0 + 600_000)
    assert workflow(FakeClock(NOW + 900), **LIMITS).run()["hits_accepted"] == 3
    assert _stored_families(delivery_id) == stored
    rows = {row.value: row for row in breakdown.breakdown(delivery_id, "browser").rows}
    assert rows["Other"].opens == 9 and breakdown.breakdown(delivery_id, "os").opens_total == 9


def test_a_crash_after_any_write_of_an_overflowing_run_then_a_normal_run_gives_the_clean_tables(
        api: Any, mta: Any) -> None:
    """The overflow is decided again, the same way, when the run record is applied again: the shard refused
    the write and is unchanged, so the families go to the same guarded overflow item, never twice."""
    delivery_id = make_delivery(api, mta)
    put_log("new-families", _hits(delivery_id), T0)
    _crash_after_each_write_then_replay(lambda: _fill_shard(delivery_id))
    rows = {row.value: row for row in breakdown.breakdown(delivery_id, "browser").rows}
    assert (rows["Other"].opens, rows["Other"].clicks) == (6, 1)


# A shard at FAMILY_SHARD_CAP: the bound that keeps every rewrite of a family shard cheap (about 64 KB, ~64 write
# units), long before the 400 KB limit above.
HELD = _families("Held", counters.FAMILY_SHARD_CAP)  # short names: one mark each


def _moto_item(delivery_id: str, stat: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.dynamo_type import DynamoType

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][boto3.session.Session().region_name or "us-east-1"]
    return backend.get_table(get_settings().tracking_stats_table).get_item(
        DynamoType({"S": delivery_id}), DynamoType({"S": stat}))


def _fill_capped_shard(delivery_id: str) -> int:
    """The delivery's family shard SHARD as past runs left it at the cap: the HELD families (3 opens, 1 click
    each) and their marks, in the stored format; returns its size in bytes (moto's count)."""
    attributes = {f"ab:{family}.{counters.PACKED_CODES}": FILLER_OPENS + counters.PACK_BASE for family in HELD}
    marks = counters.family_marks(_shard(), attributes)
    assert len(marks) == counters.FAMILY_SHARD_CAP
    boto3.client("dynamodb").put_item(TableName=get_settings().tracking_stats_table, Item={
        "delivery_id": {"S": delivery_id}, "stat": {"S": _shard()}, "last_run": {"N": "0"},
        "last_updated": {"N": str(T0)}, "expires_at_epoch": {"N": str(T0 // 1000 + 86_400)},
        counters.FAMILIES: {"NS": [str(mark) for mark in marks]},
        **{name: {"N": str(value)} for name, value in attributes.items()}})
    return int(_moto_item(delivery_id, _shard()).size())


def _capped_hits(delivery_id: str) -> list[dict[str, Any]]:
    """r1..r6 open with new bot families (r1 clicks too), r7 and r8 with families the shard holds (r8 clicks)."""
    return _hits(delivery_id) + [
        record(kind="open", delivery_id=delivery_id, log_id=7, ts=T0 + 7_000, ua=f"{HELD[0]}/1.0"),
        record(kind="open", delivery_id=delivery_id, log_id=8, ts=T0 + 8_000, ua=f"{HELD[1]}/1.0"),
        record(kind="click", delivery_id=delivery_id, log_id=8, url_id=4, ts=T0 + 95_000, ua=f"{HELD[1]}/1.0")]


def test_a_shard_at_the_family_cap_keeps_counting_its_families_and_puts_new_ones_under_other(
        api: Any, mta: Any, emitted: list[tuple[str, float]]) -> None:
    delivery_id = make_delivery(api, mta, recipients=8)
    before = _fill_capped_shard(delivery_id)
    bound = counters.FAMILY_SHARD_CAP * counters.FAMILY_UNIT_BYTES
    assert 20_000 < before <= bound
    stored = _stored_families(delivery_id)
    put_log("capped", _capped_hits(delivery_id), T0)

    result = workflow(FakeClock(NOW), **LIMITS).run()

    assert (result["status"], result["hits_accepted"]) == ("completed", 10)
    assert (metrics.FAMILIES_OVERFLOWED, len(NEW_FAMILIES)) in emitted
    shard = _moto_item(delivery_id, _shard())
    assert _stored_families(delivery_id) == stored  # no new family in the shard, no new mark
    assert len(shard.attrs[counters.FAMILIES].value) == counters.FAMILY_SHARD_CAP
    assert shard.size() <= bound and shard.size() - before < 32  # two counters and the run guard changed
    assert int(shard.attrs["last_run"].value) > 0
    indicators = api.get(f"/api/deliveries/{delivery_id}/indicators").json_body
    assert (indicators["opens_unique"], indicators["opens_total"], indicators["clicks_total"]) == (8, 8, 2)
    by_browser = breakdown.breakdown(delivery_id, "browser")
    rows = {row.value: row for row in by_browser.rows}
    assert not set(NEW_FAMILIES) & set(rows) and len(rows) == len(HELD) + 1
    assert (rows["Other"].opens, rows["Other"].clicks) == (6, 1)  # the new families' hits, from <shard>~x
    assert (rows[HELD[0]].opens, rows[HELD[0]].clicks) == (FILLER_OPENS + 1, 1)  # held: still in the shard
    assert (rows[HELD[1]].opens, rows[HELD[1]].clicks) == (FILLER_OPENS + 1, 2)
    assert all((row.opens, row.clicks) == (FILLER_OPENS, 1) for value, row in rows.items() if value in HELD[2:])
    assert (by_browser.opens_total, by_browser.clicks_total) == (len(HELD) * FILLER_OPENS + 8, len(HELD) + 2)
    assert sum(row.opens for row in by_browser.rows) == by_browser.opens_total
    assert breakdown.breakdown(delivery_id, "os").opens_total == 8

    # The next run: a held family only (one write, the shard takes it), then new ones again (under Other).
    later = [record(kind="open", delivery_id=delivery_id, log_id=1, ts=T0 + 600_000, ua=f"{HELD[2]}/2.0"),
             *[record(kind="open", delivery_id=delivery_id, log_id=index, ts=T0 + 600_000 + index,
                      ua=f"{family}/2.0") for index, family in enumerate(_families("Later", 3), start=2)]]
    put_log("later", later, T0 + 600_000)
    assert workflow(FakeClock(NOW + 900), **LIMITS).run()["hits_accepted"] == 4
    assert _stored_families(delivery_id) == stored
    assert _moto_item(delivery_id, _shard()).size() <= bound
    rows = {row.value: row for row in breakdown.breakdown(delivery_id, "browser").rows}
    assert rows["Other"].opens == 9 and rows[HELD[2]].opens == FILLER_OPENS + 1


def test_a_crash_after_any_write_of_a_run_over_a_capped_shard_then_a_normal_run_gives_the_clean_tables(
        api: Any, mta: Any) -> None:
    """The cap's refusal is decided again, the same way, when the run record is applied again: the shard refused
    the write and is unchanged, so the new families go to the same guarded <shard>~x, never twice, and the held
    ones to the shard once."""
    delivery_id = make_delivery(api, mta, recipients=8)
    put_log("capped", _capped_hits(delivery_id), T0)
    _crash_after_each_write_then_replay(lambda: _fill_capped_shard(delivery_id))
    rows = {row.value: row for row in breakdown.breakdown(delivery_id, "browser").rows}
    assert (rows["Other"].opens, rows["Other"].clicks) == (6, 1)
    assert (rows[HELD[1]].opens, rows[HELD[1]].clicks) == (FILLER_OPENS + 1, 2)


def test_a_full_shard_too_large_for_its_own_families_counts_them_under_other_once(api: Any, mta: Any) -> None:
    """A shard filled before the cap, then to the cap, within bytes of 400 KB: its new families go to <shard>~x,
    and the click on a family it holds, which would pass the limit, to <shard>~y (folded into Other too)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    delivery_id = make_delivery(api, mta, recipients=8)
    marks = {counters.FAMILIES: {"NS": [str(mark) for mark in range(1, counters.FAMILY_SHARD_CAP + 1)]}}
    _fill_shard(delivery_id, packed=FILLER_OPENS, extra=marks)  # opens 3, no click
    shard = _moto_item(delivery_id, _shard())
    fillers = [name for name in shard.attrs if name.startswith("ab:")]
    held = fillers[0][3:].rpartition(".")[0]
    dict.pop(shard.attrs, fillers[-1])  # room for the pad below (the fill leaves 20 to 48 bytes)
    # 30 bytes left: moto counts an attribute's new value on top of its old one (so does no DynamoDB count), so
    # the run guard's SETs fit (26 bytes at most: expires_at_epoch) and the click's ADD to `held` does not (38).
    pad = MOTO_ITEM_LIMIT - 30 - shard.size() - len("pad")
    assert pad >= 0
    dict.__setitem__(shard.attrs, "pad", DynamoType({"S": "p" * pad}))  # not a count: readers skip it
    stored = _stored_families(delivery_id)
    put_log("full-and-large", _hits(delivery_id) + [record(
        kind="click", delivery_id=delivery_id, log_id=7, url_id=4, ts=T0 + 95_000, ua=f"{held}/1.0")], T0)

    assert workflow(FakeClock(NOW), **LIMITS).run()["status"] == "completed"

    assert _stored_families(delivery_id) == stored
    assert int(_moto_item(delivery_id, _shard()).attrs["last_run"].value) > 0  # the run guard still fits
    assert _moto_item(delivery_id, f"{_shard()}{counters.LATE_OVERFLOW}") is not None
    rows = {row.value: row for row in breakdown.breakdown(delivery_id, "browser").rows}
    assert (rows["Other"].opens, rows["Other"].clicks) == (6, 2)
    assert (rows[held].opens, rows[held].clicks) == (FILLER_OPENS, 0)
    indicators = api.get(f"/api/deliveries/{delivery_id}/indicators").json_body
    assert (indicators["opens_total"], indicators["clicks_total"]) == (6, 2)


def _crash_after_each_write_then_replay(fill: Callable[[], object]) -> None:
    """Run the logged hits over the shard `fill` makes; then, for every write of that run, start again from
    the filled shard, crash after that write, replay, and check the tables equal the clean run's."""
    with tap() as observer:
        fill()
        assert workflow(FakeClock(NOW), **LIMITS).run()["status"] == "completed"
        clean, total = snapshot(), observer.writes
        assert total >= 10

        def filled() -> FakeClock:
            fill()
            return FakeClock(NOW)

        replay_after_each_crash(observer, clean, total, filled, **LIMITS)
