"""The native ingestion layer (`sendtrail_native`, Rust), or the Python reference.

The tracking workflow's hot path (re-verifying every hit's token, and, with
the workflow, parsing and aggregating the logs) has two implementations that
give the same answers: the Python reference in chalicelib (always there) and
the Rust module from the Lambda layer (native/, built by `make layer`).
SENDTRAIL_NATIVE picks one:

    auto  the native module when it imports, the Python reference otherwise
    on    the native module, or fail loudly (a deploy that forgot the layer)
    off   the Python reference (e.g. to rule the native layer out)

The choice is made once per container, logged once, and counted as the
metric NativeFallback (1 when running the Python reference, 0 native;
dimension `mode`; through chalicelib/metrics.py, flushed with the
invocation's other metrics), so a fleet that lost its layer shows on a
graph rather than only in its bill.

Only the workflow uses this module. The hit path never does (it verifies one
token per request in Python and must import without the layer).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any, Callable, Mapping

from chalicelib import metrics, tokens

MODES = ("auto", "on", "off")
MODULE_NAME = "sendtrail_native"
# What this code calls on the module: a layer older than the code is not used.
REQUIRED_ATTRIBUTES = ("verify_token", "InvalidToken")
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


def select(mode: str, import_module: Callable[[str], ModuleType] = importlib.import_module) -> Backend:
    """The backend for `mode` (auto, on, off); NativeUnavailable when `on` cannot be honoured."""
    if mode not in MODES:
        raise ValueError(f"SENDTRAIL_NATIVE must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off":
        return Backend(mode, None, "SENDTRAIL_NATIVE=off")
    try:
        module = import_module(MODULE_NAME)
        missing = [name for name in REQUIRED_ATTRIBUTES if not hasattr(module, name)]
        if missing:
            raise ImportError(f"{MODULE_NAME} {getattr(module, '__version__', '?')} lacks {', '.join(missing)}")
    except ImportError as error:
        if mode == "on":
            raise NativeUnavailable(f"SENDTRAIL_NATIVE=on but the native module is unusable: {error}") from error
        return Backend(mode, None, f"native module unusable ({error}); using the Python reference")
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
