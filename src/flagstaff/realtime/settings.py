"""Streaming, change-feed and retention knobs (environment prefix ``FLAGSTAFF_STREAM_``).

Documented in docs/streaming.md ("Settings").  Retention and ``metrics_token`` concern the
server that owns the change log and ``/metrics``; they live here so every ``FLAGSTAFF_STREAM_*``
variable is read in one place.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class StreamSettings(BaseSettings):
    """Streaming, change-feed and retention knobs (env prefix ``FLAGSTAFF_STREAM_``)."""

    model_config = SettingsConfigDict(env_prefix="FLAGSTAFF_STREAM_", extra="ignore")

    keepalive_seconds: float = Field(default=15.0, gt=0)
    retry_ms: int = Field(default=3000, ge=0)
    # Connections end after a random age in [min, max] so long-lived load re-spreads over
    # replicas after a deploy or scale-out.
    max_age_min_seconds: float = Field(default=1800.0, gt=0)
    max_age_max_seconds: float = Field(default=3600.0, gt=0)
    buffer_size: int = Field(default=256, ge=1)
    # A send blocked this long (the client's TCP window is full) drops the connection.
    send_timeout_seconds: float = Field(default=10.0, gt=0)
    # Bytes one key's connections may have in the server's write buffers at once
    # (realtime/budget.py); writes beyond wait, under the send timeout.
    key_buffer_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024)
    # Give what large buffers leave in the C allocator back to the operating system
    # (realtime/memory.py; glibc only).  Off leaves the allocator alone: another one is
    # preloaded, or to compare.
    return_memory: bool = True
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    # LISTEN/NOTIFY on PostgreSQL; off leaves only the poll (tests of the safety net).
    listen: bool = True
    retention_max_age_seconds: float = Field(default=7 * 86400.0, gt=0)
    retention_max_count: int = Field(default=100_000, ge=1)
    prune_interval_seconds: float = Field(default=300.0, gt=0)
    # When set, GET /metrics needs `Authorization: Bearer <metrics_token>`.
    metrics_token: str | None = None

    @model_validator(mode="after")
    def _age_range(self) -> StreamSettings:
        if self.max_age_max_seconds < self.max_age_min_seconds:
            raise ValueError("max_age_max_seconds must be >= max_age_min_seconds")
        return self


def stream_settings(app_settings: Any) -> StreamSettings:
    """Environment values, overridden by same-named ``stream_*`` fields of the app's settings."""
    overrides = {
        name: getattr(app_settings, f"stream_{name}")
        for name in StreamSettings.model_fields
        if getattr(app_settings, f"stream_{name}", None) is not None
    }
    return StreamSettings(**overrides)
