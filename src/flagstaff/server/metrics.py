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
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagstaff.errors import Unauthorized
from flagstaff.store.db import sqlite_memory_used

router = APIRouter(tags=["metrics"])

# Long-lived routes: their "latency" is the connection's lifetime, which would swamp the
# histogram, so they are counted by the stream gauges instead.
_UNTIMED_ROUTES = frozenset({"/stream", "/ws", "/metrics"})
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Metrics:
    """The server's series, registered in a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.stream_clients = Gauge(
            "flagstaff_stream_clients",
            "Connected real-time clients.",
            ["transport"],
            registry=self.registry,
        )
        self.events_sent = Counter(
            "flagstaff_stream_events_sent",
            "Events written to real-time clients, by event type.",
            ["transport", "event"],
            registry=self.registry,
        )
        self.slow_consumers = Counter(
            "flagstaff_stream_slow_consumers_dropped",
            "Real-time clients disconnected because they could not keep up.",
            ["transport"],
            registry=self.registry,
        )
        self.feed_events = Counter(
            "flagstaff_changefeed_events",
            "Change events read from the change log by this process.",
            registry=self.registry,
        )
        self.feed_delay = Histogram(
            "flagstaff_changefeed_delay_seconds",
            "Time from an event's commit to its fan-out by this process.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "flagstaff_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        # Memory held by Python objects, apart from RSS (which also holds SQLite's page caches,
        # the allocator's free lists and native buffers): a leak of objects shows here first.
        self.python_blocks = Gauge(
            "flagstaff_python_allocated_blocks",
            "Memory blocks currently allocated by the Python interpreter (sys.getallocatedblocks).",
            registry=self.registry,
        )
        self.python_blocks.set_function(sys.getallocatedblocks)
        if sqlite_memory_used() is not None:
            self.sqlite_memory = Gauge(
                "flagstaff_sqlite_memory_bytes",
                "Memory SQLite has allocated in this process (page caches included).",
                registry=self.registry,
            )
            self.sqlite_memory.set_function(lambda: float(sqlite_memory_used() or 0))
        # Labelled children, looked up once: ``labels()`` takes a lock and builds a key on every
        # call, which the fan-out would otherwise pay per connection and per event.
        self._clients: dict[str, Gauge] = {}
        self._slow: dict[str, Counter] = {}
        self._sent: dict[tuple[str, str], Counter] = {}
        for transport in ("sse", "ws"):
            # Present from the start so dashboards (and tests) see zeros, not absent series.
            self.clients(transport)
            self.slow(transport)

    def clients(self, transport: str) -> Gauge:
        child = self._clients.get(transport)
        if child is None:
            child = self._clients[transport] = self.stream_clients.labels(transport=transport)
        return child

    def slow(self, transport: str) -> Counter:
        child = self._slow.get(transport)
        if child is None:
            child = self._slow[transport] = self.slow_consumers.labels(transport=transport)
        return child

    def sent(self, transport: str, event: str) -> Counter:
        key = (transport, event)
        child = self._sent.get(key)
        if child is None:
            child = self._sent[key] = self.events_sent.labels(transport=transport, event=event)
        return child


class LatencyMiddleware:
    """Observes each HTTP request's duration under its route template (``/flags/{key}``), and
    calls ``on_write`` after each successful write request."""

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, on_write: Callable[[], None] | None = None
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
            if self.on_write is not None and method in _WRITES and status < 400:
                # A write through this process committed a change: look now rather than at
                # the next poll (on SQLite the poll is the only other way to learn of it).
                self.on_write()
            route = _route_template(scope)
            # /stream may be served before routing (stream.StreamEndpoint), so no route is
            # set; the path tells it apart.
            if route not in _UNTIMED_ROUTES and scope.get("path") not in _UNTIMED_ROUTES:
                self.metrics.request_latency.labels(
                    method=method, route=route, status=str(status)
                ).observe(time.perf_counter() - started)


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
