"""Server settings, read from ``FLAGSTAFF_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

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
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    log_level: str = "INFO"
    # Comma-separated origins; empty disables CORS entirely.
    cors_origins: str = ""
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

    @model_validator(mode="after")
    def _insecure_means_localhost(self) -> Settings:
        # Open write access must never be reachable from another machine, whatever host
        # was asked for.
        if self.insecure_dev:
            self.host = LOCALHOST
        return self

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
