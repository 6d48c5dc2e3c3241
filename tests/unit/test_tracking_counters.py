"""The grouped counter layout (chalicelib/data/counters.py): where each counter goes, and back."""

from __future__ import annotations

import random
from typing import Any

from chalicelib.data import counters
from chalicelib.data.counters import INDICATORS, bucket_stat, ua_stat, url_stat

HOUR = 1_740_823_200_000  # an hour's start


def test_each_counter_has_one_place() -> None:
    assert counters.place(INDICATORS, "clicks_total") == ("tally", "clicks_total")
    assert counters.place(url_stat(3), "unique_human") == ("tally", "u3.uh")
    assert counters.place(url_stat(64), "total") == ("tally#u1", "u64.t")
    assert counters.place(ua_stat("device", "Mobile"), "opens") == ("tally", "ad:Mobile.o")
    assert counters.place(ua_stat("browser", "Chrome"), "clicks_human") == ("tally", "ab:Chrome.ch")
    item, attribute = counters.place(ua_stat("browser", "Some Crawler/9 x.y"), "opens")  # type: ignore[misc]
    assert item.startswith("tally#a") and attribute == "ab:Some Crawler/9 x.y.o"
    assert counters.place(bucket_stat(HOUR + 35 * 60_000), "opens_human") == (f"bucket#h{HOUR:015d}", "35.oh")
    assert counters.place("domain#example.net", "opens") is None  # shared with the MTA: its own item


def _apply(writes: list[tuple[str, str, dict[str, int]]], table: dict[tuple[str, str], dict[str, Any]]) -> None:
    """What the UpdateItems' ADDs leave in a table."""
    for delivery_id, stat, deltas in writes:
        item = table.setdefault((delivery_id, stat), {"delivery_id": delivery_id, "stat": stat, "last_run": 1})
        for name, value in deltas.items():
            item[name] = item.get(name, 0) + value


def test_grouped_items_read_back_as_the_per_counter_items_they_replace() -> None:
    chooser = random.Random(7)
    families = ["Chrome", "Other", "Weird Bot 1.0", "Mobile Safari UI/WKWebView", "x.y:z#w"]
    stats = []
    expected: dict[str, dict[str, int]] = {}
    for _ in range(400):
        stat = chooser.choice([INDICATORS, url_stat(chooser.randrange(200)),
                               ua_stat(chooser.choice(["os", "browser", "device"]), chooser.choice(families)),
                               bucket_stat(HOUR + chooser.randrange(36) * 300_000)])
        counter = chooser.choice(["opens", "clicks_human", "total", "unique_human"]) if stat != INDICATORS \
            else chooser.choice(["hits", "machine_burst", "opens_unique"])
        value = chooser.randrange(-2, 5)
        stats.append({"delivery_id": "d", "stat": stat, "add": {counter: value}})
        expected.setdefault(stat, {})
        expected[stat][counter] = expected[stat].get(counter, 0) + value
    writes = counters.group(stats)
    assert writes == counters.group(stats)  # a record applied again writes the same
    assert all(len(deltas) <= counters.MAX_ATTRIBUTES_PER_WRITE for _, _, deltas in writes)
    table: dict[tuple[str, str], dict[str, Any]] = {}
    _apply(writes, table)
    assert len(table) < len({entry["stat"] for entry in stats}) / 4
    for prefix in ("url#", "ua#", "ua#browser#", "bucket#"):
        read = counters.merge(table.values(), prefix)
        want = {stat: {name: value for name, value in found.items() if value}
                for stat, found in expected.items() if stat.startswith(prefix)}
        assert {item["stat"]: {name: value for name, value in item.items() if name != "stat" and value}
                for item in read} == {stat: found for stat, found in want.items() if found}
    merged = counters.merge_indicators(None, table[("d", counters.TALLY)])
    assert merged is not None
    assert {name: value for name, value in merged.items() if value} == \
        {name: value for name, value in expected[INDICATORS].items() if value}


def test_readers_sum_per_counter_items_and_grouped_items() -> None:
    old = [{"delivery_id": "d", "stat": url_stat(4), "total": 3, "unique": 2, "last_run": 7, "last_updated": 1}]
    table: dict[tuple[str, str], dict[str, Any]] = {}
    _apply(counters.group([{"delivery_id": "d", "stat": url_stat(4), "add": {"total": 2, "unique": 1}},
                           {"delivery_id": "d", "stat": url_stat(5), "add": {"total": 1}}]), table)
    assert counters.merge([*old, *table.values()], "url#") == [
        {"stat": url_stat(4), "total": 5, "unique": 3}, {"stat": url_stat(5), "total": 1}]
    indicators = counters.merge_indicators({"stat": INDICATORS, "hits": 4, "last_updated": 10},
                                           {"stat": "tally", "hits": 1, "u4.t": 2, "last_updated": 20})
    assert indicators == {"hits": 5, "last_updated": 20}
    assert counters.merge_indicators(None, None) is None


def test_a_large_run_spills_past_the_write_limit_and_keeps_the_indicators_in_the_tally() -> None:
    stats = [{"delivery_id": "d", "stat": url_stat(url_id), "add": {"total": 1, "unique": 1}}
             for url_id in range(64)]
    stats.append({"delivery_id": "d", "stat": INDICATORS, "add": {"hits": 128}})
    writes = counters.group(stats)
    assert [stat for _, stat, _ in writes] == ["tally", "tally~1"]
    assert writes[0][2]["hits"] == 128 and sum(len(deltas) for _, _, deltas in writes) == 129


def test_an_empty_indicators_delta_still_touches_the_tally() -> None:
    assert counters.group([{"delivery_id": "d", "stat": INDICATORS, "add": {}}]) == [("d", "tally", {})]


def test_the_large_mailbox_providers_tracking_counters_go_to_the_tally() -> None:
    assert counters.place("domain#gmail.com", "opens_human") == ("tally", "dgmail.com.oh")
    table: dict[tuple[str, str], dict[str, Any]] = {}
    _apply(counters.group([{"delivery_id": "d", "stat": "domain#gmail.com", "add": {"opens": 2, "clicks": 1}},
                           {"delivery_id": "d", "stat": "domain#example.org", "add": {"opens": 1}}]), table)
    assert set(table) == {("d", "tally"), ("d", "domain#example.org")}
    sent = {"delivery_id": "d", "stat": "domain#gmail.com", "sent": 5, "opens": 1, "expires_at_epoch": 9}  # MTA
    assert counters.merge([sent, *table.values()], "domain#") == [
        {"stat": "domain#example.org", "opens": 1}, {"stat": "domain#gmail.com", "sent": 5, "opens": 3, "clicks": 1}]


def test_other_domains_go_to_shards_that_scale_with_the_delivery_audience() -> None:
    """A delivery's domains share tally#d<n> shards, one per DOMAIN_SHARD_RECIPIENTS recipients of its audience
    (so a shard holds few domains whatever the delivery), placed by the record alone; the MTA's domain# items
    and the tally's providers are summed with them; a record without audiences places them as before."""
    per_shard = counters.DOMAIN_SHARD_RECIPIENTS
    assert [counters.domain_shards(audience) for audience in (None, 0, 1, per_shard, per_shard + 1, 1000 * per_shard)
            ] == [0, 0, 1, 1, 2, 1000]
    domains = [f"domain{index}.example" for index in range(40)]
    stats = [{"delivery_id": delivery_id, "stat": f"domain#{domain}", "add": {"opens": 1, "clicks": index % 2}}
             for delivery_id in ("small", "large", "unknown") for index, domain in enumerate(domains)]
    stats += [{"delivery_id": "small", "stat": "domain#gmail.com", "add": {"opens": 2}},
              {"delivery_id": "small", "stat": "domain#(unknown)", "add": {"opens": 1}}]
    audiences = {"small": per_shard, "large": 100 * per_shard}  # "unknown": no summary found
    writes = counters.group(stats, audiences)
    assert writes == counters.group(list(reversed(stats)), dict(audiences))  # a pure function of the record
    items = {(delivery_id, stat) for delivery_id, stat, _ in writes}
    assert {stat for delivery_id, stat in items if delivery_id == "small"} == {"tally", "tally#d0"}
    large = {stat for delivery_id, stat in items if delivery_id == "large"}
    assert all(stat.startswith("tally#d") and 0 <= int(stat[len("tally#d"):]) < 100 for stat in large)
    assert len(large) > 30  # spread: a shard of a large delivery holds few domains
    assert {stat for delivery_id, stat in items if delivery_id == "unknown"} == {f"domain#{d}" for d in domains}
    table: dict[tuple[str, str], dict[str, Any]] = {}
    _apply(writes, table)
    mta = {"delivery_id": "small", "stat": "domain#domain3.example", "sent": 4, "delivered": 3, "opens": 2}
    for delivery_id in ("small", "large", "unknown"):
        found = counters.merge([*(item for (owner, _), item in table.items() if owner == delivery_id),
                                *([mta] if delivery_id == "small" else [])], "domain#")
        expected = {f"domain#{domain}": {"opens": 1, **({"clicks": 1} if index % 2 else {})}
                    for index, domain in enumerate(domains)}
        if delivery_id == "small":
            expected["domain#domain3.example"].update(sent=4, delivered=3, opens=3)
            expected.update({"domain#gmail.com": {"opens": 2}, "domain#(unknown)": {"opens": 1}})
        assert {item.pop("stat"): item for item in found} == expected
    # An older version's record (no audiences): the other domains, the unknown one too, in their own items.
    old = {stat for _, stat, _ in counters.group(stats)}
    assert "domain#(unknown)" in old and "domain#domain0.example" in old and not any(s.startswith("tally#d") for s in old)


def test_a_family_or_domain_keeps_its_four_counters_in_one_attribute_read_with_the_older_form() -> None:
    """Packed: one attribute per user-agent family or domain (its name once), each counter a field of the
    number, negative run deltas included; a record of the layout before writes each counter apart, and
    readers sum both forms, in the same item too."""
    stats = [{"delivery_id": "d", "stat": ua_stat("device", "Mobile"), "add": {"opens": 3, "clicks": 2}},
             {"delivery_id": "d", "stat": "domain#gmail.com", "add": {"opens": 1, "opens_human": -1}},
             {"delivery_id": "d", "stat": url_stat(3), "add": {"total": 2}}]
    [(_, stat, deltas)] = counters.group(stats)
    assert stat == "tally" and set(deltas) == {"ad:Mobile.o+c+oh+ch", "dgmail.com.o+c+oh+ch", "u3.t"}
    assert deltas["ad:Mobile.o+c+oh+ch"] == 3 + 2 * counters.PACK_BASE
    [(_, _, unpacked)] = counters.group(stats, packed=False)
    assert set(unpacked) == {"ad:Mobile.o", "ad:Mobile.c", "dgmail.com.o", "dgmail.com.oh", "u3.t"}
    table: dict[tuple[str, str], dict[str, Any]] = {}
    _apply(counters.group(stats, packed=False), table)
    _apply(counters.group([*stats, {"delivery_id": "d", "stat": "domain#gmail.com", "add": {"opens_human": 2}}]),
           table)
    assert counters.merge(table.values(), "ua#") == [{"stat": ua_stat("device", "Mobile"), "opens": 6, "clicks": 4}]
    assert counters.merge(table.values(), "domain#") == [{"stat": "domain#gmail.com", "opens": 2, "opens_human": 0}]


def test_a_family_shard_write_it_cannot_take_overflows_to_other_and_reads_back_summed() -> None:
    """counters.overflow: a refused tally#a<nn> write (or its spill's) folded into each dimension's "Other",
    in <item>~x; readers sum it with the families' own counts, and the totals stay the same."""
    stats = [{"delivery_id": "d", "stat": ua_stat(dimension, family), "add": {"opens": opens, "clicks_human": 1}}
             for dimension, family, opens in (("browser", "Qwerty.bot 1", 2), ("browser", "x:y#z", 3),
                                              ("os", "Zzz OS", 4), ("browser", "Chrome", 5))]
    writes = counters.group(stats)
    shards = [(item, deltas) for _, item, deltas in writes if item.startswith("tally#a")]
    assert len(shards) >= 2 and counters.overflow("tally", {"hits": 1}) is None
    assert counters.overflow("bucket#h000001740823200000", {"00.o": 1}) is None
    table: dict[tuple[str, str], dict[str, Any]] = {}
    _apply([write for write in writes if not write[1].startswith("tally#a")], table)
    folded = set()
    for item, deltas in shards:
        spilled = counters.overflow(item, deltas)
        assert spilled is not None and spilled == counters.overflow(item, deltas)  # the same when replayed
        name, changed, families = spilled
        assert name == f"{item}~x" and all(":Other." in attribute for attribute in changed)
        folded |= families
        _apply([("d", name, changed)], table)
    assert folded == {"browser#Qwerty.bot 1", "browser#x:y#z", "os#Zzz OS"}
    assert counters.overflow("tally#a03~1", {"ab:Other.o+c+oh+ch": 7})[1:] == (  # type: ignore[index]
        {"ab:Other.o+c+oh+ch": 7}, set())
    packed_sum = {"opens": 5, "clicks_human": 2}
    assert counters.merge(table.values(), "ua#browser#") == [
        {"stat": ua_stat("browser", "Chrome"), "opens": 5, "clicks_human": 1},
        {"stat": ua_stat("browser", "Other"), **packed_sum}]
    assert counters.merge(table.values(), "ua#os#") == [{"stat": ua_stat("os", "Other"), "opens": 4,
                                                        "clicks_human": 1}]


def test_a_family_shard_write_marks_its_families_by_their_bytes_and_other_items_none() -> None:
    short = {f"ab:Qwertybot.{counters.PACKED_CODES}": 5, f"ao:Qwerty OS.{counters.PACKED_CODES}": 1}
    marks = counters.family_marks("tally#a03", short)
    assert len(marks) == 2 and marks == counters.family_marks("tally#a03~2", dict(reversed(short.items())))
    assert all(0 <= mark < 2**64 for mark in marks)  # a number set's element: 20 digits at most
    assert marks[0] != counters.family_marks("tally#a03", {f"ao:Qwertybot.{counters.PACKED_CODES}": 5})[0]
    # A long family weighs its bytes: the cap bounds the shard's bytes, whatever the names.
    long_name = f"ab:{'x' * 500}bot.{counters.PACKED_CODES}"
    assert len(counters.family_marks("tally#a03", {long_name: 1})) == -(-(len(long_name) + 20) // 117) == 5
    # Unpacked (an older record): a family's counters are one family, weighed together.
    assert len(counters.family_marks("tally#a03", {"ab:Qwertybot.o": 1, "ab:Qwertybot.c": 1})) == 1
    for item in ("tally", "tally#a03~x", "tally#a03~y", "tally#u1", "bucket#h000001740823200000"):
        assert counters.family_marks(item, short) == []
    assert counters.is_family_shard("tally#a15") and counters.is_family_shard("tally#a15~1")
    assert not counters.is_family_shard("tally#a15~1~x")
    # The marks never read as counters.
    item = {"stat": "tally#a03", "fams": set(marks), f"ab:Qwertybot.{counters.PACKED_CODES}": 5}
    assert list(counters.expand(item)) == [(ua_stat("browser", "Qwertybot"), "opens", 5)]


def test_a_full_shard_keeps_the_families_it_holds_and_the_others_overflow() -> None:
    deltas = {f"ab:Held.{counters.PACKED_CODES}": 1, f"ab:New.{counters.PACKED_CODES}": 2, "ab:Old.o": 3}
    stored = {"delivery_id", "stat", "fams", "last_run", f"ab:Held.{counters.PACKED_CODES}", "ab:Old.c"}
    known, new = counters.split_known(deltas, stored)
    assert known == {f"ab:Held.{counters.PACKED_CODES}": 1, "ab:Old.o": 3}
    assert new == {f"ab:New.{counters.PACKED_CODES}": 2}
    assert counters.overflow("tally#a03", new, counters.LATE_OVERFLOW) == (
        "tally#a03~y", {f"ab:Other.{counters.PACKED_CODES}": 2}, {"browser#New"})
