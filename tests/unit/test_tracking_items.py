"""The stored forms of a recipient's hits and of the log pages: compact, and read back exactly (old forms too)."""

from __future__ import annotations

from bench.cost_model import item_size
from chalicelib.data.dynamo import to_item
from chalicelib.tracking.core import Hit
from chalicelib.tracking.items import decode_hits, decode_verdicts, encode_recipient, pack_hit, unpack_hit
from chalicelib.tracking.log_pages import decode_page, encode_pages

DELIVERY = "0a0b0c0d0e0f1011"
T = 1_764_000_000_001
UAS = ["Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
       "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)", "Mozilla/5.0"]


def _hit(index: int, hit_id: str | None = None, ts: int | None = None) -> Hit:
    ts = T + index * 61_000 if ts is None else ts
    return Hit(hit_id or f"{ts:012x}{index:020x}", ts, "click" if index % 3 else "open", DELIVERY, 7,
               index % 5 + 1, UAS[index % 3], f"203.0.{index}.0", "")


def test_a_hit_path_id_at_its_own_time_is_packed_and_other_ids_are_kept_as_they_are() -> None:
    hit_id = f"{T:012x}" + "85ae8770f9dba1db1234"
    assert pack_hit(hit_id, T) == "AZq2l-gBha6HcPnbodsSNA\t"
    assert unpack_hit(*pack_hit(hit_id, T).split("\t")) == (hit_id, T)
    for other_id, ts in ((hit_id, T + 1), (hit_id.upper(), T), ("fallback-1", T), ("", T)):
        assert pack_hit(other_id, ts) == f"{other_id}\t{ts}"
        assert unpack_hit(*pack_hit(other_id, ts).split("\t")) == (other_id, ts)


def test_a_recipient_item_reads_back_its_hits_and_verdicts_and_ten_hits_fit_one_write_unit() -> None:
    hits = [_hit(index) for index in range(10)] + [_hit(10, hit_id="not-from-the-hit-path", ts=T + 999)]
    verdicts = [index % 4 for index in range(11)]
    item = encode_recipient(DELIVERY, 7, hits, "recipient-000007", T, 365, verdicts, T - 3_600_000,
                            "mail.example")
    assert sorted(decode_hits(item), key=lambda hit: hit.hit_id) == sorted(hits, key=lambda hit: hit.hit_id)
    assert decode_verdicts(item) == {hit.hit_id: verdict for hit, verdict in zip(hits, verdicts, strict=True)}
    ten = encode_recipient(DELIVERY, 7, hits[:10], "recipient-000007", T, 365, verdicts[:10], T - 3_600_000,
                           "mail.example")
    assert item_size(to_item({**ten, "last_run": 123})) <= 1024


def test_items_written_before_packing_still_read() -> None:
    hit = _hit(1)
    item = {"delivery_id": DELIVERY, "log_id": 7, "uas": [hit.ua], "ips": [hit.ip],
            "hits": [f"{hit.hit_id}\t{hit.ts}\t{hit.kind}\t{hit.url_id}\t0\t0\t2",
                     f"old-id\t{T}\topen\t1\t0\t0"]}
    assert decode_hits(item) == (hit, Hit("old-id", T, "open", DELIVERY, 7, 1, hit.ua, hit.ip, ""))
    assert decode_verdicts(item) == {hit.hit_id: 2, "old-id": -1}


def test_log_pages_read_back_packed_unpacked_and_old_lines() -> None:
    hits = [_hit(index) for index in range(6)] + [_hit(6, hit_id="fallback-hit", ts=T + 5)]
    pages = encode_pages(DELIVERY, [(hit, f"recipient-{hit.url_id}") for hit in hits], run=3)
    read = sorted((logged.hit_id, logged.at, logged.kind, logged.log_id, logged.url_id, logged.user_agent,
                   logged.recipient_id) for page in pages for logged in decode_page(page))
    assert read == sorted((hit.hit_id, hit.ts, hit.kind, hit.log_id, hit.url_id, hit.ua, f"recipient-{hit.url_id}")
                          for hit in hits)
    old = {"stat": f"log#open#{T - T % 300_000:015d}#000000000002#0000", "uas": ["ua"], "recipients": ["r"],
           "hits": [f"{T}\t{_hit(0).hit_id}\t7\t1\t0\t0"]}
    [logged] = decode_page(old)
    assert (logged.hit_id, logged.at, logged.kind) == (_hit(0).hit_id, T, "open")
