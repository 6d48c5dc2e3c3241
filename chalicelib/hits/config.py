"""The hit path's settings, read straight from the environment.

The hit path may not import pydantic (cold start), so it reads the few
variables it needs here. They are the same variables as
chalicelib.settings.Settings (a unit test checks every name below is a field
there), so the settings model stays the one definition.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

ENV_PREFIX = "SENDTRAIL_"


@dataclass(frozen=True)
class HitPathConfig:
    hit_stream: str
    deliveries_table: str
    delivery_logs_table: str
    addresses_table: str
    redirection_log_bucket: str
    redirection_log_fallback_stream: str
    expired_page_url: str | None
    public_base_url: str | None
    ip_address_mode: str
    signing_keys: str | None
    signing_keys_parameter: str | None
    signing_keys_max_age_seconds: int


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(ENV_PREFIX + name.upper())
    return value if value else default


@lru_cache(maxsize=1)
def get_hit_config() -> HitPathConfig:
    return HitPathConfig(
        hit_stream=_env("hit_stream") or "",
        deliveries_table=_env("deliveries_table") or "",
        delivery_logs_table=_env("delivery_logs_table") or "",
        addresses_table=_env("addresses_table") or "",
        redirection_log_bucket=_env("redirection_log_bucket") or "",
        redirection_log_fallback_stream=_env("redirection_log_fallback_stream") or "",
        expired_page_url=(_env("expired_page_url") or "").rstrip("/") or None,
        public_base_url=(_env("public_base_url") or "").rstrip("/") or None,
        ip_address_mode=_env("ip_address_mode", "truncated") or "truncated",
        signing_keys=_env("signing_keys"),
        signing_keys_parameter=_env("signing_keys_parameter"),
        signing_keys_max_age_seconds=int(_env("signing_keys_max_age_seconds", "300") or 300),
    )
