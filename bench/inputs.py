"""The standard ingestion input: one redirection-log object of 1,000,000 hits.

Records are exactly what the hit endpoints put (chalicelib/hits/records.py:
same fields, same order, same JSON spelling, one newline-terminated line
each) with REAL tokens minted by chalicelib.tokens under the key ring in
KEYRING_JSON, so the workflow's re-verification passes for them. The mix:

- 24 deliveries of up to 40,000 recipients; recipients drawn with a skew (a
  few people open and click a lot, most once or never);
- opens 62%, clicks 33% (a fifth of them personalised, carrying a signed `p`),
  mirror views 3%, opt-outs 2%;
- user agents from a realistic mix: Gmail's and Yahoo's image proxies, Apple
  Mail privacy-protection fetches, Outlook desktop, phone and desktop
  browsers, scanners, and an empty agent; plus a few non-ASCII ones;
- IPs as the default privacy setting keeps them (/24, /48);
- 5% duplicates: a record delivered twice (a Kinesis or Firehose retry),
  byte for byte, a little later in the object;
- time-ordered, as Firehose writes them.

The object is gzip (what Firehose writes), built once per seed and cached
under out/bench/.
"""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass
from pathlib import Path

from chalicelib import tokens
from chalicelib.hits.records import FORMAT_VERSION

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "out" / "bench"
GENERATOR_VERSION = 1
KEY = b"bench-signing-key-0123456789abcd"
KEYRING = {1: KEY}
KEYRING_JSON = '{"active": 1, "keys": {"1": "YmVuY2gtc2lnbmluZy1rZXktMDEyMzQ1Njc4OWFiY2Q="}}'

USER_AGENTS = [
    (30, "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"),
    (22, "Mozilla/5.0"),  # Apple Mail Privacy Protection fetches
    (10, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Mobile/15E148"),
    (8, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
        "Safari/537.36"),
    (6, "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)"),
    (5, "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 "
        "Mobile Safari/537.36"),
    (4, "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"),
    (4, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 "
        "Safari/605.1.15"),
    (3, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"),
    (3, ""),
    (2, "Barracuda Sentinel (EE)"),
    (1, "Mozilla/5.0 (compatible; Ünïcödé-Mailer/2.1; 日本語)"),
]
KINDS = [(62, "open"), (33, "click"), (3, "mirror"), (2, "optout")]
DUPLICATE_RATE = 0.05


@dataclass(frozen=True)
class Input:
    path: Path
    hits: int  # distinct hits
    lines: int  # lines in the object, duplicates included
    compressed_bytes: int
    decompressed_bytes: int

    @property
    def mean_line_bytes(self) -> float:
        return self.decompressed_bytes / self.lines


def _weighted(rng: random.Random, table: list[tuple[int, str]]) -> str:
    return rng.choices([value for _, value in table], weights=[weight for weight, _ in table])[0]


def _record(hit_id: str, ts: int, kind: str, delivery_id: str, log_id: int, url_id: int, token: str, params: str,
            user_agent: str, ip: str, request_id: str) -> bytes:
    """records.build_record's line, with the hit id and time given (a unit test keeps them identical)."""
    record = {"v": FORMAT_VERSION, "hit_id": hit_id, "ts": ts, "kind": kind, "delivery_id": delivery_id,
              "log_id": log_id, "url_id": url_id, "token": token, "p": params, "ua": user_agent, "ip": ip,
              "request_id": request_id}
    return (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


def _deliveries(rng: random.Random, audience: float) -> list[tuple[str, int]]:
    """The input's 24 deliveries: (id, recipients), the first draws of the input's random sequence."""
    return [(f"{rng.getrandbits(64):016x}", max(1, round(rng.randint(2_000, 40_000) * audience)))
            for _ in range(24)]


def delivery_audiences(seed: int = 5, audience: float = 1.0) -> dict[str, int]:
    """Each delivery's recipients in the input generate_lines(..., seed, audience) makes."""
    return dict(_deliveries(random.Random(seed), audience))


def generate_lines(hits: int, seed: int = 5, audience: float = 1.0):
    """Yield the object's lines (bytes), duplicates included.

    `audience` scales every delivery's recipients (the same draws otherwise):
    fewer recipients for the same hits means more hits per recipient (the
    cost model's workflow run takes 10 a recipient).
    """
    rng = random.Random(seed)
    deliveries = _deliveries(rng, audience)
    minted: dict[tuple[int, str, int, int, str], str] = {}
    start_ms = 1_764_000_000_000
    pending_duplicates: list[tuple[int, bytes]] = []
    for index in range(hits):
        delivery_id, recipients = deliveries[min(int(rng.paretovariate(1.2)) - 1, len(deliveries) - 1)]
        log_id = min(int(rng.paretovariate(0.9)), recipients) if rng.random() < 0.3 else rng.randint(1, recipients)
        kind = _weighted(rng, KINDS)
        params = ""
        if kind == "open":
            token_kind, url_id = tokens.KIND_OPEN, 1
        elif kind == "mirror":
            token_kind, url_id = tokens.KIND_MIRROR, 3
        elif kind == "optout":
            token_kind, url_id = tokens.KIND_OPTOUT, 2
        else:
            token_kind, url_id = tokens.KIND_CLICK, rng.randint(4, 14)
            if url_id == 5:  # the personalised link
                params = tokens.encode_params({"member_id": f"m-{log_id:06d}"})
        key = (token_kind, delivery_id, log_id, url_id, params)
        token = minted.get(key)
        if token is None:
            token = minted[key] = tokens.mint(token_kind, 1, KEY, delivery_id, log_id, url_id, params)
        ts = start_ms + index * 3 // 10
        octets = rng.getrandbits(24)
        ip = (f"{octets >> 16}.{(octets >> 8) & 255}.{octets & 255}.0" if rng.random() < 0.85
              else f"2a00:{octets >> 8:x}:{octets & 255:x}::")
        request_id = "%08x-%04x-%04x-%04x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(16),
                                                     rng.getrandbits(16), rng.getrandbits(48))
        hit_id = f"{ts:012x}{rng.getrandbits(80):020x}"
        line = _record(hit_id, ts, kind, delivery_id, log_id, url_id, token, params,
                       _weighted(rng, USER_AGENTS), ip, request_id)
        while pending_duplicates and pending_duplicates[0][0] <= index:
            yield pending_duplicates.pop(0)[1]
        yield line
        if rng.random() < DUPLICATE_RATE:
            pending_duplicates.append((index + rng.randint(1, 500), line))
            pending_duplicates.sort(key=lambda item: item[0])
    for _, line in pending_duplicates:
        yield line


def standard_input(hits: int = 1_000_000, seed: int = 5, audience: float = 1.0) -> Input:
    """The cached gzip object (built on first use: about a minute for a million hits)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    scaled = "" if audience == 1.0 else f"-audience{audience:g}"
    path = CACHE / f"hits-{hits}-seed{seed}{scaled}-v{GENERATOR_VERSION}.jsonl.gz"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return Input(path=path, **json.loads(meta.read_text()))
    lines = decompressed = 0
    partial = path.with_suffix(".partial")
    with gzip.open(partial, "wb", compresslevel=6) as out:
        batch: list[bytes] = []
        for line in generate_lines(hits, seed, audience):
            batch.append(line)
            lines += 1
            decompressed += len(line)
            if len(batch) == 10_000:
                out.write(b"".join(batch))
                batch.clear()
        out.write(b"".join(batch))
    partial.replace(path)
    figures = {"hits": hits, "lines": lines, "compressed_bytes": path.stat().st_size,
               "decompressed_bytes": decompressed}
    meta.write_text(json.dumps(figures))
    return Input(path=path, **figures)
