"""A run item's body: the hits, verdict corrections and counter deltas one run adds to a shard, in bytes.

The contract, with its layout, canonical order and error reasons, is
docs/spec/run-items.md; tests/vectors/run_items.json pins it for this
reference and the native twin (native/src/run_items.rs). Pure: no AWS, no
clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

from chalicelib.tracking.core import KINDS, PURPOSES, Hit

VERSION = 1
MAX_VALUE = 2**53 - 1  # ts, log id, URL id: what the core accepts (docs/spec/tracking-core.md)
MAX_VERDICT = 2**53 - 1  # stored as verdict + 1
_I64 = 2**63
_U64 = 2**64
_HIT_ID = re.compile(r"[0-9a-f]{32}")
_TS_FOLLOWS = 0x10
_RESERVED_FLAGS = 0xE0
_NO_PURPOSE_OR_ONE = ("", *PURPOSES)

Counter = tuple[str, str, int]  # (stat, field, delta)


class RunItemError(ValueError):
    """A run item that cannot be encoded or a body that cannot be decoded; `reason` is the spec's."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RunItem:
    """A decoded body, in canonical order."""

    hits: tuple[tuple[Hit, int], ...]  # (hit, verdict)
    corrections: tuple[tuple[str, int], ...]  # (stored hit's id, its new verdict)
    counters: tuple[Counter, ...]


def replay(delivery_id: str, bodies: Iterable[bytes],
           decoder: Callable[[str, bytes], RunItem] | None = None) -> list[tuple[Hit, int]]:
    """The hits a shard's bodies hold, read in run order, each with the verdict it counts with now (its own
    item's, or a later item's correction). `decoder`: `decode` unless given (a backend's)."""
    found: list[tuple[Hit, int]] = []
    places: dict[str, int] = {}  # hit id -> its place in `found`
    for body in bodies:
        item = (decoder or decode)(delivery_id, body)
        for hit, verdict in item.hits:
            places[hit.hit_id] = len(found)
            found.append((hit, verdict))
        for hit_id, verdict in item.corrections:
            if hit_id in places:
                found[places[hit_id]] = (found[places[hit_id]][0], verdict)
    return found


def split(delivery_id: str, body: bytes, limit: int) -> list[bytes]:
    """`body` as bodies of at most `limit` bytes each (itself when it fits): its hits, then corrections, then
    counters, cut into consecutive slices, so the parts decoded in order hold its content in order. For a
    run's item too large for one DynamoDB item (chalicelib/data/run_items.py)."""
    if len(body) <= limit:
        return [body]
    item = decode(delivery_id, body)
    sizes = (len(item.hits), len(item.corrections), len(item.counters))
    total = sum(sizes)
    if total < 2:
        raise ValueError(f"a run item of one entry is {len(body)} bytes, past {limit}")

    def part(start: int, end: int) -> bytes:
        """The entries from `start` to `end` of hits, corrections and counters taken as one sequence."""
        hits, corrections = sizes[0], sizes[0] + sizes[1]
        return encode(delivery_id, item.hits[start:end],
                      item.corrections[max(0, start - hits):max(0, end - hits)],
                      item.counters[max(0, start - corrections):max(0, end - corrections)])

    half = total // 2
    return split(delivery_id, part(0, half), limit) + split(delivery_id, part(half, total), limit)


def _id_time(hit_id: str) -> int:
    return int(hit_id[:12], 16)


def _varint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _check(value: int, highest: int, what: str) -> None:
    if not 0 <= value <= highest:
        raise RunItemError("out_of_range", f"{what} {value}")


def encode(delivery_id: str, hits: Iterable[tuple[Hit, int]], corrections: Iterable[tuple[str, int]] = (),
           counters: Iterable[Counter] = ()) -> bytes:
    """The body of a run item of `delivery_id` (docs/spec/run-items.md); counters with a delta of 0 are left out."""
    ordered = sorted(hits, key=lambda entry: (entry[0].log_id, entry[0].ts, entry[0].hit_id))
    own: set[str] = set()
    for hit, verdict in ordered:
        if hit.delivery_id != delivery_id or not _HIT_ID.fullmatch(hit.hit_id) or hit.kind not in KINDS or (
                hit.purpose not in _NO_PURPOSE_OR_ONE):
            raise RunItemError("bad_hit", hit.hit_id)
        for value, what in ((hit.ts, "ts"), (hit.log_id, "log_id"), (hit.url_id, "url_id")):
            _check(value, MAX_VALUE, what)
        _check(verdict + 1, MAX_VERDICT + 1, "verdict")
        if hit.hit_id in own:
            raise RunItemError("duplicate", hit.hit_id)
        own.add(hit.hit_id)
    corrected = sorted(corrections)
    for index, (hit_id, verdict) in enumerate(corrected):
        if not _HIT_ID.fullmatch(hit_id):
            raise RunItemError("bad_hit", hit_id)
        _check(verdict + 1, MAX_VERDICT + 1, "verdict")
        if hit_id in own or (index and corrected[index - 1][0] == hit_id):
            raise RunItemError("duplicate", hit_id)
    deltas = sorted((stat, name, delta) for stat, name, delta in counters)
    for index, (stat, name, delta) in enumerate(deltas):
        if not -_I64 <= delta < _I64:
            raise RunItemError("out_of_range", f"{stat} {name} {delta}")
        if index and deltas[index - 1][:2] == (stat, name):
            raise RunItemError("duplicate", f"{stat} {name}")
    deltas = [counter for counter in deltas if counter[2]]

    texts: dict[str, int] = {}
    refs: list[int] = []
    for hit, _ in ordered:
        refs.append(texts.setdefault(hit.ua, len(texts)))
        refs.append(texts.setdefault(hit.ip, len(texts)))
    for stat, name, _ in deltas:
        refs.append(texts.setdefault(stat, len(texts)))
        refs.append(texts.setdefault(name, len(texts)))

    out = bytearray([VERSION])
    _varint(out, len(texts))
    for text in texts:
        data = text.encode("utf-8")
        _varint(out, len(data))
        out += data
    _varint(out, len(ordered))
    for index, (hit, verdict) in enumerate(ordered):
        flags = KINDS.index(hit.kind) | ((PURPOSES.index(hit.purpose) + 1) << 2 if hit.purpose else 0)
        timed = _id_time(hit.hit_id) != hit.ts
        out.append(flags | (_TS_FOLLOWS if timed else 0))
        out += bytes.fromhex(hit.hit_id)
        if timed:
            _varint(out, hit.ts)
        for value in (hit.log_id, hit.url_id, refs[2 * index], refs[2 * index + 1], verdict + 1):
            _varint(out, value)
    _varint(out, len(corrected))
    for hit_id, verdict in corrected:
        out += bytes.fromhex(hit_id)
        _varint(out, verdict + 1)
    _varint(out, len(deltas))
    at = 2 * len(ordered)
    for index, (_, _, delta) in enumerate(deltas):
        _varint(out, refs[at + 2 * index])
        _varint(out, refs[at + 2 * index + 1])
        _varint(out, (delta << 1) ^ (delta >> 63))
    return bytes(out)


class _Reader:
    """A cursor over a body that raises the spec's reasons."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.at = 0
        self.texts: list[str] = []
        self.used = 0  # texts met so far: the next new index must be this one

    def byte(self) -> int:
        if self.at >= len(self.body):
            raise RunItemError("truncated", f"at byte {self.at}")
        self.at += 1
        return self.body[self.at - 1]

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.body):
            raise RunItemError("truncated", f"at byte {self.at}")
        self.at += size
        return self.body[self.at - size:self.at]

    def varint(self) -> int:
        value = 0
        for shift in range(0, 70, 7):
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if (byte == 0 and shift) or value >= _U64:
                    raise RunItemError("bad_varint", f"at byte {self.at - 1}")
                return value
        raise RunItemError("bad_varint", f"at byte {self.at - 1}")

    def bounded(self, highest: int, what: str) -> int:
        value = self.varint()
        if value > highest:
            raise RunItemError("out_of_range", f"{what} {value}")
        return value

    def text(self) -> str:
        index = self.varint()
        if index >= len(self.texts):
            raise RunItemError("bad_index", str(index))
        if index == self.used:
            self.used += 1
        elif index > self.used:
            raise RunItemError("not_canonical", f"text {index} before text {self.used}")
        return self.texts[index]


def decode(delivery_id: str, body: bytes) -> RunItem:
    """The hits, corrections and counters of a run item's body (docs/spec/run-items.md, "Errors" for refusals)."""
    if not body or body[0] != VERSION:
        raise RunItemError("bad_version")
    reader = _Reader(bytes(body))
    reader.at = 1
    texts_seen: set[str] = set()
    for _ in range(reader.varint()):
        data = reader.take(reader.varint())
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise RunItemError("bad_text", f"text {len(reader.texts)}") from None
        if text in texts_seen:
            raise RunItemError("not_canonical", f"text {len(reader.texts)} repeated")
        texts_seen.add(text)
        reader.texts.append(text)
    seen: set[str] = set()  # the hit ids
    hits: list[tuple[Hit, int]] = []
    for _ in range(reader.varint()):
        flags = reader.byte()
        if flags & _RESERVED_FLAGS:
            raise RunItemError("bad_flags", f"{flags:#04x}")
        hit_id = reader.take(16).hex()
        ts = _id_time(hit_id)
        if flags & _TS_FOLLOWS:
            explicit = reader.bounded(MAX_VALUE, "ts")
            if explicit == ts:
                raise RunItemError("not_canonical", f"{hit_id}: ts is the id's")
            ts = explicit
        log_id = reader.bounded(MAX_VALUE, "log_id")
        url_id = reader.bounded(MAX_VALUE, "url_id")
        ua, ip = reader.text(), reader.text()
        verdict = reader.bounded(MAX_VERDICT + 1, "verdict") - 1
        purpose = (flags >> 2) & 3
        hit = Hit(hit_id, ts, KINDS[flags & 3], delivery_id, log_id, url_id, ua, ip,
                  PURPOSES[purpose - 1] if purpose else "")
        if hits and (hits[-1][0].log_id, hits[-1][0].ts, hits[-1][0].hit_id) >= (log_id, ts, hit_id):
            raise RunItemError("not_canonical", f"hit {hit_id} out of order")
        if hit_id in seen:
            raise RunItemError("not_canonical", f"hit {hit_id} repeated")
        seen.add(hit_id)
        hits.append((hit, verdict))
    corrections: list[tuple[str, int]] = []
    for _ in range(reader.varint()):
        hit_id = reader.take(16).hex()
        verdict = reader.bounded(MAX_VERDICT + 1, "verdict") - 1
        if (corrections and corrections[-1][0] >= hit_id) or hit_id in seen:
            raise RunItemError("not_canonical", f"correction {hit_id}")
        corrections.append((hit_id, verdict))
    counters: list[Counter] = []
    for _ in range(reader.varint()):
        stat, name = reader.text(), reader.text()
        encoded = reader.varint()
        delta = (encoded >> 1) ^ -(encoded & 1)
        if not delta or (counters and counters[-1][:2] >= (stat, name)):
            raise RunItemError("not_canonical", f"counter {stat} {name}")
        counters.append((stat, name, delta))
    if reader.at != len(reader.body):
        raise RunItemError("trailing_bytes", f"{len(reader.body) - reader.at} bytes")
    if reader.used != len(reader.texts):
        raise RunItemError("not_canonical", f"{len(reader.texts) - reader.used} texts unused")
    return RunItem(tuple(hits), tuple(corrections), tuple(counters))
