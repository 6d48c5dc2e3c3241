"""Write tests/vectors/*.json from the Python reference (see __init__)."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

from chalicelib.tracking import core
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


def render(vectors: dict[str, Any]) -> str:
    return json.dumps(vectors, indent=1, ensure_ascii=False, sort_keys=False) + "\n"


FILES = {"parse_log.json": parse_vectors, "aggregate.json": aggregate_vectors}


def main() -> None:
    assert SECRET  # the key ring of tests/tracking_logs.py
    for name, build in FILES.items():
        (HERE / name).write_text(render(build()), encoding="utf-8")
        print(f"wrote tests/vectors/{name}")


if __name__ == "__main__":
    main()
