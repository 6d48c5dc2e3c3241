"""The benchmark's input is what the hit endpoints write, with tokens that verify."""

from __future__ import annotations

import json
from collections import Counter

from bench import inputs
from chalicelib import tokens
from chalicelib.hits.records import build_record
from chalicelib.keyring import KeyRing


def test_lines_are_hit_records_with_genuine_tokens_and_five_percent_duplicates() -> None:
    lines = list(inputs.generate_lines(4000, seed=11))
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    records = [json.loads(line) for line in lines]
    first = records[0]
    claims = tokens.TokenClaims(tokens.KIND_OPEN, 1, first["delivery_id"], first["log_id"], first["url_id"])
    reference = json.loads(build_record(first["kind"], claims, first["token"], first["p"], first["ua"], first["ip"],
                                        first["request_id"], at_ms=first["ts"]))
    assert list(reference) == list(first), "the generator must write build_record's fields, in its order"
    assert KeyRing.from_json(inputs.KEYRING_JSON).keys == inputs.KEYRING
    kinds = {"click": {tokens.KIND_CLICK}, "open": {tokens.KIND_OPEN}, "optout": {tokens.KIND_OPTOUT},
             "mirror": {tokens.KIND_MIRROR}}
    for record in records:
        verified = tokens.verify(record["token"], inputs.KEYRING, record["p"])
        assert (verified.delivery_id, verified.log_id, verified.url_id) == (
            record["delivery_id"], record["log_id"], record["url_id"])
        assert verified.kind in kinds[record["kind"]]
    copies = Counter(line for line in lines)
    duplicates = len(lines) - len(copies)
    assert len(copies) == 4000 and 0.035 < duplicates / 4000 < 0.065
    assert len({record["hit_id"] for record in records}) == 4000
    assert any(not line.isascii() for line in lines) and any(record["p"] for record in records)
