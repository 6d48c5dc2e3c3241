"""Pointing sendtrail's code at an (embedded) AWS: environment and caches.

Lambda code reads its configuration once per container and caches clients
and lookups. Locally, and between tests, the environment changes under it;
`apply` sets the variables and forgets everything cached from the old ones.
"""

from __future__ import annotations

import base64
import os
import secrets
from typing import Mapping

# moto's fake credentials, so nothing can reach a real account.
FAKE_AWS_ENVIRONMENT = {
    **dict.fromkeys(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"),
                    "testing"),
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
# Never reach a real account from a developer machine's configuration.
_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


def fake_aws(endpoint_url: str | None = None) -> dict[str, str]:
    """Fake credentials (and the embedded AWS endpoint, when it is a server)."""
    environment = dict(FAKE_AWS_ENVIRONMENT)
    if endpoint_url:
        environment["AWS_ENDPOINT_URL"] = endpoint_url
    return environment


def new_signing_keyring() -> str:
    """A fresh key ring with one active 32-byte key, and the key of erased people's suppression hashes."""
    secret, suppression = (base64.b64encode(secrets.token_bytes(32)).decode("ascii") for _ in range(2))
    return '{"active": 1, "keys": {"1": "%s"}, "suppression_key": "%s"}' % (secret, suppression)


def apply(variables: Mapping[str, str], remove: tuple[str, ...] = ()) -> None:
    for name in _UNSET + remove:
        os.environ.pop(name, None)
    os.environ.update(variables)
    forget_cached_configuration()


def forget_cached_configuration() -> None:
    """Clear every per-container cache that depends on the environment."""
    from chalicelib import keyring, metrics, native
    from chalicelib.data import aws, signing_keys
    from chalicelib.hits import config, endpoints
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    metrics.stage.cache_clear()
    native.backend.cache_clear()
    config.get_hit_config.cache_clear()
    keyring._parse.cache_clear()  # noqa: SLF001 - the parse cache is keyed by text; cleared for isolation
    keyring.forget_read()  # the key ring read from SSM
    aws.reset_clients()
    signing_keys.forget_recorded()
    endpoints.link_tables.clear()
