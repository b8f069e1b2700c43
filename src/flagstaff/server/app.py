"""Application factory: ``create_app(settings, *, store=None) -> FastAPI``.

The request path, outermost first: the evaluation fast path (``fast_evaluation``: a clean
evaluation answered from memory; anything else passes on), request id + access log + catch-all 500
(``RequestIdMiddleware``), CORS (``flagstaff.browser.cors``), the streaming body limit
(``BodyLimitMiddleware``), routing, then per route: bearer authentication and role/kind check
(``auth``), body parsing (pydantic models), the handler (which calls the store or the snapshot
cache), and ``errors`` turning any domain error into the common JSON shape.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

import flagstaff
from flagstaff.server import browser, console, fleet, hardening, landing, streaming
from flagstaff.server.bootstrap import ensure_admin_token, load_demo
from flagstaff.server.errors import install_error_handlers
from flagstaff.server.fast_evaluation import EvaluationFastPath
from flagstaff.server.governance import workers
from flagstaff.server.middleware import AccessLogPolicy, BodyLimitMiddleware, RequestIdMiddleware
from flagstaff.server.routes import (
    audit,
    change_requests,
    code_references,
    environments,
    evaluate,
    experiments,
    flags,
    health,
    ingest,
    ofrep,
    policies,
    relay,
    schedules,
    sdk,
    segments,
    tokens,
    triggers,
    webhooks,
)
from flagstaff.server.settings import LOCALHOST, Settings
from flagstaff.server.snapshots import SnapshotCache
from flagstaff.server.token_cache import TokenCache
from flagstaff.store import Store

log = logging.getLogger("flagstaff.server")
INGEST_PATHS = ("/exposures", "/track", "/evaluation-counts")

DESCRIPTION = """Feature flags with a complete audit log.

Authenticate with `Authorization: Bearer <token>`: management tokens (roles viewer, editor,
admin) for the management routes, SDK keys for `/sdk/flags`, `/evaluate` and OFREP.
Every 4xx/5xx answer has the shape `{"error": {"code", "message", "details"}}`.
"""


class FlagstaffApp(FastAPI):
    """The framework's app with the evaluation fast path in front of all of it, the framework's
    own outer layers included (``fast_evaluation``)."""

    fast_path: EvaluationFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast_path is None:
            await super().__call__(scope, receive, send)
        else:
            await self.fast_path(scope, receive, send)


def create_app(
    settings: Settings | None = None, *, store: Store | None = None, first_start: bool = True
) -> FlagstaffApp:
    """Build the app.  With ``store`` given the caller owns it; otherwise the lifespan opens
    ``settings.database_url`` (running migrations) and closes it on shutdown.  ``first_start``
    False leaves the first-start duties (admin token, demo flags) to whoever started this
    process: the parent of ``--workers N`` has done them once before any worker starts."""
    settings = settings or Settings()
    if settings.insecure_dev and settings.host != LOCALHOST:
        raise ValueError("insecure development mode only binds to 127.0.0.1")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = store is None
        opened = store if store is not None else await run_in_threadpool(Store.open, settings.database_url)
        app.state.store = opened
        app.state.snapshots = SnapshotCache(opened)
        app.state.token_cache = TokenCache(opened)
        try:
            if first_start:
                await run_in_threadpool(first_start_duties, opened, settings)
            await run_in_threadpool(browser.start, app, opened)
            yield
        finally:
            if isinstance(app, FlagstaffApp) and app.fast_path is not None:
                app.fast_path.unbind()  # the next start builds new caches
            if owned:
                # In a thread: it may wait for connections other threads still hold.
                await run_in_threadpool(opened.close)

    app = FlagstaffApp(
        title="Flagstaff",
        version=flagstaff.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        strict_content_type=False,
        docs_url=None,  # served by ``landing`` from packaged assets, not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    if store is not None:
        app.state.store = store
        app.state.snapshots = SnapshotCache(store)
        app.state.token_cache = TokenCache(store)
    install_error_handlers(app)
    for module in (health, flags, audit, segments, environments, tokens, evaluate, ofrep, sdk):
        app.include_router(module.router)
    app.include_router(relay.router)
    for module in (experiments, ingest):  # experiments, exposures, metric events
        app.include_router(module.router)
    app.include_router(code_references.router)  # what `flagstaff scan --report` found
    for module in (policies, change_requests, schedules, webhooks, triggers):
        app.include_router(module.router)  # governed change (docs/governance.md)
    app.include_router(console.router)  # the web console at /ui
    landing.install(app)

    # add_middleware wraps: the last added runs first.
    hardening.install(app, settings)  # request limits, rate limits, OpenAPI
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes,
        path_limits=dict.fromkeys(INGEST_PATHS, settings.ingest_max_body_bytes),
    )
    browser.install(app, settings)  # CORS per environment, browser access state
    app.state.access_log = AccessLogPolicy(sdk_routes=settings.access_log_sdk_routes)
    app.add_middleware(RequestIdMiddleware, access_log=app.state.access_log)
    workers.install(app, settings)  # governed change: the scheduler and webhook dispatcher
    streaming.install(app)

    async def forget_revoked_keys(feed: Any, page: Any) -> None:
        # The token cache of the evaluation routes follows revocations through the change feed.
        await app.state.token_cache.on_changes(feed, page)

    app.state.change_observers = [*getattr(app.state, "change_observers", []), forget_revoked_keys]
    browser.install_event_stream(app)
    fleet.install(app, app.state.realtime.metrics.registry)
    if settings.evaluation_fast_path:
        # In front of everything: a clean evaluation is answered from memory (fast_evaluation.py
        # says what it does in the stead of the layers above); anything else passes through.
        app.fast_path = EvaluationFastPath(
            partial(FastAPI.__call__, app), state=app.state, limits=app.state.request_limits,
            max_body_bytes=settings.max_body_bytes, access_log=app.state.access_log,
        )
    return app


def first_start_duties(store: Store, settings: Settings) -> None:
    """The admin token (printed once) and the demo flags; idempotent across restarts."""
    ensure_admin_token(store, settings)
    if settings.demo:
        load_demo(store)
