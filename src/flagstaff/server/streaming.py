"""Real-time updates in the server: ``/stream``, ``/ws`` and ``/metrics`` over the change log.

``create_app`` calls :func:`install` once, after its own routes.  ``install`` adds the routes and
the latency middleware and wraps the application's lifespan so that, after the app's own startup
(the store and the snapshot cache exist by then), the per-process
:class:`~flagstaff.realtime.ChangeFeed` starts over the store's change log
(:class:`~flagstaff.server.changesource.StoreChangeSource`) together with the process's
background jobs (``background.start``), and both stop before the app's own shutdown.

The fan-out and the transports are the ``flagstaff.realtime`` package; what is the server's here
is who may subscribe: a server-side SDK key, bound to one environment.  Settings come from the
app's settings object when it has the field (``stream_keepalive_seconds`` ...), otherwise from
``FLAGSTAFF_STREAM_*`` environment variables; see docs/streaming.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.types import Scope

from flagstaff.errors import FlagstaffError, Forbidden, Invalid, Unauthorized
from flagstaff.realtime import (
    Change,
    ChangeFeed,
    StreamSettings,
    parse_last_event_id,
    stream_settings,
)
from flagstaff.realtime.memory import MemoryReturn
from flagstaff.realtime.sse import (
    STREAM_PATH,
    EventStreamResponse,
    RawSendMiddleware,
    StreamEndpoint,
    is_relay,
    subscribe_response,
)
from flagstaff.realtime.websocket import deny, serve_websocket
from flagstaff.server import background
from flagstaff.server.auth import SDK_SERVER, ServerSdk
from flagstaff.server.changesource import StoreChangeSource
from flagstaff.server.errors import error_responses
from flagstaff.server.metrics import LatencyMiddleware, Metrics
from flagstaff.server.metrics import router as metrics_router
from flagstaff.server.middleware import is_sdk_route
from flagstaff.server.redaction import redact
from flagstaff.server.snapshots import SnapshotCache
from flagstaff.server.token_cache import TokenCache

router = APIRouter(tags=["sdk"])

# Follows every page of committed changes, after the compiled snapshots took it.
ChangeObserver = Callable[[ChangeFeed, Sequence[Change]], Awaitable[None]]


@dataclass(slots=True)
class Realtime:
    """What the real-time routes need, kept on ``app.state.realtime``."""

    settings: StreamSettings
    metrics: Metrics
    feed: ChangeFeed | None = None
    snapshots: SnapshotCache | None = None
    token_cache: TokenCache | None = None

    def wake(self) -> None:
        if self.feed is not None:
            self.feed.wake()

    def wrote(self, path: str, *, committed: bool, size: int) -> None:
        """A write request through this process was answered (``committed``: it succeeded and
        may have committed a change; ``size``: its body's declared size)."""
        if self.feed is not None:
            # A large body leaves its parsed objects and copies behind, whatever the answer.
            self.feed.memory.freed(size)
        if not committed or is_sdk_route(path):
            return  # evaluation and ingestion change no flag, segment or key
        # Look now rather than at the next poll (on SQLite the poll is the only other way).
        if self.snapshots is not None:
            self.snapshots.mark_stale()
        if self.token_cache is not None:
            self.token_cache.mark_stale()
        self.wake()

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
    app.include_router(router)
    app.include_router(metrics_router)
    app.add_middleware(LatencyMiddleware, metrics=realtime.metrics, on_write=realtime.wrote)
    # Outermost, so /stream body chunks can skip every middleware (they only touch the start).
    app.add_middleware(RawSendMiddleware)
    # Innermost of the app's middlewares (appended: the list runs outermost first), so request
    # ids, the access log and the latency middleware still see /stream while FastAPI's routing
    # and dependency machinery is not held in memory by every open connection.
    app.user_middleware.append(Middleware(StreamEndpoint, accept=_accept_stream))
    app.router.lifespan_context = _wrap_lifespan(app.router.lifespan_context, realtime)


def _wrap_lifespan(
    inner: Callable[[Any], AbstractAsyncContextManager[Any]], realtime: Realtime
) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as state:
            source = StoreChangeSource(app.state.store, listen=realtime.settings.listen)
            snapshots: SnapshotCache | None = getattr(app.state, "snapshots", None)
            # Others who follow every change after the snapshots took it (the OFREP event
            # streams: server/browser/eventstream.py), each given the feed to publish on.
            observers: list[ChangeObserver] = list(getattr(app.state, "change_observers", ()))

            async def on_changes(page: Sequence[Change]) -> None:
                if snapshots is not None:
                    await _fold(source, snapshots, page)
                    snapshots.follow(page[-1].id)
                for observe in observers:
                    await observe(feed, page)

            feed = ChangeFeed(
                source=source,
                settings=realtime.settings,
                metrics=realtime.metrics,
                on_changes=on_changes,
                memory=MemoryReturn.for_this_process(on_trim=realtime.metrics.trimmed)
                if realtime.settings.return_memory else None,
            )
            await feed.start()
            if snapshots is not None:
                # From now on the snapshots answer from memory while they are as new as what
                # the feed has read (SnapshotCache.current).
                snapshots.follow(feed.cursor)
                realtime.snapshots = snapshots
            realtime.token_cache = getattr(app.state, "token_cache", None)
            jobs = background.start(
                source=source, settings=realtime.settings,
                governance=getattr(app.state, "governance", None),
            )
            realtime.feed = feed
            try:
                yield state
            finally:
                realtime.feed = None
                realtime.snapshots = None
                await feed.stop()
                await jobs.stop()
                await source.drain()

    return lifespan


async def _fold(source: StoreChangeSource, snapshots: SnapshotCache, page: Sequence[Change]) -> None:
    """Fold a page of published changes into the compiled snapshots (a worker thread: it
    compiles)."""
    await source.call(partial(_apply_all, snapshots, page))


def _apply_all(snapshots: SnapshotCache, events: Sequence[Change]) -> None:
    for event in events:
        snapshots.apply_event(event)


def stream_environment(environment: str | None) -> str:
    if not environment:
        raise Invalid("this SDK key is not bound to an environment", details={"field": "token"})
    return environment


async def _accept_stream(scope: Scope) -> Response | None:
    """The fast path of ``GET /stream``: a clean success is served ahead of FastAPI's routing.

    Anything that is not (no or bad key, wrong kind, bad ``Last-Event-ID``, no feed) falls
    through to the ``/stream`` route, which answers it exactly as before; a domain error on the
    way (the database is down: ``503``) is answered here in the common error shape, since this
    runs outside FastAPI's exception handlers.
    """
    app: Any = scope.get("app")
    realtime: Realtime | None = getattr(getattr(app, "state", None), "realtime", None)
    if realtime is None or realtime.feed is None:
        return None
    headers = Headers(scope=scope)
    scheme, secret = get_authorization_scheme_param(headers.get("authorization"))
    if scheme.lower() != "bearer" or not secret:
        return None
    try:
        after_id = parse_last_event_id(headers.get("last-event-id"), field="Last-Event-ID")
    except Invalid:
        return None
    try:
        store = app.state.store
        record = await anyio.to_thread.run_sync(partial(store.authenticate, secret=secret))
        if record is None or record.kind != SDK_SERVER or not record.environment:
            return None
        return await subscribe_response(realtime.feed, record.environment, after_id,
                                        credential=record.id, relay=is_relay(headers))
    except FlagstaffError as exc:
        # Without asking the database a second time through the route.
        return JSONResponse(redact(exc.to_dict()), status_code=exc.status)


@router.get(
    STREAM_PATH,
    status_code=200,
    summary="Server-Sent Events: a snapshot, then one event per change",
    response_class=EventStreamResponse,
    responses=error_responses(400, 401, 403, 503),
)
async def stream(request: Request, principal: ServerSdk) -> Response:
    realtime: Realtime = request.app.state.realtime
    feed = realtime.require_feed()
    environment = stream_environment(principal.environment)
    after_id = parse_last_event_id(request.headers.get("last-event-id"), field="Last-Event-ID")
    return await subscribe_response(feed, environment, after_id, credential=principal.token_id)


async def _ws_key(websocket: WebSocket) -> tuple[str, str]:
    """The SDK key's id and environment; raises 401/403 like the HTTP routes."""
    scheme, _, secret = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    store = websocket.app.state.store
    record: Any = await anyio.to_thread.run_sync(lambda: store.authenticate(secret=secret.strip()))
    if record is None:
        raise Unauthorized("unknown or revoked token")
    if record.kind != SDK_SERVER:
        raise Forbidden(f"this route needs an SDK key of kind {SDK_SERVER}")
    return str(record.id), stream_environment(record.environment)


@router.websocket("/ws")
async def ws_endpoint(websocket: WebSocket) -> None:
    """``GET /ws``: the ``/stream`` events over a WebSocket (docs/streaming.md).

    Authentication is the ``Authorization`` header only: server-side SDK keys live in servers,
    whose WebSocket clients can set headers, and keys in URLs end up in access logs.
    """
    realtime: Realtime = websocket.app.state.realtime
    try:
        key_id, environment = await _ws_key(websocket)
        after_id = parse_last_event_id(
            websocket.query_params.get("last_event_id"), field="last_event_id"
        )
        feed = realtime.require_feed()
    except FlagstaffError as error:
        await deny(websocket, error)
        return
    await serve_websocket(websocket, feed, environment=environment, after_id=after_id,
                          credential=key_id)
