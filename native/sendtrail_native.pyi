"""sendtrail's native ingestion layer (Rust). See native/src/python.rs and chalicelib/native.py."""

from typing import Mapping

__version__: str
REASONS: list[str]  # ["malformed", "unknown_key", "bad_signature"]

class InvalidToken(ValueError):
    """The token is not one of ours; `reason` is one of REASONS (as chalicelib.tokens.InvalidToken)."""

    reason: str

def verify_token(token: str, keys: Mapping[int, bytes], params: str = "") -> tuple[int, int, str, int, int]:
    """(kind, key_id, delivery_id, log_id, url_id) of a genuine token; InvalidToken otherwise."""
