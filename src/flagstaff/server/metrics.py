"""Prometheus metrics: ``GET /metrics`` and the request-latency middleware.

Each app gets its own :class:`~prometheus_client.CollectorRegistry`, so several apps in one
process (tests) never share or clash over series.  ``/metrics`` is open by default, like most
exporters (it shows counts, never flag contents); set ``FLAGSTAFF_STREAM_METRICS_TOKEN`` to require
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import sys
import time
from collections.abc import Awaitable
from typing import Any, Protocol

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagstaff.errors import Unauthorized
from flagstaff.numerals import ascii_int
from flagstaff.realtime import StreamMetrics
from flagstaff.server.latency import LatencyHistogram
from flagstaff.store.db import sqlite_memory_used

router = APIRouter(tags=["metrics"])

# Long-lived routes: their "latency" is the connection's lifetime, which would swamp the
# histogram, so they are counted by the stream gauges instead.
_UNTIMED_ROUTES = frozenset({"/stream", "/ws", "/metrics"})
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class WriteObserver(Protocol):
    """Told of every write request once answered: its path, whether it succeeded (so it may
    have committed a change) and its body's declared size (0 if not declared)."""

    def __call__(self, path: str, *, committed: bool, size: int) -> None: ...


class Metrics(StreamMetrics):
    """The server's series, registered in a private registry: the real-time ones
    (:class:`~flagstaff.realtime.StreamMetrics`) and the process's own."""

    def __init__(self) -> None:
        super().__init__(CollectorRegistry())
        registry = self.registry
        self.request_latency = LatencyHistogram(
            "flagstaff_http_request_duration_seconds",
            "HTTP request latency by route template.",
            registry=registry,
        )
        # Memory held by Python objects, apart from RSS (which also holds SQLite's page caches,
        # the allocator's free lists and native buffers): a leak of objects shows here first.
        self.python_blocks = Gauge(
            "flagstaff_python_allocated_blocks",
            "Memory blocks currently allocated by the Python interpreter (sys.getallocatedblocks).",
            registry=registry,
        )
        self.python_blocks.set_function(sys.getallocatedblocks)
        if sqlite_memory_used() is not None:
            self.sqlite_memory = Gauge(
                "flagstaff_sqlite_memory_bytes",
                "Memory SQLite has allocated in this process (page caches included).",
                registry=registry,
            )
            self.sqlite_memory.set_function(lambda: float(sqlite_memory_used() or 0))


class LatencyMiddleware:
    """Observes each HTTP request's duration under its route template (``/flags/{key}``), and
    calls ``on_write`` after each write request (see :data:`WriteObserver`)."""

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, on_write: WriteObserver | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.on_write = on_write

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        untimed = scope.get("path") in _UNTIMED_ROUTES and scope.get("method") not in _WRITES
        if scope["type"] != "http" or untimed:
            # Nothing to observe or wake for.  Returned rather than awaited, so a held
            # ``/stream`` keeps no frame or send wrapper of this layer (memory per connection).
            return self.app(scope, receive, send)
        return self._timed(scope, receive, send)

    async def _timed(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        async def observe_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observe_status)
        finally:
            method = scope.get("method", "")
            if self.on_write is not None and method in _WRITES:
                self.on_write(
                    scope.get("path", ""), committed=status < 400, size=_body_size(scope)
                )
            route = _route_template(scope)
            # /stream may be served before routing (realtime.sse.StreamEndpoint), so no route is
            # set; the path tells it apart.
            if route not in _UNTIMED_ROUTES and scope.get("path") not in _UNTIMED_ROUTES:
                self.metrics.request_latency.labels(
                    method=method, route=route, status=str(status)
                ).observe(time.perf_counter() - started)


def _body_size(scope: Scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return ascii_int(value, max_digits=18) or 0
    return 0


def _route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    # Unmatched paths share one label: raw paths would let clients mint unbounded series.
    return str(getattr(route, "path", None) or "<unmatched>")


@router.get("/metrics", include_in_schema=False)
def metrics_endpoint(request: Request) -> Response:
    realtime = request.app.state.realtime
    token: str | None = realtime.settings.metrics_token
    if token:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized("GET /metrics needs Authorization: Bearer <metrics token>")
    body = generate_latest(realtime.metrics.registry)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
