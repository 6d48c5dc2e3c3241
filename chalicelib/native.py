"""The native ingestion layer (`sendtrail_native`, Rust), or the Python reference.

The tracking workflow's hot path (parsing every redirection-log object,
re-verifying every hit's token, and aggregating the hits: core.parse_log,
core.aggregate, core.process_log and tokens.verify) has two implementations
that give the same answers: the Python reference in chalicelib (always there)
and the Rust module from the Lambda layer (native/, built by `make layer`).
`Backend` gives both one API returning core's own dataclasses. So does a run
item's body (chalicelib/tracking/run_items.py's encode and decode,
docs/spec/run-items.md): the same bytes, the same RunItemError reasons.
SENDTRAIL_NATIVE picks one:

    auto  the native module when it imports, the Python reference otherwise
    on    the native module, or fail loudly (a deploy that forgot the layer)
    off   the Python reference (e.g. to rule the native layer out)

The choice is made once per container, logged once, and counted as the
metric NativeFallback (1 when running the Python reference, 0 native;
dimension `mode`; through chalicelib/metrics.py, flushed with the
invocation's other metrics), so a fleet that lost its layer shows on a
graph rather than only in its bill.

What the native module returns differs from the reference's in one way the
workflow never sees: the hits of a ParsedLog (and process_log's recipient
updates) are a `sendtrail_native.LazyTuple`, a read-only sequence that makes
each core.Hit when it is read (and compares equal to the tuple of them), so a
million-hit object costs no million Python objects unless they are used.

A workflow run also keeps its hits native from the parse to what it writes
(`run_hits`, then `compute_run`: IPs minimised, recipient items, domain
deltas and log pages, as chalicelib/tracking/workflow.py's Python path makes
them), and gives the items and pages already encoded for DynamoDB (one JSON
text each, chalicelib/data/item_json.py), so a run makes no Python object per
hit nor per item from the parse to its write requests. In the append layout
the same: `read_run_items` decodes the touched shards' run items into the
run's prior hits, and `compute_appended` gives each shard's run item body
already encoded, with the deltas of the delivery's counters.

The native module is used where it represents the input exactly, and the
reference runs otherwise: a key ring value that is not bytes, data that is
not bytes-like, hits that are not exactly core.Hit or whose integers pass 64
bits, a negative per-recipient cap, a run item's entries that are not tuples
of exact str and int in a list or tuple (or whose ints pass 64 bits, or whose
strings hold lone surrogates). Those are never what the workflow passes; the
fallback keeps the answers identical anyway.

Only the workflow uses this module. The hit path never does (it verifies one
token per request in Python and must import without the layer).
"""

from __future__ import annotations

import collections.abc
import contextlib
import gc
import importlib
import logging
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, cast

from chalicelib import metrics, tokens
from chalicelib.hits.records import minimise_ip
from chalicelib.tracking import classify, core, run_items

MODES = ("auto", "on", "off")
MODULE_NAME = "sendtrail_native"
# What this code calls on the module: a layer older than the code is not used.
REQUIRED_ATTRIBUTES = ("verify_token", "InvalidToken", "parse_log", "process_log", "aggregate", "LazyTuple",
                       "Unsupported", "CLASSIFY_REASONS", "run_hits", "RunItemError", "encode_run_item",
                       "decode_run_item", "split_run_item")
# mimalloc, the module's allocator, reads this when the module loads. -1: freed memory is never given back to
# the OS. By default it is, a second after it is freed, so a warm container's workflow run, every few minutes,
# faulted its tens of megabytes in again (about 20,000 page faults per 100k hits, a tenth of the compute).
# What it keeps is what a run needed, within the function's memory. An explicit setting in the environment wins.
ALLOCATOR_PURGE_DELAY = ("MIMALLOC_PURGE_DELAY", "-1")
_SEQUENCES = (list, tuple)  # a run item's entries as the native module takes them
KEY_IDS = range(256)  # a token's key id is one byte: the only ids verify ever looks up
METRIC_NAMESPACE = metrics.NAMESPACE
FALLBACK_METRIC = metrics.NATIVE_FALLBACK

logger = logging.getLogger("sendtrail.native")


class NativeUnavailable(RuntimeError):
    """SENDTRAIL_NATIVE=on, and the native module cannot be used."""


@dataclass(frozen=True)
class Backend:
    """The implementation in use, and why it was chosen."""

    mode: str
    module: ModuleType | None
    reason: str

    @property
    def name(self) -> str:
        return "native" if self.module is not None else "python"

    @property
    def is_native(self) -> bool:
        return self.module is not None

    def verify_token(self, token: str, keys: Mapping[int, bytes], params: str = "") -> tokens.TokenClaims:
        """chalicelib.tokens.verify, by this backend: same claims, same InvalidToken reasons.

        The native module raises its own InvalidToken (a ValueError with the
        same `.reason`); it is turned into chalicelib.tokens.InvalidToken so
        callers catch one exception whichever backend runs.
        """
        module = self.module
        if module is None:
            return tokens.verify(token, keys, params)
        try:
            kind, key_id, delivery_id, log_id, url_id = module.verify_token(token, keys, params)
        except module.InvalidToken as error:
            raise tokens.InvalidToken(error.reason) from None
        return tokens.TokenClaims(kind, key_id, delivery_id, log_id, url_id)

    def parse_log(self, data: bytes, keys: Mapping[int, bytes]) -> core.ParsedLog:
        """core.parse_log, by this backend."""
        native = self._native_arguments(data, keys)
        if native is None:
            return core.parse_log(data, keys)
        module, blob, ring = native
        return _parsed_log(module.parse_log(blob, ring, core.Hit, **_limits()))

    def process_log(self, data: bytes, keys: Mapping[int, bytes]) -> tuple[core.ParsedLog, core.Aggregates]:
        """core.process_log, by this backend."""
        native = self._native_arguments(data, keys)
        if native is None:
            return core.process_log(data, keys)
        module, blob, ring = native
        parsed, (recipients, deliveries, duplicates, over_limit) = module.process_log(
            blob, ring, core.Hit, core.RecipientUpdate, core.Summary,
            max_hits_per_recipient=core.MAX_HITS_PER_RECIPIENT,
            first_hits_per_recipient=core.FIRST_HITS_PER_RECIPIENT, **_limits())
        return _parsed_log(parsed), _aggregates(recipients, deliveries, duplicates, over_limit)

    def aggregate(self, new_hits: Sequence[core.Hit], prior: Mapping[tuple[str, int], Sequence[core.Hit]] | None = None,
                  max_hits_per_recipient: int = core.MAX_HITS_PER_RECIPIENT,
                  context: classify.Context | None = None,
                  summaries: Mapping[tuple[str, int], core.Summary] | None = None,
                  first_hits_per_recipient: int | None = None) -> core.Aggregates:
        """core.aggregate, by this backend (the updates hold the very hit objects given)."""
        module = self.module
        arguments = (new_hits, prior, max_hits_per_recipient, context, summaries, first_hits_per_recipient)
        if (module is None or type(max_hits_per_recipient) is not int or max_hits_per_recipient < 0
                or not (first_hits_per_recipient is None or type(first_hits_per_recipient) is int)):
            return core.aggregate(*arguments)
        bound = min(max_hits_per_recipient, sys.maxsize)
        first = None if first_hits_per_recipient is None else min(max(0, first_hits_per_recipient), bound)
        try:
            recipients, deliveries, duplicates, over_limit = module.aggregate(
                new_hits, prior, core.Hit, core.RecipientUpdate, core.Summary, bound, first, context, summaries)
        except module.Unsupported:
            return core.aggregate(*arguments)
        return _aggregates(recipients, deliveries, duplicates, over_limit)

    def run_hits(self, parsed: Sequence[core.ParsedLog], ip_mode: str) -> Any | None:
        """A run's new hits held natively (`sendtrail_native.RunHits`, IPs minimised as records.minimise_ip)
        for `compute_run`; None when the workflow computes in Python (this backend is the reference, or an
        object's hits were parsed by it)."""
        module = self.module
        if module is None:
            return None
        try:
            return module.run_hits([result.hits for result in parsed], ip_mode, minimise_ip)
        except module.Unsupported:
            return None

    def compute_run(self, hits: Any, *arguments: Any) -> tuple[Any, ...] | None:
        """`hits.compute(*arguments)` (sendtrail_native.RunHits.compute: what a run writes); None when the
        native module does not represent the stored state (the workflow then computes in Python)."""
        module = self.module
        assert module is not None, "run_hits gave hits: the backend is native"
        try:
            with collector_paused():
                computed: tuple[Any, ...] = hits.compute(*arguments)
        except module.Unsupported:
            return None
        return computed

    def read_run_items(self, hits: Any, stored: Sequence[tuple[str, Sequence[bytes]]]) -> bool:
        """`hits.read_run_items(stored)` (sendtrail_native.RunHits: the append layout's stored hits, decoded
        natively into the run's prior hits, for `compute_appended`); False when the native module does not take
        them (the workflow then reads them in Python). A body its decode refuses raises run_items.RunItemError,
        the reference's reason and detail, as `decode_run_item` does."""
        module = self.module
        assert module is not None, "run_hits gave hits: the backend is native"
        try:
            hits.read_run_items(stored)
        except module.RunItemError as error:
            raise run_items.RunItemError(error.reason, error.detail) from None
        except module.Unsupported:
            return False
        return True

    def compute_appended(self, hits: Any, *arguments: Any) -> tuple[Any, ...] | None:
        """`hits.compute_appended(*arguments)` (sendtrail_native.RunHits: what an append-layout run writes,
        after `read_run_items`); None when the native module does not represent the classification context
        or the recipients' details (the workflow then computes in Python). A run item its encoder refuses
        raises run_items.RunItemError, as `encode_run_item` does."""
        module = self.module
        assert module is not None, "run_hits gave hits: the backend is native"
        try:
            with collector_paused():
                computed: tuple[Any, ...] = hits.compute_appended(*arguments)
        except module.RunItemError as error:
            raise run_items.RunItemError(error.reason, error.detail) from None
        except module.Unsupported:
            return None
        return computed

    def encode_run_item(self, delivery_id: str, hits: Iterable[tuple[core.Hit, int]],
                        corrections: Iterable[tuple[str, int]] = (),
                        counters: Iterable[tuple[str, str, int]] = ()) -> bytes:
        """run_items.encode, by this backend (docs/spec/run-items.md): same bytes, same RunItemError reasons.

        The native module takes lists and tuples; any other iterable goes to the reference, which reads it
        once, where it reads it (an iterable's own exception then falls among the refusals as it does there).
        """
        module = self.module
        if module is not None and all(type(values) in _SEQUENCES for values in (hits, corrections, counters)):
            try:
                body: bytes = module.encode_run_item(delivery_id, hits, corrections, counters, core.Hit)
            except module.RunItemError as error:
                raise run_items.RunItemError(error.reason, error.detail) from None
            except module.Unsupported:
                pass  # values it does not represent exactly (ints past 64 bits, lone surrogates, ...)
            else:
                return body
        return run_items.encode(delivery_id, hits, corrections, counters)

    def decode_run_item(self, delivery_id: str, body: bytes) -> run_items.RunItem:
        """run_items.decode, by this backend: the same RunItem (of core.Hit objects), the same refusals."""
        module = self.module
        if module is None or type(body) not in (bytes, bytearray):
            return run_items.decode(delivery_id, body)  # the reference decides what other values mean
        try:
            hits, corrections, counters = module.decode_run_item(delivery_id, bytes(body), core.Hit)
        except module.RunItemError as error:
            raise run_items.RunItemError(error.reason, error.detail) from None
        return run_items.RunItem(hits, corrections, counters)

    def split_run_item(self, delivery_id: str, body: bytes, limit: int) -> list[bytes]:
        """run_items.split, by this backend: the same parts, the same refusals (RunItemError for a body decode
        refuses, ValueError for a part of one entry past the limit). A flooded shard's item is hundreds of
        kilobytes: the reference decodes and encodes its entries as Python objects, a tenth of a second."""
        module = self.module
        if module is None or type(body) is not bytes or type(limit) is not int or not 0 <= limit <= sys.maxsize:
            return run_items.split(delivery_id, body, limit)  # the reference decides what other values mean
        try:
            parts: list[bytes] = module.split_run_item(body, limit)
        except module.RunItemError as error:
            raise run_items.RunItemError(error.reason, error.detail) from None
        return parts

    def _native_arguments(self, data: Any, keys: Any) -> tuple[ModuleType, bytes, dict[int, bytes]] | None:
        """(module, data as bytes, key ring as a dict) when the native module can take them; None otherwise."""
        module = self.module
        if module is None:
            return None
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        elif type(data) is not bytes:
            return None  # the reference's bytes(data) decides what it means
        ring = native_key_ring(keys)
        return None if ring is None else (module, data, ring)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a run's items are made (a hundred thousand dicts, lists and
    tuples, none in a cycle): otherwise each few hundred of them start a collection, and every few of
    those walks the whole growing heap again (a quarter of the native run's compute). Reference counting
    frees them as usual; a cycle made meanwhile waits for the next collection."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def native_key_ring(keys: Any) -> dict[int, bytes] | None:
    """The key ring as verify sees it (`keys.get(key_id)` for every one-byte id), or None when a value
    is one hmac would refuse (the reference raises TypeError on such a key only when a token uses it)."""
    try:
        found = {key_id: keys.get(key_id) for key_id in KEY_IDS}
    except Exception:  # noqa: BLE001 - not a mapping the native module can take; the reference decides
        return None
    ring = {key_id: secret for key_id, secret in found.items() if secret is not None}
    if not all(isinstance(secret, (bytes, bytearray)) for secret in ring.values()):
        return None
    return ring


def _limits() -> dict[str, int]:
    """The reference's limits as they are now (tests move MAX_OBJECT_BYTES; the interpreter sets the other)."""
    return {"max_object_bytes": core.MAX_OBJECT_BYTES, "max_int_digits": sys.get_int_max_str_digits()}


def _parsed_log(parsed: tuple[Any, ...]) -> core.ParsedLog:
    lines, hits, rejected, duplicates, rejections = parsed
    return core.ParsedLog(lines, hits, dict(rejected), duplicates,
                          tuple(core.Rejection(*rejection) for rejection in rejections))


def _aggregates(recipients: Sequence[core.RecipientUpdate], deliveries: list[tuple[Any, ...]], duplicates: int,
                over_limit: int) -> core.Aggregates:
    # process_log's updates are a LazyTuple (a read-only sequence equal to the tuple of them): kept as it is,
    # since making every update and its hits as Python objects is what the native path exists to avoid.
    kept = tuple(recipients) if isinstance(recipients, list) else cast("tuple[core.RecipientUpdate, ...]", recipients)
    return core.Aggregates(kept, tuple(core.DeliveryDelta(*delivery) for delivery in deliveries), duplicates,
                           over_limit)


def select(mode: str, import_module: Callable[[str], ModuleType] = importlib.import_module) -> Backend:
    """The backend for `mode` (auto, on, off); NativeUnavailable when `on` cannot be honoured."""
    if mode not in MODES:
        raise ValueError(f"SENDTRAIL_NATIVE must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off":
        return Backend(mode, None, "SENDTRAIL_NATIVE=off")
    try:
        os.environ.setdefault(*ALLOCATOR_PURGE_DELAY)
        module = import_module(MODULE_NAME)
        missing = [name for name in REQUIRED_ATTRIBUTES if not hasattr(module, name)]
        if missing:
            raise ImportError(f"{MODULE_NAME} {getattr(module, '__version__', '?')} lacks {', '.join(missing)}")
    except ImportError as error:
        if mode == "on":
            raise NativeUnavailable(f"SENDTRAIL_NATIVE=on but the native module is unusable: {error}") from error
        return Backend(mode, None, f"native module unusable ({error}); using the Python reference")
    if isinstance(getattr(module, "LazyTuple", None), type):
        collections.abc.Sequence.register(module.LazyTuple)
    return Backend(mode, module, f"{MODULE_NAME} {getattr(module, '__version__', '?')}")


@lru_cache(maxsize=1)
def backend() -> Backend:
    """The container's backend, chosen from the settings on first use; logged and counted once."""
    from chalicelib.settings import get_settings

    chosen = select(get_settings().native)
    log = logger.info if chosen.is_native or chosen.mode == "off" else logger.warning
    log("ingestion backend: %s (%s)", chosen.name, chosen.reason,
        extra={"backend": chosen.name, "mode": chosen.mode, "reason": chosen.reason})
    _count(chosen)
    return chosen


def _count(chosen: Backend, emit: Callable[..., Any] = metrics.emit) -> None:
    """One NativeFallback data point: 1 running the Python reference, 0 native (dimension mode)."""
    try:
        emit(FALLBACK_METRIC, 0 if chosen.is_native else 1, metrics.COUNT, mode=chosen.mode)
    except Exception:  # noqa: BLE001 - a metric must never stop ingestion
        logger.exception("could not emit %s", FALLBACK_METRIC)
