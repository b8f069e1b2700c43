"""Real-time updates: wires the change feed, ``/stream``, ``/ws`` and ``/metrics`` into the app.

``create_app`` calls :func:`install` once, after its own routes.  ``install`` adds the routers and
the latency middleware and wraps the application's lifespan so that the per-process
:class:`~flagstaff.server.changefeed.ChangeFeed` starts after the app's own startup (the store and
the snapshot cache exist by then) and stops before the app's own shutdown.

Settings are read from the app's settings object when it has the field (``stream_keepalive_seconds``
...), otherwise from ``FLAGSTAFF_STREAM_*`` environment variables; see :class:`StreamSettings`
and ``docs/streaming.md``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.middleware import Middleware

from flagstaff.server.changefeed import ChangeFeed
from flagstaff.server.metrics import LatencyMiddleware, Metrics
from flagstaff.server.metrics import router as metrics_router
from flagstaff.server.stream import RawSendMiddleware, StreamEndpoint
from flagstaff.server.stream import router as stream_router
from flagstaff.server.ws import router as ws_router


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


@dataclass(slots=True)
class Realtime:
    """What the realtime routes need, kept on ``app.state.realtime``."""

    settings: StreamSettings
    metrics: Metrics
    feed: ChangeFeed | None = None

    def wake(self) -> None:
        if self.feed is not None:
            self.feed.wake()

    def require_feed(self) -> ChangeFeed:
        if self.feed is None:
            # Only reachable if a request arrives outside the lifespan (e.g. a TestClient
            # used without its context manager).
            raise RuntimeError("the change feed is not running (app lifespan not started)")
        return self.feed


def install(app: FastAPI) -> None:
    """Add streaming, WebSocket and metrics routes, and run the change feed in the lifespan."""
    settings = stream_settings(getattr(app.state, "settings", None))
    realtime = Realtime(settings=settings, metrics=Metrics())
    app.state.realtime = realtime
    app.include_router(stream_router)
    app.include_router(ws_router)
    app.include_router(metrics_router)
    app.add_middleware(LatencyMiddleware, metrics=realtime.metrics, on_write=realtime.wake)
    # Outermost, so /stream body chunks can skip every middleware (they only touch the start).
    app.add_middleware(RawSendMiddleware)
    # Innermost of the app's middlewares (appended: the list runs outermost first), so request
    # ids, the access log and the latency middleware still see /stream while FastAPI's routing
    # and dependency machinery is not held in memory by every open connection.
    app.user_middleware.append(Middleware(StreamEndpoint))
    app.router.lifespan_context = _wrap_lifespan(app.router.lifespan_context, realtime)


def _wrap_lifespan(
    inner: Callable[[Any], AbstractAsyncContextManager[Any]], realtime: Realtime
) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as state:
            feed = ChangeFeed(
                store=app.state.store,
                settings=realtime.settings,
                metrics=realtime.metrics,
                snapshots=getattr(app.state, "snapshots", None),
            )
            await feed.start()
            realtime.feed = feed
            try:
                yield state
            finally:
                realtime.feed = None
                await feed.stop()

    return lifespan
