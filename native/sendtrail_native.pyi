"""sendtrail's native ingestion layer (Rust). See native/src/python.rs and chalicelib/native.py.

chalicelib/native.py is the way in: it turns these tuples into the dataclasses
of chalicelib.tracking.core, passes the reference's limits, and runs the
reference for inputs these functions do not take.
"""

from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar, overload

__version__: str
REASONS: list[str]  # ["malformed", "unknown_key", "bad_signature"]
LOG_REASONS: list[str]  # chalicelib.tracking.core.REASONS, in order
CLASSIFY_REASONS: list[str]  # chalicelib.tracking.classify.REASONS, in order (bit i is reason i)
DEFAULT_RULES: tuple[int, int, int, int]  # chalicelib.tracking.classify.Rules().as_tuple()

_T = TypeVar("_T")

class InvalidToken(ValueError):
    """The token is not one of ours; `reason` is one of REASONS (as chalicelib.tokens.InvalidToken)."""

    reason: str

class RunItemError(ValueError):
    """A run item that cannot be encoded or a body that cannot be decoded (docs/spec/run-items.md): `reason`
    is the spec's, `detail` the reference's (as chalicelib.tracking.run_items.RunItemError's message)."""

    reason: str
    detail: str

class Unsupported(Exception):
    """`aggregate` was given hits it does not represent (not exactly the hit type, ints past 64 bits,
    non-Unicode strings): run the reference instead."""

class LazyTuple(Sequence[_T]):
    """A read-only sequence whose items (core.Hit or core.RecipientUpdate) are made when read; equal to the
    tuple of its items. Slicing gives a tuple."""

    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, index: int) -> _T: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[_T, ...]: ...
    def __iter__(self) -> Iterator[_T]: ...

def verify_token(token: str, keys: Mapping[int, bytes], params: str = "") -> tuple[int, int, str, int, int]:
    """(kind, key_id, delivery_id, log_id, url_id) of a genuine token; InvalidToken otherwise."""

ParsedTuple = tuple[int, LazyTuple[Any], list[tuple[str, int]], int, list[tuple[int, str, str | None, bytes]]]
"""(lines, hits, [(reason, count)], duplicates, [(line, reason, field, data)]): core.ParsedLog's fields."""

DeliveryTuple = tuple[str, dict[str, int], dict[int, dict[str, int]], dict[int, dict[str, int]],
                      dict[str, dict[str, int]]]
"""(delivery_id, indicators, urls, buckets, user_agents): core.DeliveryDelta's fields."""

def parse_log(data: bytes | bytearray, keys: dict[int, bytes], hit_type: Callable[..., Any], *,
              max_object_bytes: int = ..., max_int_digits: int = 4300) -> ParsedTuple:
    """core.parse_log: `keys` maps key ids 0-255 to secrets; hits are made with `hit_type`."""

def process_log(data: bytes | bytearray, keys: dict[int, bytes], hit_type: Callable[..., Any],
                recipient_type: Callable[..., Any], summary_type: Callable[..., Any], *,
                max_hits_per_recipient: int = 200, first_hits_per_recipient: int = 100, max_object_bytes: int = ...,
                max_int_digits: int = 4300
                ) -> tuple[ParsedTuple, tuple[LazyTuple[Any], list[DeliveryTuple], int, int]]:
    """core.process_log: the parse, and (recipient updates, deliveries, duplicates, over_limit)."""

def aggregate(new_hits: Sequence[Any], prior: Mapping[tuple[str, int], Sequence[Any]] | None,
              hit_type: type, recipient_type: Callable[..., Any], summary_type: Callable[..., Any],
              max_hits_per_recipient: int, first_hits_per_recipient: int | None = None, context: Any = None,
              summaries: Mapping[tuple[str, int], Any] | None = None
              ) -> tuple[list[Any], list[DeliveryTuple], int, int]:
    """core.aggregate on hit_type objects, classifying with `context` (a classify.Context; None: the default),
    over the recipients' stored hits (`prior`) and summaries of evicted hits (core.Summary):
    (recipient updates holding the given hits, their verdicts and summary, deliveries, duplicates, over_limit).
    Unsupported for hits, context or summary values it does not represent."""

DetailsTuple = tuple[Any, str, str, str]
"""(recipient id as stored or None, recipient id as log pages name it, domain, domain stat)."""

class RunHits:
    """A workflow run's new hits, read from parse_log's LazyTuples with their IPs minimised (no Python object
    per hit): the recipients, agents and addresses the run reads state and classifies for, then `compute`
    (the append layout: `read_run_items`, then `compute_appended`)."""

    def __len__(self) -> int: ...
    def recipients(self) -> list[tuple[str, int]]: ...
    def shards(self, recipients_per_shard: int) -> list[tuple[str, int]]:
        """The distinct (delivery id, log id // recipients_per_shard) of the hits, sorted."""
    def user_agents(self) -> list[str]: ...
    def ips(self) -> list[str]: ...
    def address_flags(self, ipv4: tuple[Sequence[int], Sequence[int], Sequence[int]],
                      ipv6: tuple[Sequence[int], Sequence[int], Sequence[int]]
                      ) -> tuple[dict[str, int], list[str]]:
        """({address: flags} of the dotted quads and canonical IPv6 addresses in the ranges (starts, ends,
        flags of each family), [every other distinct address])."""
    def compute(self, prior: Mapping[tuple[str, int], Sequence[Any]], summaries: Mapping[tuple[str, int], Any],
                hit_type: type, context: Any, max_hits_per_recipient: int, first_hits_per_recipient: int | None,
                details: dict[tuple[str, int], DetailsTuple], default: DetailsTuple, now_ms: int,
                retention_days: int, run: int
                ) -> tuple[EncodedText, tuple[int, ...], list[DeliveryTuple], list[tuple[str, str, dict[str, int]]],
                           EncodedText, tuple[int, ...], int, int, int]:
        """(recipient items, where each ends, deliveries, domain deltas, log pages, where each ends, hits
        accepted, duplicates, over_limit): what workflow._compute writes, once per RunHits; items and pages as
        JSON arrays of DynamoDB items (chalicelib/data/item_json.py), read with memoryview. Unsupported for
        values it does not represent."""
    def read_run_items(self, stored: Iterable[tuple[str, Iterable[bytes]]]) -> None:
        """The append layout's stored run items ([(delivery id, [body, ...])], shard after shard, each one's
        items in run order): the touched recipients' hits become their prior hits for `compute_appended`, with
        the verdicts they were last counted with. RunItemError for the first body run_items.decode refuses;
        Unsupported for a body that is not bytes."""
    def compute_appended(self, context: Any, max_hits_per_recipient: int, first_hits_per_recipient: int | None,
                         details: dict[tuple[str, int], DetailsTuple], default: DetailsTuple,
                         recipients_per_shard: int
                         ) -> tuple[list[tuple[str, int, str]], list[DeliveryTuple],
                                    list[tuple[str, str, dict[str, int]]], int, int, int, int]:
        """(run items [(delivery id, shard, body in standard base64)] of each touched (delivery, shard), in
        order; deliveries; domain deltas; hits accepted; duplicates; over_limit; recipients touched): what
        workflow._appended writes besides the counters' bodies, once per RunHits, after `read_run_items`.
        The stored verdicts are the run items' (the context's `stored` is not read). RunItemError where
        run_items.encode refuses; Unsupported for values it does not represent."""

class EncodedText:
    """Encoded items, JSON text in the native layer's memory: memoryview(text) reads it without a copy."""

    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

def run_hits(parsed: Iterable[LazyTuple[Any]], ip_mode: str, minimise: Callable[[str, str], str]) -> RunHits:
    """The hits of parse_log results, IPs minimised as records.minimise_ip (`minimise`: IPv6 under truncated)."""

def encode_run_item(delivery_id: str, hits: Iterable[tuple[Any, int]], corrections: Iterable[tuple[str, int]],
                    counters: Iterable[tuple[str, str, int]], hit_type: type) -> bytes:
    """run_items.encode: hits exactly `hit_type` (core.Hit) with their verdicts; entries exact tuples of exact
    str and int. RunItemError where the reference refuses; Unsupported (before any refusal) for values it does
    not represent exactly (ints past 64 bits, deltas past 128, lone surrogates, other types)."""

RunItemTuple = tuple[tuple[tuple[Any, int], ...], tuple[tuple[str, int], ...], tuple[tuple[str, str, int], ...]]
"""((hit, verdict), ...), ((hit id, verdict), ...), ((stat, field, delta), ...): run_items.RunItem's fields."""

def decode_run_item(delivery_id: str, body: bytes, hit_type: Callable[..., Any]) -> RunItemTuple:
    """run_items.decode: (hits with verdicts, corrections, counters), RunItem's fields; hits made with `hit_type`
    and `delivery_id` as given. RunItemError with the reference's reason."""

def split_run_item(body: bytes, limit: int) -> list[bytes]:
    """run_items.split: `body` in parts of at most `limit` bytes (itself when it fits). RunItemError for a body
    run_items.decode refuses; ValueError, the reference's message, for a part of one entry past the limit."""

def allocator_purge_delay_ms() -> int:
    """How long the module's allocator (mimalloc) waits before giving freed memory back to the OS; -1: never."""
