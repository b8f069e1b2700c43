"""Server settings, read from ``FLAGSTAFF_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCALHOST = "127.0.0.1"


class Settings(BaseSettings):
    """Everything ``flagstaff serve`` and ``python -m flagstaff.server`` can be told."""

    model_config = SettingsConfigDict(env_prefix="FLAGSTAFF_", extra="ignore")

    host: str = LOCALHOST
    port: int = Field(default=8400, ge=0, le=65535)
    database_url: str = "sqlite:///./flagstaff.db"
    # Makes the first admin token this value instead of a random one (automation, as
    # Unleash's init tokens); only used when the database has no token yet.
    bootstrap_token: str | None = None
    # Open write access for local development: every request acts as a synthetic admin.
    insecure_dev: bool = False
    demo: bool = True
    # Server processes sharing the port (docs/operations.md, "Workers"); unset: one per core
    # the process may run on, except with insecure_dev (a developer's server: one).
    workers: int | None = Field(default=None, gt=0)
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    log_level: str = "INFO"
    # auto: readable lines on a terminal, JSON lines otherwise (docs/operations.md).
    log_format: Literal["auto", "json", "text"] = "auto"
    # Per-request access lines for the high-volume SDK routes (evaluation, /sdk/flags,
    # ingestion); off, they are only counted in /metrics and logged when they fail.
    access_log_sdk_routes: bool = False
    # Clean evaluation requests answered from memory in front of the framework (the same
    # answers, sooner; server/fast_evaluation.py).  Off: every request goes through the routes.
    evaluation_fast_path: bool = True
    # The console lists environments in this order (the release pipeline), then the rest
    # alphabetically; comma-separated.
    environment_order: str = "development,staging,production"
    # Comma-separated origins allowed for every environment and the management API; each
    # environment adds its own (docs/browser.md).  Empty: only the environments' origins.
    cors_origins: str = ""
    # How long browsers may cache a preflight (Chromium caps it at 7200 s).
    cors_max_age_seconds: int = Field(default=7200, ge=0)
    # Environments' origins and secure mode are reloaded at most this often per process.
    browser_access_refresh_seconds: float = Field(default=2.0, gt=0)
    # Event batches a page (client-side key, per client address) may send per minute, and
    # events per batch.
    browser_ingest_batches_per_minute: int = Field(default=120, gt=0)
    browser_ingest_max_events: int = Field(default=1000, gt=0)
    # Event-stream URLs in bulk answers are signed per window of this length and expire at
    # the end of the next one (docs/browser.md).
    browser_stream_token_seconds: int = Field(default=3600, ge=60)
    # Request limits (docs/reliability.md): structural JSON limits, answered 400 ``invalid``.
    max_json_depth: int = Field(default=64, gt=0)
    max_string_length: int = Field(default=65_536, gt=0)
    max_list_items: int = Field(default=100_000, gt=0)
    max_object_keys: int = Field(default=10_000, gt=0)
    # A request body must arrive within this time (slowloris), else 408 and the socket closes.
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    # Concurrent /stream + /ws connections per SDK key (429 beyond).
    max_streams_per_key: int = Field(default=1000, gt=0)
    # Authentication failures (401) per client IP and window before 429 (per process).
    max_auth_failures: int = Field(default=20, gt=0)
    auth_failure_window_seconds: float = Field(default=60.0, gt=0)
    # Ingestion batches hold up to 10,000 events (about 2 MB of exposures).
    ingest_max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    # Flag lifecycle: days without evaluations, or serving one variant, before a flag of that
    # kind is stale; unset (empty) means never.
    stale_release_days: int | None = Field(default=40, gt=0)
    stale_experiment_days: int | None = Field(default=40, gt=0)
    stale_operational_days: int | None = Field(default=7, gt=0)
    stale_kill_switch_days: int | None = Field(default=None, gt=0)
    stale_permission_days: int | None = Field(default=None, gt=0)
    # The fleet view (docs/relay.md): an instance silent this long is stale; this long, forgotten.
    fleet_stale_after_seconds: float = Field(default=300.0, gt=0)
    fleet_forget_after_seconds: float = Field(default=3600.0, gt=0)
    # Each process writes what it heard once per interval, at most this many instances at once.
    fleet_flush_interval_seconds: float = Field(default=1.0, gt=0)
    fleet_max_pending: int = Field(default=100_000, gt=0)
    # Governed change (docs/governance.md): the scheduler and webhook dispatcher of each
    # process, the webhook retry policy and which hosts webhooks may call.
    public_url: str | None = None
    background_workers: bool = True
    scheduler_poll_seconds: float = Field(default=1.0, gt=0)
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_base_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_retry_for_seconds: float = Field(default=86400.0, gt=0)
    webhook_allowed_hosts: str = ""
    webhook_allow_loopback: bool = False
    webhook_log_days: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _insecure_means_localhost(self) -> Settings:
        # Open write access must never be reachable from another machine, whatever host
        # was asked for.
        if self.insecure_dev:
            self.host = LOCALHOST
        return self

    @property
    def worker_count(self) -> int:
        """How many server processes to run: ``workers`` if set, else the production default."""
        if self.workers is not None:
            return self.workers
        if self.insecure_dev:
            return 1
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    @property
    def stale_thresholds(self) -> dict[str, int | None]:
        return {
            "release": self.stale_release_days,
            "experiment": self.stale_experiment_days,
            "operational": self.stale_operational_days,
            "kill-switch": self.stale_kill_switch_days,
            "permission": self.stale_permission_days,
        }

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]
