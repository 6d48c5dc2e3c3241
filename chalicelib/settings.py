"""The one settings model: every setting sendtrail reads, from the environment.

Resource names arrive as environment variables set from infra/template.yaml
(its Globals section), so the template is where names are made and this
model is where code reads them. The hit path reads a handful of the same
variables without pydantic (chalicelib/hits/config.py); a unit test keeps
those names a subset of this model's.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chalicelib.keyring import KeyRing, load_keyring

ENV_PREFIX = "SENDTRAIL_"


class Affinity(BaseModel):
    """How mail leaves: an SES configuration set, the dedicated IP pool it sends through, a rate cap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    configuration_set: str = Field(min_length=1, max_length=64)
    ip_pool: Optional[str] = Field(default=None, description="the pool the configuration set must send through")
    max_rate: Optional[float] = Field(default=None, gt=0, description="messages per second at most; "
                                                                       "None: the SES account's max send rate")

    @field_validator("ip_pool", mode="before")
    @classmethod
    def _no_pool(cls, value: Any) -> Any:
        return value or None  # the template writes "" when there is no pool

    @field_validator("max_rate", mode="before")
    @classmethod
    def _no_cap(cls, value: Any) -> Any:
        return value or None  # the template writes 0 for "the account's rate"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="ignore")

    stage: Literal["local", "dev", "prod"] = "local"

    # Resource names (from the template's Globals).
    hit_stream: str = Field(description="Kinesis stream every hit is put into")
    deliveries_table: str
    delivery_logs_table: str
    addresses_table: str
    redirection_log_bucket: str = Field(description="S3 bucket of the redirection logs (Firehose and fallback writes)")
    redirection_log_fallback_stream: Optional[str] = Field(
        default=None, description="the DirectPut Firehose delivery stream a hit goes to when its Kinesis put fails")
    tracking_table: str = Field(description="per-recipient tracking (hits), by delivery and log id")
    tracking_stats_table: str = Field(description="consolidated tracking per delivery: counters, URLs, time buckets")
    workflow_table: str = Field(description="the tracking workflow's checkpoint, lease and processed objects")
    tracking_runs_table: str = Field(description="the append-only layout's run items, by delivery shard and run")
    tracking_layout: Literal["items", "append"] = Field(
        default="append", description="where the workflow writes: run items (append; the reports read them and "
                                      "the items layout's), or recipient items, counter items and log pages (items)")

    # Secrets: locally from the environment, in AWS from SSM (by name).
    signing_keys: Optional[SecretStr] = Field(
        default=None, description='Link-signing key ring, JSON {"active": id, "keys": {id: base64}}'
    )
    signing_keys_parameter: Optional[str] = Field(default=None, description="SSM SecureString with the key ring")
    signing_keys_max_age_seconds: int = 300
    api_tokens: Optional[str] = Field(
        default=None, description="API token hashes with their scopes: `scope:sha256` entries (scope read or admin), "
                                  "comma-separated; read by chalicelib/auth.py")
    dashboard_session_hours: int = Field(default=8, ge=1, le=24 * 30, description="how long a dashboard login "
                                                                                 "lasts (the session cookie)")

    # Tracking behaviour.
    public_base_url: Optional[str] = Field(default=None, description="base URL of tracked links; default: the API's")
    expired_page_url: Optional[str] = None
    ip_address_mode: Literal["full", "truncated", "none"] = "truncated"
    default_validity_days: int = Field(default=30, ge=1, le=3650)
    tracking_retention_days: int = Field(
        default=365, ge=1, description="tracking items live this long after their last hit")
    delivery_log_retention_days: int = Field(
        default=180, ge=1, description="a delivery log (address, attributes, status) lives this long after its message "
                                       "was sent (Campaign: 6 months); its unsubscribe link works as long")

    # The tracking workflow (a run is bounded; a backlog drains over runs).
    workflow_max_objects: int = Field(default=200, ge=1, description="log objects read per run at most")
    workflow_max_hits: int = Field(default=500_000, ge=1, description="hits read per run at most (memory bound)")
    workflow_max_seconds: float = Field(default=40.0, gt=0, description="a run stops reading new objects after this")
    workflow_api_max_seconds: float = Field(default=15.0, gt=0, description="the same bound for POST /api/workflow/run")
    workflow_lease_seconds: int = Field(default=360, ge=10, description="longer than the workflow Lambda's timeout")
    workflow_lookback_hours: int = Field(
        default=26, ge=1, description="hour partitions re-listed for late objects (Firehose retries for up to 24 h)")
    workflow_max_list_pages: int = Field(
        default=50, ge=1, description="pages of 1,000 keys a run lists past its cursor at most (new objects)")
    workflow_sweep_pages: int = Field(
        default=5, ge=1, description="pages of the lookback window a run sweeps for late objects; the sweep "
                                      "resumes where it stopped and starts over once it reaches the cursor")
    workflow_write_concurrency: int = Field(default=16, ge=1, le=64, description="parallel DynamoDB writes in a run")
    workflow_first_hits_per_recipient: int = Field(
        default=100, ge=0, le=250, description="a recipient's first hits stored per delivery (by time); the hits "
                                                "between the first and the last are counted, not stored")
    workflow_last_hits_per_recipient: int = Field(
        default=100, ge=1, le=250, description="a recipient's latest hits stored per delivery (500 in all keeps an "
                                                "item < 400 KB; fewer cost fewer write units per rewrite)")
    workflow_interval_seconds: float = Field(
        default=5.0, gt=0, description="local stack only: how often it runs the workflow (AWS: every minute)")

    # Human or machine (chalicelib/tracking/classify.py): rules to switch off, and the behaviour thresholds.
    classify_rules_off: list[Literal["apple_proxy", "scanner_agent", "scanner_address", "crawler", "prefetch",
                                     "honeypot", "burst", "too_fast", "no_open"]] = Field(
        default_factory=list, description='reasons never held against a hit, JSON, e.g. ["too_fast"]')
    classify_burst_links: int = Field(
        default=2, ge=0, description="different links clicked within the burst window that make the clicks a "
                                     "machine's (below 2: no burst rule)")
    classify_burst_window_ms: int = Field(default=2_000, ge=0, description="the burst window")
    classify_min_click_after_send_ms: int = Field(
        default=5_000, ge=0, description="a click sooner than this after the send is a machine's (0: no rule)")

    # The tracking workflow's ingestion: the native layer (Rust) or the Python reference
    # (chalicelib/native.py): auto = native when it imports, on = native or fail, off = Python.
    native: Literal["auto", "on", "off"] = "auto"

    # The MTA: affinities (from the template: SENDTRAIL_AFFINITIES, JSON) and send jobs.
    send_queue_url: str = Field(description="SQS queue of send jobs: one message per chunk of recipients")
    affinities: dict[str, Affinity] = Field(
        default_factory=dict, description='name -> {"configuration_set", "ip_pool", "max_rate"}')
    default_affinity: str = Field(default="default", description="the affinity of a delivery that names none")
    send_concurrency: int = Field(
        default=2, ge=1, description="send workers at once (the queue's maximum concurrency); each takes its share "
                                     "of the affinity's rate")
    send_chunk_size: int = Field(default=500, ge=1, le=10_000, description="recipients per send job message")
    send_claim_batch: int = Field(
        default=25, ge=1, le=98, description="messages claimed, and recorded as sent, per DynamoDB transaction")
    send_chunk_max_seconds: float = Field(
        default=240.0, gt=0, description="a chunk's time budget (the Lambda's remaining time bounds it too); "
                                         "what is left goes back on the queue")
    send_backoff_base_seconds: float = Field(default=0.25, gt=0, description="first backoff on SES throttling")
    send_backoff_max_seconds: float = Field(default=20.0, gt=0, description="longest backoff on SES throttling")
    send_throttled_retry_delay_seconds: int = Field(
        default=60, ge=0, le=900, description="SQS delay of a chunk put back because SES kept throttling")
    send_stall_seconds: int = Field(
        default=600, ge=1, description="a sending delivery without progress this long is reported as stalled")

    # Operations (the status check, chalicelib/status.py): resources only it asks about.
    redirection_log_delivery_stream: Optional[str] = Field(
        default=None, description="the Firehose delivery stream writing the redirection logs (from the template)")
    send_dead_letter_queue_url: Optional[str] = Field(
        default=None, description="where send jobs that failed every retry wait for a redrive (from the template)")
    ses_events_queue_url: Optional[str] = Field(
        default=None, description="the SES events queue the ses_events function drains (from the template)")
    ses_events_dead_letter_queue_url: Optional[str] = Field(
        default=None, description="where SES events that failed every retry wait for a redrive (from the template)")
    # A consumer at its usual pace drains 1,000 SES events in seconds: more waiting means it is behind or
    # not running, and delivery logs, bounces and quarantine lag behind SES.
    ses_events_queue_warn_at: int = Field(default=1_000, ge=1, description="the status check warns from this many "
                                                                          "SES events waiting")
    ses_events_queue_fail_at: int = Field(default=10_000, ge=1, description="and fails from this many")

    # Limits on what a delivery may carry (DynamoDB items stop at 400 KB).
    max_html_bytes: int = 200_000
    max_recipients_per_request: int = 50_000

    def affinity(self, name: Optional[str]) -> Optional[Affinity]:
        """The affinity called `name` (the default one for None), or None when it is not configured."""
        return self.affinities.get(name or self.default_affinity)

    def keyring(self) -> KeyRing:
        """The link-signing key ring (environment locally, SSM in AWS; cached)."""
        inline = self.signing_keys.get_secret_value() if self.signing_keys else None
        return load_keyring(inline, self.signing_keys_parameter, self.signing_keys_max_age_seconds)

    @field_validator("public_base_url", "expired_page_url")
    @classmethod
    def _strip_trailing_slash(cls, value: Optional[str]) -> Optional[str]:
        return value.rstrip("/") if value else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings, read once per container (tests clear the cache)."""
    return Settings()  # required fields come from the environment (the pydantic mypy plugin knows)
