"""The link-signing key ring: which keys verify, and which one signs.

Keys rotate: a new key is added and made active, and the old one keeps
verifying links already sent until it is removed from the ring. The ring is
one JSON document, {"active": 2, "keys": {"1": "<base64>", "2": "<base64>"}}:
locally in SENDTRAIL_SIGNING_KEYS, in AWS in an SSM SecureString read through
Powertools Parameters (cached for `max_age` seconds, so a rotation reaches
warm containers without a deploy). Standard library only unless the SSM path
is used: this module is on the hit path.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping

MIN_KEY_BYTES = 16


class KeyRingError(RuntimeError):
    """The key ring is missing or malformed (a configuration error)."""


@dataclass(frozen=True)
class KeyRing:
    active_key_id: int
    keys: Mapping[int, bytes] = field(repr=False)

    @property
    def active_secret(self) -> bytes:
        return self.keys[self.active_key_id]

    @classmethod
    def from_json(cls, text: str) -> "KeyRing":
        try:
            document = json.loads(text)
            keys = {int(key_id): base64.b64decode(secret, validate=True) for key_id, secret in document["keys"].items()}
            active = int(document["active"])
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as error:
            raise KeyRingError(f"signing key ring is not valid JSON of the expected shape: {error}") from None
        if active not in keys:
            raise KeyRingError(f"active signing key {active} is not in the ring")
        for key_id, secret in keys.items():
            if not 0 <= key_id <= 255:
                raise KeyRingError(f"signing key id {key_id} is outside 0..255")
            if len(secret) < MIN_KEY_BYTES:
                raise KeyRingError(f"signing key {key_id} is shorter than {MIN_KEY_BYTES} bytes")
        return cls(active, keys)

    def to_json(self) -> str:
        return json.dumps({
            "active": self.active_key_id,
            "keys": {str(key_id): base64.b64encode(secret).decode("ascii") for key_id, secret in self.keys.items()},
        })


@lru_cache(maxsize=4)
def _parse(text: str) -> KeyRing:
    return KeyRing.from_json(text)


def load_keyring(inline: str | None, parameter_name: str | None, max_age_seconds: int = 300) -> KeyRing:
    """The ring from the environment (`inline`) or, in AWS, from SSM."""
    if inline:
        return _parse(inline)
    if parameter_name:
        from aws_lambda_powertools.utilities import parameters  # only where SSM is used

        return _parse(parameters.get_parameter(parameter_name, decrypt=True, max_age=max_age_seconds))
    raise KeyRingError("no signing keys: set SENDTRAIL_SIGNING_KEYS or SENDTRAIL_SIGNING_KEYS_PARAMETER")
