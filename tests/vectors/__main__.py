"""Write tests/vectors/*.json from the Python reference (see __init__)."""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from chalicelib.tracking import core, run_items
from chalicelib.tracking.items import encode_summary
from tests.tracking_logs import CHROME, KEYS, SECRET, line, record

HERE = Path(__file__).parent
T0 = 1_740_823_200_000
D1, D2 = "00112233445566ff", "0a0b0c0d0e0f1011"


def _id(serial: int) -> str:
    return f"{T0:012x}{serial:020x}"


def _rec(serial: int, offset: int = 0, **fields: Any) -> dict[str, Any]:
    return record(ts=T0 + offset, the_hit_id=_id(serial), **fields)


def parse_cases() -> list[tuple[str, bytes]]:
    good = [_rec(1, kind="open"), _rec(2, 5, kind="click")]
    deep = b'{"v":1,"x":' + b"[" * 40 + b"]" * 40 + b"}\n"
    return [
        ("two hits", b"".join(line(item) for item in good)),
        ("gzip members, NUL padding", gzip.compress(line(good[0]), mtime=0) + b"\0\0"
         + gzip.compress(line(good[1]), mtime=0) + b"\0"),
        ("bad gzip", gzip.compress(line(good[0]), mtime=0)[:-4]),
        ("CRLF, blank lines, no final newline", line(good[0])[:-1] + b"\r\n \t\r\n\n" + line(good[1])[:-1]),
        ("a repeated hit id is a duplicate", line(good[0]) + line(good[0]) + line(good[1])),
        ("rejection reasons in order", b"".join([
            b"x" * (core.MAX_LINE_BYTES + 1) + b"\n",
            b'{"v":1,"ua":"\xff"}\n',
            b'{"v":1,"v":1}\n', b"[1]\n", b'{"v":NaN}\n', deep,
            b'{"v":2}\n',
            line({**_rec(3), "hit_id": "XYZ"}), line({**_rec(4), "ts": 1.0}), line({**_rec(5), "kind": "view"}),
            line({**_rec(6), "ip": "1" * 65}),
            line({**_rec(7), "token": "nonsense"}),
            line(_rec(8, key_id=9)),
            line({**_rec(9), "p": "altered"}),
            line(_rec(10, kind="open", token_kind="click")),
            line({**_rec(11), "log_id": 2}),
        ])),
        ("a long user agent is cut at a character boundary", line(_rec(12, ua="é" * 300))),
        ("a click token also makes optout and mirror hits", line(_rec(13, kind="optout", token_kind="click"))
         + line(_rec(14, kind="mirror", token_kind="click"))),
        ("a declared purpose is kept; any other value is a bad field",
         line({**_rec(15, kind="open"), "purpose": "prefetch"}) + line({**_rec(16, kind="open"), "purpose": "x"})
         + line({**_rec(17, kind="open"), "purpose": None})),
    ]


def _hit(hit: core.Hit) -> dict[str, Any]:
    fields = {"hit_id": hit.hit_id, "ts": hit.ts, "kind": hit.kind, "delivery_id": hit.delivery_id,
              "log_id": hit.log_id, "url_id": hit.url_id, "ua": hit.ua, "ip": hit.ip}
    return {**fields, "purpose": hit.purpose} if hit.purpose else fields  # optional: absent when undeclared


def parse_vectors() -> dict[str, Any]:
    cases = []
    for name, data in parse_cases():
        parsed = core.parse_log(data, KEYS)
        try:
            source: dict[str, str] = {"data": data.decode("utf-8")}
        except UnicodeDecodeError:
            source = {"data_base64": base64.b64encode(data).decode("ascii")}
        cases.append({"name": name, **source, "expected": {
            "lines": parsed.lines, "hits": [_hit(hit) for hit in parsed.hits], "rejected": parsed.rejected,
            "duplicates": parsed.duplicates,
            "rejections": [{"line": r.line, "reason": r.reason, "field": r.field,
                            "data_base64": base64.b64encode(r.data).decode("ascii")} for r in parsed.rejections]}})
    return {"keys": {str(key_id): secret.hex() for key_id, secret in KEYS.items()}, "cases": cases}


def _h(serial: int, offset_ms: int, kind: str = "click", delivery_id: str = D1, log_id: int = 1,
       url_id: int | None = None, ua: str = CHROME, ip: str = "203.0.113.0") -> core.Hit:
    url = url_id if url_id is not None else {"click": 4, "open": 1, "optout": 2, "mirror": 3}[kind]
    return core.Hit(_id(serial), T0 + offset_ms, kind, delivery_id, log_id, url, ua, ip)


def aggregate_cases() -> list[dict[str, Any]]:
    opens = [_h(index, offset, "open") for index, offset in enumerate([0, 30_000, 59_999, 60_000, 100_000, 125_000])]
    clicks = [_h(10 + index, 1_000 + index, "click", log_id=2, ua=ua, ip=ip)
              for index, (ua, ip) in enumerate([("a", "x"), ("a", "x"), ("a", "y"), ("b", "x")])]
    flood = [_h(100 + index, 2_000 + 50 * index, "click", log_id=3, url_id=5, ua="python-requests/2.32.3")
             for index in range(30)] + [_h(99, 1_000, "open", log_id=3)]
    first = core.aggregate(flood, None, 6, None, None, 2)
    [update] = first.recipients
    later = [_h(200, 3_600_000, "click", log_id=3, url_id=4, ua="person", ip="198.51.100.7"), *flood[10:14],
             _h(201, 1_500, "click", log_id=3, url_id=6), _h(202, 900, "open", log_id=3)]
    legacy = [_h(300 + index, index * 70_000, "open" if index % 2 else "click", log_id=4) for index in range(8)]
    return [
        {"name": "the 1-minute rule, persons clicking, two deliveries",
         "new_hits": opens + clicks + [_h(20, 0, "optout", D2, 1), _h(21, 10, "mirror", D2, 1),
                                       _h(22, 20, "mirror", D2, 1)],
         "prior": [], "max": 200, "first": None},
        {"name": "stored hits seen again and repeated ids are duplicates",
         "new_hits": [opens[0], opens[1], opens[1], _h(30, 200_000, "open")], "prior": [((D1, 1), opens[:2], None)],
         "max": 200, "first": None},
        {"name": "a flood past the bound: the first 2 and the last 4 kept, the rest evicted into the summary",
         "new_hits": flood, "prior": [], "max": 6, "first": 2},
        {"name": "after a flood: a later real click is stored, replays are duplicates, late hits are evicted",
         "new_hits": later, "prior": [((D1, 3), update.hits, update.summary)], "max": 6, "first": 2},
        {"name": "an item from before the bound (no summary) past it: evicted and still counted",
         "new_hits": [_h(399, 900_000, "click", log_id=4)], "prior": [((D1, 4), legacy, None)], "max": 4,
         "first": None},
        {"name": "a bound of 0 stores nothing and counts everything",
         "new_hits": opens[:3] + clicks[:2], "prior": [], "max": 0, "first": None},
    ]


def _summary(summary: core.Summary | None) -> dict[str, Any] | None:
    return None if summary is None else encode_summary(summary)


def _keyed(mapping: dict[Any, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {str(key): dict(value) for key, value in mapping.items()}


def aggregate_vectors() -> dict[str, Any]:
    cases = []
    for case in aggregate_cases():
        prior = {key: hits for key, hits, _ in case["prior"]}
        summaries = {key: summary for key, _, summary in case["prior"] if summary is not None}
        result = core.aggregate(case["new_hits"], prior, case["max"], None, summaries, case["first"])
        cases.append({
            "name": case["name"], "max_hits_per_recipient": case["max"], "first_hits_per_recipient": case["first"],
            "new_hits": [_hit(hit) for hit in case["new_hits"]],
            "prior": [{"delivery_id": key[0], "log_id": key[1], "hits": [_hit(hit) for hit in hits],
                       "summary": _summary(summary)} for key, hits, summary in case["prior"]],
            "expected": {
                "recipients": [{"delivery_id": u.delivery_id, "log_id": u.log_id,
                                "hits": [hit.hit_id for hit in u.hits], "added": u.added, "over_limit": u.over_limit,
                                "verdicts": list(u.verdicts), "summary": _summary(u.summary)}
                               for u in result.recipients],
                "deliveries": [{"delivery_id": d.delivery_id, "indicators": d.indicators, "urls": _keyed(d.urls),
                                "buckets": _keyed(d.buckets), "user_agents": _keyed(d.user_agents)}
                               for d in result.deliveries],
                "duplicates": result.duplicates, "over_limit": result.over_limit}})
    return {"cases": cases}


def _ri_hit(serial: int, offset_ms: int = 0, verdict: int = 0, **fields: Any) -> tuple[core.Hit, int]:
    return (replace(_h(serial, 0), ts=T0 + offset_ms, **fields), verdict)


def _varint(value: int) -> bytes:
    out = bytearray()
    run_items._varint(out, value)
    return bytes(out)


def _raw(texts: Sequence[bytes], hits: Sequence[bytes], corrections: Sequence[bytes] = (),
         counters: Sequence[bytes] = (), version: int = run_items.VERSION) -> bytes:
    """A body put together by hand, for the refusals."""
    return b"".join([bytes([version]), _varint(len(texts)), *(_varint(len(text)) + text for text in texts),
                     _varint(len(hits)), *hits, _varint(len(corrections)), *corrections,
                     _varint(len(counters)), *counters])


def _raw_hit(serial: int, *fields: int, flags: int = 0, ts: int | None = None) -> bytes:
    """flags, the id of `serial`, [ts], then `fields` (log id, URL id, agent, address, verdict + 1) as varints."""
    head = bytes([flags | (0x10 if ts is not None else 0)]) + bytes.fromhex(_id(serial))
    return head + (_varint(ts) if ts is not None else b"") + b"".join(_varint(value) for value in fields)


def run_item_cases() -> tuple[list[dict[str, Any]], list[tuple[str, bytes]], list[dict[str, Any]]]:
    """(valid items, refused bodies, refused encodings) for tests/vectors/run_items.json."""
    top = 2**53 - 1
    valid: list[dict[str, Any]] = [
        {"name": "an empty run item", "hits": [], "corrections": [], "counters": []},
        {"name": "hits in canonical order, each text once, ids carrying their time",
         "hits": [_ri_hit(3, 0, log_id=2), _ri_hit(2, 5_000, kind="open"), _ri_hit(1, 5_000, kind="open"),
                  _ri_hit(4, 7_000, ua="python-requests/2.32.3", ip="198.51.100.0", log_id=2)],
         "corrections": [], "counters": []},
        {"name": "a hit not at its id's time carries its ts",
         "hits": [_ri_hit(5, 0), (replace(_h(6, 0), ts=12), 0)], "corrections": [], "counters": []},
        {"name": "every kind and purpose; verdicts unclassified, human and a machine mask",
         "hits": [_ri_hit(7, 1, -1, kind="click"), _ri_hit(8, 2, 0, kind="open", purpose="prefetch"),
                  _ri_hit(9, 3, 1 << 8, kind="optout", purpose="prerender"),
                  _ri_hit(10, 4, 511, kind="mirror", purpose="preview")],
         "corrections": [], "counters": []},
        {"name": "corrections by hit id",
         "hits": [_ri_hit(11)], "corrections": [(_id(40), -1), (_id(30), 64)], "counters": []},
        {"name": "counters by stat and field, signed, a delta of 0 left out",
         "hits": [], "corrections": [],
         "counters": [("url#000004", "clicks_total", 3), ("indicators", "opens_unique", -1),
                      ("indicators", "clicks_total", 0), ("indicators", "hits", 2**63 - 1),
                      ("bucket#001740823200000", "opens", -2**63)]},
        {"name": "texts: an empty address, a non-ASCII agent, a text shared by a hit and a counter",
         "hits": [_ri_hit(12, ua="Agent é 🙂", ip=""), _ri_hit(13, ua="ua#os#Other", ip="")],
         "corrections": [], "counters": [("ua#os#Other", "clicks", 1)]},
        {"name": "the largest values",
         "hits": [(core.Hit("f" * 32, top, "click", D1, top, top, "a", "b"), top)], "corrections": [],
         "counters": []},
    ]
    hit = _raw_hit(1, 1, 4, 0, 1, 1)
    refused = [
        ("empty", b""),
        ("version 2", _raw([b"a", b"b"], [hit], version=2)),
        ("truncated in the texts", _raw([b"agent"], [])[:4]),
        ("truncated in a hit id", _raw([b"a", b"b"], [hit])[:12]),
        ("truncated before the counters", _raw([b"a", b"b"], [hit])[:-1]),
        ("an overlong varint", b"\x01\x80\x00\x00\x00\x00"),
        ("a varint of 11 bytes", b"\x01" + b"\xff" * 10 + b"\x01"),
        ("a varint past 2**64", b"\x01" + b"\xff" * 9 + b"\x02"),
        ("a text that is not UTF-8", _raw([b"\xff", b"b"], [hit])),
        ("reserved flag bits", _raw([b"a", b"b"], [_raw_hit(1, 1, 4, 0, 1, 1, flags=0x20)])),
        ("a text index past the texts", _raw([b"a", b"b"], [_raw_hit(1, 1, 4, 0, 2, 1)])),
        ("a log id past 2**53 - 1", _raw([b"a", b"b"], [_raw_hit(1, 2**53, 4, 0, 1, 1)])),
        ("a ts past 2**53 - 1", _raw([b"a", b"b"], [_raw_hit(1, 1, 4, 0, 1, 1, ts=2**53)])),
        ("a verdict past 2**53 - 1", _raw([b"a", b"b"], [_raw_hit(1, 1, 4, 0, 1, 2**53 + 1)])),
        ("hits out of order", _raw([b"a", b"b"], [_raw_hit(2, 1, 4, 0, 1, 1), _raw_hit(1, 1, 4, 0, 1, 1)])),
        ("a hit id twice", _raw([b"a", b"b"], [_raw_hit(1, 1, 4, 0, 1, 1), _raw_hit(1, 2, 4, 0, 1, 1)])),
        ("a ts equal to the id's time", _raw([b"a", b"b"], [_raw_hit(1, 1, 4, 0, 1, 1, ts=T0)])),
        ("a text before its first use", _raw([b"a", b"b"], [_raw_hit(1, 1, 4, 1, 0, 1)])),
        ("a text twice", _raw([b"a", b"a"], [_raw_hit(1, 1, 4, 0, 1, 1)])),
        ("a text unused", _raw([b"a", b"b", b"c"], [hit])),
        ("a correction of the item's own hit", _raw([b"a", b"b"], [hit], [bytes.fromhex(_id(1)) + b"\x01"])),
        ("corrections out of order", _raw([], [], [bytes.fromhex(_id(3)) + b"\x01", bytes.fromhex(_id(2)) + b"\x01"])),
        ("a delta of 0", _raw([b"s", b"f"], [], [], [b"\x00\x01\x00"])),
        ("counters out of order", _raw([b"s", b"g", b"f"], [], [], [b"\x00\x01\x02", b"\x00\x02\x02"])),
        ("bytes after the counters", _raw([b"a", b"b"], [hit]) + b"\x00"),
    ]
    bad = [
        ("a hit of another delivery", [_ri_hit(1, delivery_id=D2)], [], []),
        ("a hit id in capitals", [(replace(_h(1, 0), hit_id="AB" * 16), 0)], [], []),
        ("an unknown kind", [_ri_hit(1, kind="view")], [], []),
        ("an unknown purpose", [_ri_hit(1, purpose="later")], [], []),
        ("a log id past 2**53 - 1", [_ri_hit(1, log_id=2**53)], [], []),
        ("a verdict below -1", [_ri_hit(1, 0, -2)], [], []),
        ("a hit twice", [_ri_hit(1), _ri_hit(1, 5)], [], []),
        ("a correction of the item's own hit", [_ri_hit(1)], [(_id(1), 0)], []),
        ("a correction twice", [], [(_id(1), 0), (_id(1), 1)], []),
        ("a counter twice", [], [], [("indicators", "hits", 1), ("indicators", "hits", 2)]),
        ("a delta past 64 bits", [], [], [("indicators", "hits", 2**63)]),
    ]
    return valid, refused, [{"name": name, "hits": hits, "corrections": corrections, "counters": counters}
                            for name, hits, corrections, counters in bad]


def _ri_json(hits: Any, corrections: Any, counters: Any) -> dict[str, Any]:
    return {"hits": [{**_hit(hit), "verdict": verdict} for hit, verdict in hits],
            "corrections": [{"hit_id": hit_id, "verdict": verdict} for hit_id, verdict in corrections],
            "counters": [{"stat": stat, "field": name, "delta": delta} for stat, name, delta in counters]}


def run_item_vectors() -> dict[str, Any]:
    valid, refused, bad = run_item_cases()
    cases: list[dict[str, Any]] = []
    for case in valid:
        body = run_items.encode(D1, case["hits"], case["corrections"], case["counters"])
        decoded = run_items.decode(D1, body)
        assert set(decoded.hits) == set(case["hits"]), case["name"]
        cases.append({"name": case["name"], **_ri_json(case["hits"], case["corrections"], case["counters"]),
                      "body": body.hex()})
    for name, body in refused:
        try:
            run_items.decode(D1, body)
        except run_items.RunItemError as error:
            cases.append({"name": name, "body": body.hex(), "error": error.reason})
        else:
            raise AssertionError(f"{name}: decoded")
    for case in bad:
        try:
            run_items.encode(D1, case["hits"], case["corrections"], case["counters"])
        except run_items.RunItemError as error:
            cases.append({"name": case["name"], **_ri_json(case["hits"], case["corrections"], case["counters"]),
                          "encode_error": error.reason})
        else:
            raise AssertionError(f"{case['name']}: encoded")
    return {"delivery_id": D1, "cases": cases}


def render(vectors: dict[str, Any]) -> str:
    return json.dumps(vectors, indent=1, ensure_ascii=False, sort_keys=False) + "\n"


FILES = {"parse_log.json": parse_vectors, "aggregate.json": aggregate_vectors, "run_items.json": run_item_vectors}


def main() -> None:
    assert SECRET  # the key ring of tests/tracking_logs.py
    for name, build in FILES.items():
        (HERE / name).write_text(render(build()), encoding="utf-8")
        print(f"wrote tests/vectors/{name}")


if __name__ == "__main__":
    main()
