"""The pure core: parsing rules, rejection reasons and precedence, the 1-minute rule, aggregates.

These tests pin the contract the native (Rust) twin reproduces.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.tracking import core
from chalicelib.tracking.core import Hit, aggregate, parse_log, process_log
from tests.tracking_logs import CHROME, KEYS, hit_id, line, log_bytes, record

T0 = 1_700_000_000_000
DELIVERY = "00112233445566ff"


def reasons(data: bytes) -> list[str]:
    return [rejection.reason for rejection in parse_log(data, KEYS).rejections]


# --------------------------------------------------------------------------- objects and lines

def test_plain_and_gzip_objects_give_the_same_hits() -> None:
    records = [record(ts=T0 + index) for index in range(5)]
    plain = parse_log(log_bytes(records), KEYS)
    zipped = parse_log(log_bytes(records, compress=True), KEYS)
    assert plain == zipped
    assert plain.lines == 5 and len(plain.hits) == 5 and plain.rejected == {}


def test_several_gzip_members_and_nul_padding_are_one_object() -> None:
    first, second = record(ts=T0), record(ts=T0 + 1)
    data = gzip.compress(line(first)) + b"\x00\x00" + gzip.compress(line(second)) + b"\x00"
    parsed = parse_log(data, KEYS)
    assert [hit.hit_id for hit in parsed.hits] == [first["hit_id"], second["hit_id"]]


@pytest.mark.parametrize("data", [
    gzip.compress(b"{}\n", mtime=0)[:-4],  # truncated
    gzip.compress(b"{}\n", mtime=0) + b"garbage",  # trailing bytes that are not a member
    gzip.compress(b"{}\n", mtime=0)[:10] + b"\xff" * 20,  # corrupt deflate stream
    b"\x1f\x8b",  # only the magic bytes
])
def test_a_bad_gzip_object_is_one_rejection_and_no_lines(data: bytes) -> None:
    parsed = parse_log(data, KEYS)
    assert (parsed.lines, parsed.hits, parsed.rejected) == (0, (), {"bad_gzip": 1})
    assert parsed.rejections[0].line == 0 and parsed.rejections[0].data == data


def test_crlf_missing_final_newline_and_blank_lines() -> None:
    first, second, third = record(ts=T0), record(ts=T0 + 1), record(ts=T0 + 2)
    data = (line(first)[:-1] + b"\r\n" + b"\n \t\r\n" + line(second) + b"\n" + line(third)[:-1])
    parsed = parse_log(data, KEYS)
    assert parsed.lines == 3 and parsed.rejected == {}
    assert [hit.ts for hit in parsed.hits] == [T0, T0 + 1, T0 + 2]


def test_records_run_together_without_a_newline_are_not_separated() -> None:
    data = line(record(ts=T0))[:-1] + line(record(ts=T0 + 1))
    parsed = parse_log(data, KEYS)
    assert (parsed.lines, parsed.hits, parsed.rejected) == (1, (), {"not_json": 1})


def test_line_numbers_count_every_piece_and_rejections_keep_the_bytes() -> None:
    data = line(record()) + b"\n" + b"nonsense\r\n" + line(record())
    parsed = parse_log(data, KEYS)
    [rejection] = parsed.rejections
    assert (rejection.line, rejection.reason, rejection.data) == (3, "not_json", b"nonsense")


def test_empty_object() -> None:
    assert parse_log(b"", KEYS) == core.ParsedLog(0, (), {}, 0, ())


# --------------------------------------------------------------------------- rejection reasons

def _raw(value: Any) -> bytes:
    return json.dumps(value).encode() + b"\n"


GOOD = record(ts=T0, the_hit_id="0" * 32)
REJECTED_LINES: list[tuple[str, bytes, str | None]] = [
    ("line_too_long", line({**GOOD, "ua": "x" * core.MAX_LINE_BYTES}), None),
    ("not_utf8", b'{"v":1,"ua":"\xff"}\n', None),
    ("not_utf8", b'{"v":1,"ua":"\xed\xa0\x80"}\n', None),  # an encoded surrogate
    ("not_json", b"{not json}\n", None),
    ("not_json", b'{"v":1,"v":1}\n', None),  # duplicate key
    ("not_json", b'{"v":1,"x":{"a":1,"a":2}}\n', None),  # duplicate key, nested
    ("not_json", b'{"v":NaN}\n', None),
    ("not_json", b'{"v":1,"x":1e400}\n', None),
    ("not_json", b'{"v":1,"ua":"\\ud800"}\n', None),  # unpaired surrogate escape
    ("not_json", b'{"x":' + b"[" * 40 + b"]" * 40 + b"}\n", None),  # too deep
    ("not_json", b"\xef\xbb\xbf" + line(GOOD), None),  # a byte order mark is not JSON
    ("not_object", b"[1,2]\n", None),
    ("not_object", b'"text"\n', None),
    ("bad_version", _raw({k: v for k, v in GOOD.items() if k != "v"}), None),
    ("bad_version", _raw({**GOOD, "v": 2}), None),
    ("bad_version", _raw({**GOOD, "v": True}), None),
    ("bad_version", _raw({**GOOD, "v": 1.0}), None),
    ("bad_field", _raw({**GOOD, "hit_id": "A" * 32}), "hit_id"),
    ("bad_field", _raw({**GOOD, "hit_id": "0" * 31}), "hit_id"),
    ("bad_field", _raw({**GOOD, "ts": "1700000000000"}), "ts"),
    ("bad_field", _raw({**GOOD, "ts": -1}), "ts"),
    ("bad_field", _raw({**GOOD, "ts": 2**53}), "ts"),
    ("bad_field", b'{"v":1,"hit_id":"' + b"0" * 32 + b'","ts":1e3}\n', "ts"),
    ("bad_field", _raw({**GOOD, "kind": "view"}), "kind"),
    ("bad_field", _raw({**GOOD, "delivery_id": "00112233445566FF"}), "delivery_id"),
    ("bad_field", _raw({**GOOD, "log_id": None}), "log_id"),
    ("bad_field", _raw({**GOOD, "url_id": 4.5}), "url_id"),
    ("bad_field", _raw({**GOOD, "token": 7}), "token"),
    ("bad_field", _raw({k: v for k, v in GOOD.items() if k != "p"}), "p"),
    ("bad_field", _raw({**GOOD, "ua": None}), "ua"),
    ("bad_field", _raw({**GOOD, "ip": "1" * 65}), "ip"),
    ("bad_field", _raw({**GOOD, "ts": -1, "kind": "view"}), "ts"),  # the first wrong field in the fixed order
    ("bad_field", _raw({**GOOD, "purpose": ""}), "purpose"),  # optional, but never empty when present
    ("bad_field", _raw({**GOOD, "purpose": "Prefetch"}), "purpose"),
    ("bad_field", _raw({**GOOD, "purpose": "prefetch;prerender"}), "purpose"),  # the header's, not the record's
    ("bad_field", _raw({**GOOD, "purpose": None}), "purpose"),
    ("bad_field", _raw({**GOOD, "purpose": ["prefetch"]}), "purpose"),
    ("bad_field", _raw({**GOOD, "ip": 5, "purpose": 1}), "ip"),  # checked last
    ("token_malformed", _raw({**GOOD, "token": "x", "purpose": "prefetch"}), None),
    ("token_malformed", _raw({**GOOD, "token": "not-a-token"}), None),
    ("token_unknown_key", _raw(record(ts=T0, key_id=9)), None),
    ("token_bad_signature", _raw(record(ts=T0, secret=b"x" * 32)), None),
    ("token_bad_signature", _raw({**record(ts=T0, params="eyJhIjoiMSJ9"), "p": "eyJhIjoiMiJ9"}), None),
    ("token_kind_mismatch", _raw(record(kind="open", token_kind="click", url_id=4)), None),
    ("token_kind_mismatch", _raw(record(kind="click", token_kind="open", url_id=1)), None),
    ("token_kind_mismatch", _raw(record(kind="optout", token_kind="mirror", url_id=2)), None),
    ("token_claims_mismatch", _raw({**GOOD, "log_id": 2}), None),
    ("token_claims_mismatch", _raw({**GOOD, "url_id": 5}), None),
    ("token_claims_mismatch", _raw({**GOOD, "delivery_id": "ffffffffffffffff"}), None),
]


@pytest.mark.parametrize(("reason", "data", "field_name"), REJECTED_LINES,
                         ids=[f"{index}-{case[0]}" for index, case in enumerate(REJECTED_LINES)])
def test_each_rejection_reason(reason: str, data: bytes, field_name: str | None) -> None:
    parsed = parse_log(data, KEYS)
    assert parsed.hits == () and parsed.lines == 1
    assert parsed.rejected == {reason: 1}
    assert parsed.rejections[0].field == field_name
    assert reason in core.REASONS


@pytest.mark.parametrize(("kind", "token_kind"), [
    ("click", "click"), ("optout", "click"), ("mirror", "click"),
    ("open", "open"), ("optout", "optout"), ("mirror", "mirror"),
])
def test_every_kind_a_token_can_produce_is_accepted(kind: str, token_kind: str) -> None:
    url_id = 7 if token_kind == "click" else None
    parsed = parse_log(line(record(kind=kind, token_kind=token_kind, url_id=url_id)), KEYS)
    assert [hit.kind for hit in parsed.hits] == [kind]


@pytest.mark.parametrize("purpose", core.PURPOSES)
def test_a_declared_purpose_is_kept_in_the_hit_and_records_without_one_stay_valid(purpose: str) -> None:
    parsed = parse_log(line(record(ts=T0, purpose=purpose)) + line(record(ts=T0 + 1)), KEYS)
    assert [hit.purpose for hit in parsed.hits] == [purpose, ""]
    assert parsed.rejected == {}


def test_extra_fields_are_ignored_and_personalised_links_verify_with_p() -> None:
    parsed = parse_log(line(record(params="eyJhIjoiMSJ9", extra={"nested": [1, 2]})), KEYS)
    assert len(parsed.hits) == 1


def test_duplicate_hit_ids_in_one_object_are_dropped_not_rejected() -> None:
    first = record(ts=T0)
    parsed = parse_log(log_bytes([first, first, record(ts=T0 + 1), first]), KEYS)
    assert (parsed.lines, len(parsed.hits), parsed.duplicates, parsed.rejected) == (4, 2, 2, {})


def test_user_agent_is_cut_at_a_character_boundary() -> None:
    agent = "a" * 511 + "é" + "b" * 50
    [hit] = parse_log(line(record(ua=agent)), KEYS).hits
    assert hit.ua == "a" * 511 and len(hit.ua.encode()) <= core.MAX_UA_BYTES
    assert core.cut_user_agent("é" * 300) == "é" * 256


def test_rejected_counts_follow_the_reason_order() -> None:
    parsed = parse_log(b"[]\n{x\n[]\n" + line({**GOOD, "log_id": 9}), KEYS)
    assert list(parsed.rejected.items()) == [("not_json", 1), ("not_object", 2), ("token_claims_mismatch", 1)]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_parse_never_raises_and_accounts_for_every_line(data: bytes) -> None:
    parsed = parse_log(data, KEYS)
    if parsed.lines:
        assert parsed.lines == len(parsed.hits) + parsed.duplicates + sum(parsed.rejected.values())


@settings(max_examples=200)
@given(st.text(max_size=60))
def test_arbitrary_text_lines_never_raise(text: str) -> None:
    parse_log(text.encode("utf-8", "surrogatepass"), KEYS)


# --------------------------------------------------------------------------- the 1-minute rule and aggregates

def hit(kind: str = "open", ts: int = T0, log_id: int = 1, url_id: int | None = None, ua: str = CHROME,
        ip: str = "203.0.113.0", delivery_id: str = DELIVERY, serial: int | None = None) -> Hit:
    url = {"open": 1, "click": 4, "optout": 2, "mirror": 3}[kind] if url_id is None else url_id
    return Hit(hit_id(ts, serial), ts, kind, delivery_id, log_id, url, ua, ip)


def all_hits(indicators: dict[str, int]) -> dict[str, int]:
    """The indicators that count every hit, people and machines alike."""
    return {name: value for name, value in indicators.items() if name in core.INDICATORS[:8]}


def human(indicators: dict[str, int]) -> dict[str, int]:
    """The human and machine counters."""
    return {name: value for name, value in indicators.items() if name not in core.INDICATORS[:8]}


def test_repeated_opens_within_a_minute_count_once() -> None:
    opens = [hit(ts=T0), hit(ts=T0 + 30_000), hit(ts=T0 + 59_999), hit(ts=T0 + 60_000), hit(ts=T0 + 100_000),
             hit(ts=T0 + 125_000)]
    counted = core.counted_open_ids(opens)
    # counted: 0 s, 60 s, 125 s (100 s is within a minute of the counted 60 s)
    assert counted == {opens[0].hit_id, opens[3].hit_id, opens[5].hit_id}
    [delta] = aggregate(opens).deliveries
    assert delta.indicators == {"hits": 6, "opens_unique": 1, "opens_total": 3, "opens_unique_human": 1,
                                "opens_total_human": 3}


def test_indicators_of_one_delivery() -> None:
    hits = [
        hit("open", T0, log_id=1), hit("click", T0 + 1000, log_id=1, url_id=4),
        hit("click", T0 + 2000, log_id=1, url_id=4), hit("click", T0 + 3000, log_id=1, url_id=5, ua="Other/1"),
        hit("click", T0 + 4000, log_id=2, url_id=4),  # a click without an open still opens
        hit("optout", T0 + 5000, log_id=2), hit("optout", T0 + 6000, log_id=2),  # once per recipient
        hit("mirror", T0 + 7000, log_id=3), hit("mirror", T0 + 400_000, log_id=3),
    ]
    result = aggregate(hits)
    [delta] = result.deliveries
    assert all_hits(delta.indicators) == {"hits": 9, "opens_unique": 3, "opens_total": 1, "clicks_unique": 2,
                                          "clicks_total": 4, "persons_clicking": 3, "optouts": 1, "mirror_views": 2}
    # Recipient 1 clicked links 4 and 5 within 2 s: all three of its clicks are a burst (machine).
    assert human(delta.indicators) == {"opens_unique_human": 3, "opens_total_human": 1, "clicks_unique_human": 1,
                                       "clicks_total_human": 1, "hits_machine": 3, "machine_burst": 3}
    assert delta.urls == {1: {"total": 1, "total_human": 1, "unique": 1, "unique_human": 1},
                          2: {"total": 2, "total_human": 2, "unique": 1, "unique_human": 1},
                          3: {"total": 2, "total_human": 2, "unique": 1, "unique_human": 1},
                          4: {"total": 3, "total_human": 1, "unique": 2, "unique_human": 1},
                          5: {"total": 1, "unique": 1}}
    start = T0 - T0 % core.BUCKET_MS
    assert delta.buckets == {start: {"clicks": 4, "clicks_human": 1, "opens": 1, "opens_human": 1}}
    assert delta.user_agents == {"Other/1": {"clicks": 1},
                                 CHROME: {"clicks": 3, "clicks_human": 1, "opens": 1, "opens_human": 1}}
    assert [(update.log_id, update.added) for update in result.recipients] == [(1, 4), (2, 3), (3, 2)]


def test_prior_hits_are_not_counted_again_and_the_rule_spans_runs() -> None:
    first = [hit("open", T0), hit("click", T0 + 1000)]
    stored = {(DELIVERY, 1): aggregate(first).recipients[0].hits}
    second = aggregate([first[1], hit("open", T0 + 30_000), hit("open", T0 + 61_000)], stored)
    [delta] = second.deliveries
    assert second.duplicates == 1
    assert delta.indicators == {"hits": 2, "opens_total": 1, "opens_total_human": 1}
    assert second.recipients[0].added == 2


def test_a_late_earlier_open_moves_which_opens_count() -> None:
    stored = aggregate([hit("open", T0 + 50_000), hit("open", T0 + 100_000)]).recipients[0].hits
    late = aggregate([hit("open", T0)], {(DELIVERY, 1): stored})
    [delta] = late.deliveries
    # before: 50 s counted, 100 s dropped; after: 0 s and 100 s counted, 50 s dropped
    assert delta.indicators == {"hits": 1, "opens_total": 1, "opens_total_human": 1}


def test_a_recipients_stored_hits_are_the_first_and_the_last_and_every_hit_counts() -> None:
    hits = [hit("click", T0 + index) for index in range(10)]
    result = aggregate(hits, max_hits_per_recipient=4)
    [update] = result.recipients
    assert [h.ts for h in update.hits] == [T0, T0 + 1, T0 + 8, T0 + 9] and result.over_limit == 6
    assert update.summary is not None and update.summary.count == 6 and update.summary.clicked
    assert result.deliveries[0].indicators["clicks_total"] == 10
    stored, summaries = {(DELIVERY, 1): update.hits}, {(DELIVERY, 1): update.summary}
    earlier = aggregate([hit("click", T0 - 5)], stored, 4, summaries=summaries)
    assert earlier.over_limit == 1 and earlier.recipients[0].hits[0].ts == T0 - 5
    assert earlier.recipients[0].summary.count == 7  # type: ignore[union-attr]
    assert earlier.deliveries[0].indicators == {"hits": 1, "clicks_total": 1, "clicks_total_human": 1}
    later = aggregate([hit("click", T0 + 100)], stored, 4, summaries=summaries)
    assert [h.ts for h in later.recipients[0].hits] == [T0, T0 + 1, T0 + 9, T0 + 100]
    assert later.deliveries[0].indicators == {"hits": 1, "clicks_total": 1, "clicks_total_human": 1}
    again = aggregate(hits, stored, 4, summaries=summaries)  # every one stored or evicted: all duplicates
    assert again.recipients == () and again.deliveries == () and again.duplicates == 10


def test_process_log_is_parse_then_aggregate() -> None:
    data = log_bytes([record(kind="open", ts=T0), record(kind="click", ts=T0 + 5)])
    parsed, aggregates = process_log(data, KEYS)
    assert aggregates == aggregate(parsed.hits)
    assert aggregates.deliveries[0].indicators["clicks_total"] == 1


_hits = st.builds(
    lambda kind, offset, log_id, url_id, ua, serial: Hit(
        hit_id(T0 + offset, serial), T0 + offset, kind, DELIVERY if log_id < 4 else "ffeeddccbbaa9988", log_id,
        url_id, ua, "198.51.100.0"),
    kind=st.sampled_from(core.KINDS), offset=st.integers(0, 900_000), log_id=st.integers(1, 6),
    url_id=st.integers(1, 6), ua=st.sampled_from(["a", "b", CHROME]), serial=st.integers(0, 40),
)


def _fold(batches: list[list[Hit]], limit: int) -> tuple[dict[tuple[str, int], tuple[Hit, ...]], dict[str, Any]]:
    """Batch after batch, each over the previous ones' stored hits and summaries: (stored, summed deltas)."""
    stored, _, totals = _fold_bounded(batches, limit, None)
    return stored, totals


def _add(target: dict[Any, Any], source: dict[Any, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, dict):
            _add(target.setdefault(key, {}), value)
        else:
            target[key] = target.get(key, 0) + value


def _nonzero(value: dict[Any, Any]) -> dict[Any, Any]:
    out = {}
    for key, item in value.items():
        item = _nonzero(item) if isinstance(item, dict) else item
        if item:
            out[key] = item
    return out


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(hits=st.lists(_hits, max_size=40, unique_by=lambda h: h.hit_id), cuts=st.lists(st.integers(0, 40), max_size=4),
       data=st.data())
def test_batching_and_order_never_change_the_result(hits: list[Hit], cuts: list[int], data: st.DataObject) -> None:
    """Exactly once for data below the bound: any split into runs, any order, any replayed batch gives one answer."""
    whole = _fold([hits], 500)
    batches = _split(data.draw(st.permutations(hits)), cuts)
    replayed = batches + [batches[data.draw(st.integers(0, len(batches) - 1))]]
    assert _fold(batches, 500) == whole
    assert _fold(replayed, 500) == whole


def _split(hits: list[Hit], cuts: list[int]) -> list[list[Hit]]:
    points = sorted({min(cut, len(hits)) for cut in cuts})
    return [hits[start:end] for start, end in zip([0] + points, points + [len(hits)], strict=True)]


def _hand_count(hits: list[Hit], in_order: bool) -> dict[tuple[str, str], Any]:
    """Per delivery, what every split must count past the bound: the sums and flags of every distinct hit
    (with hits arriving in time order, the 1-minute rule's opens too)."""
    expected: dict[tuple[str, str], Any] = {}
    by_recipient: dict[tuple[str, int], list[Hit]] = {}
    for item in hits:
        by_recipient.setdefault(item.recipient, []).append(item)
    for (delivery, _), mine in by_recipient.items():
        indicators = expected.setdefault((delivery, "indicators"), {})
        clicks = [h for h in mine if h.kind == "click"]
        for name, value in (("hits", len(mine)), ("opens_unique", 1), ("clicks_total", len(clicks)),
                            ("clicks_unique", int(bool(clicks))), ("optouts", int(any(h.kind == "optout" for h in mine))),
                            ("mirror_views", sum(h.kind == "mirror" for h in mine)),
                            ("persons_clicking", len({(h.ua, h.ip) for h in clicks})),
                            *((("opens_total", len(core.counted_open_ids(mine))),) if in_order else ())):
            indicators[name] = indicators.get(name, 0) + value
        for h in clicks:
            bucket = expected.setdefault((delivery, "bucket_clicks"), {})
            bucket[h.ts - h.ts % core.BUCKET_MS] = bucket.get(h.ts - h.ts % core.BUCKET_MS, 0) + 1
            agents = expected.setdefault((delivery, "ua_clicks"), {})
            agents[h.ua] = agents.get(h.ua, 0) + 1
    return {key: {name: value for name, value in counts.items() if value} for key, counts in expected.items()}


def _counted(totals: dict[Any, Any], in_order: bool) -> dict[tuple[str, str], Any]:
    names = ("hits", "opens_unique", "clicks_total", "clicks_unique", "optouts", "mirror_views", "persons_clicking",
             *(("opens_total",) if in_order else ()))
    found: dict[tuple[str, str], Any] = {}
    for (delivery, group), values in totals.items():
        if group == "indicators":
            found[(delivery, group)] = {name: values[name] for name in names if values.get(name)}
        elif group in ("buckets", "user_agents"):
            target = "bucket_clicks" if group == "buckets" else "ua_clicks"
            clicks = {key: counts["clicks"] for key, counts in values.items() if counts.get("clicks")}
            if clicks:
                found[(delivery, target)] = clicks
    return found


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hits=st.lists(_hits, max_size=40, unique_by=lambda h: h.hit_id), cuts=st.lists(st.integers(0, 40), max_size=5),
       limit=st.sampled_from([0, 1, 3, 6]), first=st.integers(0, 6), in_order=st.booleans(), data=st.data())
def test_past_the_bound_every_hit_still_counts_once(hits: list[Hit], cuts: list[int], limit: int, first: int,
                                                    in_order: bool, data: st.DataObject) -> None:
    """Past the bound, however the hits are split into runs (and replayed), the per-hit counts and the flags
    equal a hand count of every distinct hit; arriving in time order, the 1-minute rule's opens too."""
    ordered = sorted(hits, key=core.hit_order) if in_order else data.draw(st.permutations(hits))
    batches = _split(ordered, cuts)
    replayed = batches + [batches[data.draw(st.integers(0, len(batches) - 1))]]
    expected = _hand_count(hits, in_order)
    for runs in (batches, replayed):
        stored, summaries, totals = _fold_bounded(runs, limit, first)
        assert _counted(totals, in_order) == expected
        for key, kept in stored.items():
            assert len(kept) <= limit
            mine = sorted((h for h in hits if h.recipient == key), key=core.hit_order)
            if len(mine) > limit:  # the first and the last ones are what is stored
                assert list(kept) == mine[:min(first, limit)] + mine[len(mine) - (limit - min(first, limit)):]
                assert summaries[key].count == len(mine) - limit


def _fold_bounded(batches: list[list[Hit]], limit: int, first: int | None) -> tuple[Any, Any, dict[Any, Any]]:
    stored: dict[tuple[str, int], tuple[Hit, ...]] = {}
    summaries: dict[tuple[str, int], core.Summary] = {}
    totals: dict[Any, Any] = {}
    for batch in batches:
        result = aggregate(batch, stored, limit, summaries=summaries, first_hits_per_recipient=first)
        for update in result.recipients:
            stored[(update.delivery_id, update.log_id)] = update.hits
            if update.summary is not None:
                summaries[(update.delivery_id, update.log_id)] = update.summary
        for delta in result.deliveries:
            for group in ("indicators", "urls", "buckets", "user_agents"):
                _add(totals.setdefault((delta.delivery_id, group), {}), getattr(delta, group))
    return stored, summaries, {key: _nonzero(value) for key, value in totals.items() if _nonzero(value)}


@settings(max_examples=100)
@given(hits=st.lists(_hits, max_size=30, unique_by=lambda h: h.hit_id))
def test_counters_equal_a_direct_count(hits: list[Hit]) -> None:
    _, totals = _fold([hits], 500)
    by_recipient: dict[tuple[str, int], list[Hit]] = {}
    for item in hits:
        by_recipient.setdefault(item.recipient, []).append(item)
    for delivery in {item.delivery_id for item in hits}:
        mine = {key: value for key, value in by_recipient.items() if key[0] == delivery}
        indicators = totals.get((delivery, "indicators"), {})
        assert indicators.get("opens_unique", 0) == len(mine)
        assert indicators.get("clicks_total", 0) == sum(h.kind == "click" for v in mine.values() for h in v)
        assert indicators.get("clicks_unique", 0) == sum(any(h.kind == "click" for h in v) for v in mine.values())
        assert indicators.get("persons_clicking", 0) == sum(
            len({(h.ua, h.ip) for h in v if h.kind == "click"}) for v in mine.values())
        assert indicators.get("opens_total", 0) == sum(len(core.counted_open_ids(v)) for v in mine.values())
