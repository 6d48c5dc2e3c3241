"""The link-signing key ring: which keys verify, and which one signs.

Keys rotate: a new key is added and made active, and the old one keeps
verifying links already sent until it is removed from the ring. The ring is
one JSON document, {"active": 2, "keys": {"1": "<base64>", "2": "<base64>"},
"remove_after": {"1": "2027-06-03T00:00:00Z"}}: locally in
SENDTRAIL_SIGNING_KEYS, in AWS in an SSM SecureString read with the shared
boto3 client of the hit path (chalicelib/data/aws.py: its short timeouts,
its session) and kept for `max_age` seconds, so a rotation reaches warm
containers without a deploy. (Powertools Parameters did the same with a
boto3 session of its own, reading botocore's endpoint data a second time,
and imported its providers, on the first click of every container.) `remove_after` is the date `sendtrail keys
rotate` announced for a retired key: the latest expiry of the links it
signed (`links_valid_until`, recorded per key as messages are sent), plus
the time their hits may still be on their way (`removable_from`). Standard
library only unless the SSM path is used: this module is on the hit path.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from time import monotonic
from typing import Mapping

MIN_KEY_BYTES = 16
NEW_KEY_BYTES = 32
DAY_MS = 86_400_000
HOUR_MS = 3_600_000


class KeyRingError(RuntimeError):
    """The key ring is missing or malformed (a configuration error)."""


@dataclass(frozen=True)
class KeyRing:
    active_key_id: int
    keys: Mapping[int, bytes] = field(repr=False)
    remove_after: Mapping[int, int] = field(default_factory=dict)  # key id -> epoch ms announced at rotation
    # Keys the one-way hashes of erased people's suppressed addresses; never rotated (the hashes must match).
    suppression_key: bytes | None = field(default=None, repr=False)

    @property
    def active_secret(self) -> bytes:
        return self.keys[self.active_key_id]

    @classmethod
    def from_json(cls, text: str) -> "KeyRing":
        try:
            document = json.loads(text)
            keys = {int(key_id): base64.b64decode(secret, validate=True) for key_id, secret in document["keys"].items()}
            active = int(document["active"])
            remove_after = {int(key_id): parse_time(when) for key_id, when in document.get("remove_after", {}).items()}
            suppression = document.get("suppression_key")
            suppression_key = base64.b64decode(suppression, validate=True) if suppression else None
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as error:
            raise KeyRingError(f"signing key ring is not valid JSON of the expected shape: {error}") from None
        if active not in keys:
            raise KeyRingError(f"active signing key {active} is not in the ring")
        for key_id, secret in keys.items():
            if not 0 <= key_id <= 255:
                raise KeyRingError(f"signing key id {key_id} is outside 0..255")
            if len(secret) < MIN_KEY_BYTES:
                raise KeyRingError(f"signing key {key_id} is shorter than {MIN_KEY_BYTES} bytes")
        if suppression_key is not None and len(suppression_key) < MIN_KEY_BYTES:
            raise KeyRingError(f"the suppression key is shorter than {MIN_KEY_BYTES} bytes")
        return cls(active, keys, {key_id: when for key_id, when in remove_after.items() if key_id in keys},
                   suppression_key)

    def to_json(self) -> str:
        document: dict[str, object] = {
            "active": self.active_key_id,
            "keys": {str(key_id): base64.b64encode(secret).decode("ascii") for key_id, secret in self.keys.items()},
        }
        if self.remove_after:
            document["remove_after"] = {str(key_id): format_time(when) for key_id, when in self.remove_after.items()}
        if self.suppression_key:
            document["suppression_key"] = base64.b64encode(self.suppression_key).decode("ascii")
        return json.dumps(document)

    def rotated(self, retire_after_ms: int) -> "KeyRing":
        """A new random key, active; the old active key stays, announced removable from `retire_after_ms`."""
        free = [key_id for key_id in range(1, 256) if key_id not in self.keys]
        if not free:
            raise KeyRingError("the ring holds 255 keys: remove retired ones first")
        new_id = next((key_id for key_id in free if key_id > max(self.keys)), free[0])
        return KeyRing(new_id, {**self.keys, new_id: secrets.token_bytes(NEW_KEY_BYTES)},
                       {**self.remove_after, self.active_key_id: retire_after_ms},
                       self.suppression_key or secrets.token_bytes(NEW_KEY_BYTES))

    def without(self, key_id: int) -> "KeyRing":
        if key_id == self.active_key_id:
            raise KeyRingError(f"key {key_id} is the active key: rotate first")
        if key_id not in self.keys:
            raise KeyRingError(f"key {key_id} is not in the ring")
        return KeyRing(self.active_key_id, {k: v for k, v in self.keys.items() if k != key_id},
                       {k: v for k, v in self.remove_after.items() if k != key_id}, self.suppression_key)


def parse_time(text: str) -> int:
    """An ISO 8601 UTC time ("2027-06-03T00:00:00Z") as epoch milliseconds."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int((when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp() * 1000)


def format_time(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def end_of_day(epoch_ms: int) -> int:
    """The next UTC midnight at or after `epoch_ms` (workers sending the same day record the same date)."""
    return -(-epoch_ms // DAY_MS) * DAY_MS


def links_valid_until(links_expire_at_ms: int, now_ms: int, unsubscribe_days: int) -> int:
    """Until when a message sent now must verify: its links' expiry, or its unsubscribe link's, the later.

    One-click unsubscribe (List-Unsubscribe) keeps working after the other
    links expired, for as long as the message's delivery log is kept.
    """
    return end_of_day(max(links_expire_at_ms, now_ms + unsubscribe_days * DAY_MS))


def removable_from(valid_until_ms: int, hits_in_flight_hours: int) -> int:
    """When a key whose links are valid until `valid_until_ms` may go: after their last hits are processed.

    A hit is verified again by the tracking workflow, which reads late
    redirection logs for `hits_in_flight_hours` (Firehose retries for a day).
    """
    return end_of_day(valid_until_ms + hits_in_flight_hours * HOUR_MS)


@lru_cache(maxsize=4)
def _parse(text: str) -> KeyRing:
    return KeyRing.from_json(text)


def load_keyring(inline: str | None, parameter_name: str | None, max_age_seconds: int = 300) -> KeyRing:
    """The ring from the environment (`inline`) or, in AWS, from SSM."""
    if inline:
        return _parse(inline)
    if parameter_name:
        return _parse(_parameter_text(parameter_name, max_age_seconds))
    raise KeyRingError("no signing keys: set SENDTRAIL_SIGNING_KEYS or SENDTRAIL_SIGNING_KEYS_PARAMETER")


_read: dict[str, tuple[float, str]] = {}  # parameter name -> (monotonic() when read, decrypted value)
_read_lock = threading.Lock()


def _parameter_text(name: str, max_age_seconds: int) -> str:
    """The SecureString's decrypted value, read again once `max_age_seconds` have passed."""
    read_at, text = _read.get(name, (float("-inf"), ""))
    if monotonic() - read_at < max_age_seconds:
        return text
    from chalicelib.data import aws  # boto3: only where SSM is used (the CLI reads rings without it)

    with _read_lock:  # one read when many threads find it stale
        read_at, text = _read.get(name, (float("-inf"), ""))
        if monotonic() - read_at >= max_age_seconds:
            answer = aws.client("ssm", aws.HIT_PATH).get_parameter(Name=name, WithDecryption=True)
            read_at, text = monotonic(), answer["Parameter"]["Value"]
            _read[name] = (read_at, text)
    return text


def forget_read() -> None:
    """Read the ring from SSM again on next use (after it changed, e.g. in tests and the local stack)."""
    with _read_lock:
        _read.clear()
