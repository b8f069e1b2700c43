"""Application factory: ``create_app(settings, *, store=None) -> FastAPI``.

The request path, outermost first: request id + access log + catch-all 500
(``RequestIdMiddleware``), CORS (only when origins are configured), the streaming body limit
(``BodyLimitMiddleware``), routing, then per route: bearer authentication and role/kind check
(``auth``), body parsing (pydantic models), the handler (which calls the store or the snapshot
cache), and ``errors`` turning any domain error into the common JSON shape.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

import flagstaff
from flagstaff.server import console, hardening, realtime
from flagstaff.server.bootstrap import ensure_admin_token, load_demo
from flagstaff.server.errors import install_error_handlers
from flagstaff.server.middleware import BodyLimitMiddleware, RequestIdMiddleware
from flagstaff.server.routes import (
    audit,
    environments,
    evaluate,
    experiments,
    flags,
    health,
    ingest,
    ofrep,
    sdk,
    segments,
    tokens,
)
from flagstaff.server.settings import LOCALHOST, Settings
from flagstaff.server.snapshots import SnapshotCache
from flagstaff.store import Store

log = logging.getLogger("flagstaff.server")
INGEST_PATHS = ("/exposures", "/track", "/evaluation-counts")

DESCRIPTION = """Feature flags with a complete audit log.

Authenticate with `Authorization: Bearer <token>`: management tokens (roles viewer, editor,
admin) for the management routes, SDK keys for `/sdk/flags`, `/evaluate` and OFREP.
Every 4xx/5xx answer has the shape `{"error": {"code", "message", "details"}}`.
"""


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> FastAPI:
    """Build the app.  With ``store`` given the caller owns it; otherwise the lifespan opens
    ``settings.database_url`` (running migrations) and closes it on shutdown."""
    settings = settings or Settings()
    if settings.insecure_dev and settings.host != LOCALHOST:
        raise ValueError("insecure development mode only binds to 127.0.0.1")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = store is None
        opened = store if store is not None else await run_in_threadpool(Store.open, settings.database_url)
        app.state.store = opened
        app.state.snapshots = SnapshotCache(opened)
        try:
            await run_in_threadpool(_first_start, opened, settings)
            yield
        finally:
            if owned:
                opened.close()

    app = FastAPI(
        title="Flagstaff",
        version=flagstaff.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        strict_content_type=False,
    )
    app.state.settings = settings
    if store is not None:
        app.state.store = store
        app.state.snapshots = SnapshotCache(store)
    install_error_handlers(app)
    for module in (health, flags, audit, segments, environments, tokens, evaluate, ofrep, sdk):
        app.include_router(module.router)
    for module in (experiments, ingest):  # issue 6: experiments, exposures, metric events
        app.include_router(module.router)
    app.include_router(console.router)  # issue 8: the web console at /ui

    # add_middleware wraps: the last added runs first.
    hardening.install(app, settings)  # issue 9: request limits, rate limits, OpenAPI
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes,
        path_limits=dict.fromkeys(INGEST_PATHS, settings.ingest_max_body_bytes),
    )
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "If-None-Match", "X-Request-ID"],
            expose_headers=["ETag", "X-Request-ID"],
        )
    app.add_middleware(RequestIdMiddleware)
    realtime.install(app)
    return app


def _first_start(store: Store, settings: Settings) -> None:
    ensure_admin_token(store, settings)
    if settings.demo:
        load_demo(store)
