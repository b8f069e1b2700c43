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

    @model_validator(mode="after")
    def _insecure_means_localhost(self) -> Settings:
        # Open write access must never be reachable from another machine, whatever host
        # was asked for.
        if self.insecure_dev:
            self.host = LOCALHOST
        return self

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]
