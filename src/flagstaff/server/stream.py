"""``GET /stream``: Server-Sent Events for server-side SDK keys (protocol: docs/streaming.md).

A connection subscribes to the change feed *before* it reads what the client is missing (a
``put`` snapshot, or the backlog after ``Last-Event-ID``), then forwards queued events whose id
is above the last one it sent.  Subscribing first means no event can fall between the backlog
read and the live queue; the id filter means none is sent twice.

The response is a small ASGI loop rather than a generic streaming response so that one
coroutine per connection does everything (keepalives, maximum age, slow-consumer cut-off),
which keeps ten thousand idle connections cheap.  SSE frames are encoded once per event by
``sse_starlette.ServerSentEvent`` and shared by every connection of an environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response
from starlette.types import Receive, Scope, Send

from flagstaff.errors import Invalid
from flagstaff.server.auth import ServerSdk
from flagstaff.server.changefeed import ChangeFeed, Outgoing, Subscriber, protocol_event
from flagstaff.server.errors import error_responses
from flagstaff.server.metrics import Metrics

if TYPE_CHECKING:
    from flagstaff.server.realtime import Realtime

log = logging.getLogger("flagstaff.server.stream")

router = APIRouter(tags=["sdk"])

HEADERS = {
    "Cache-Control": "no-cache",
    # nginx and similar proxies buffer responses unless told not to.
    "X-Accel-Buffering": "no",
}
# A comment line without the blank line that would end an event block: browsers ignore both
# forms, but some clients (httpx-sse) turn a lone blank line after an ``id:`` into an empty
# message, so the next event's block simply starts with these comment lines.
KEEPALIVE = b": keepalive\n"

# Why a pump ended; the transport decides how to close.
SEND_TIMEOUT = "send_timeout"


def parse_last_event_id(value: str | None, *, field: str) -> int | None:
    """The client's last event id; absent or empty means none, anything else must be an id."""
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if not text.isdigit() or len(text) > 19:
        raise Invalid(f"{field} must be a change-event id (a non-negative integer)",
                      details={"field": field})
    return int(text)


async def initial_events(
    feed: ChangeFeed, environment: str, after_id: int | None
) -> tuple[list[Outgoing], int]:
    """What a new connection sends first, and the id it has then sent up to."""
    if after_id is not None:
        backlog = await feed.backlog(after_id=after_id)
        if backlog is not None:
            items = [o for e in backlog if (o := protocol_event(e, environment)) is not None]
            return items, max([after_id, *(e.id for e in backlog)])
    put = await feed.put_event(environment)
    return [put], put.id


async def pump(
    subscriber: Subscriber,
    *,
    realtime: Realtime,
    initial: list[Outgoing],
    sent_up_to: int,
    write: Callable[[list[Outgoing]], Awaitable[None]],
    keepalive: Callable[[], Awaitable[None]] | None,
) -> str:
    """Forward events to one client until it goes away, falls behind, or reaches its age.

    Returns why it stopped: the subscriber's close reason, ``max_age``, ``final`` or
    :data:`SEND_TIMEOUT` (the client stopped reading; the connection must be dropped).
    """
    settings = realtime.settings
    metrics = realtime.metrics
    loop = asyncio.get_running_loop()
    deadline = loop.time() + random.uniform(
        settings.max_age_min_seconds, settings.max_age_max_seconds
    )
    pending: list[Outgoing | None] = list(initial)
    # The initial events are exactly what is missing; queued ones may repeat them.
    trusted = True
    while True:
        batch: list[Outgoing] = []
        closed = False
        for item in pending:
            if item is None:
                closed = True
                break
            if trusted or item.id > sent_up_to:
                batch.append(item)
                sent_up_to = max(sent_up_to, item.id)
        trusted = False
        if batch:
            try:
                async with asyncio.timeout(settings.send_timeout_seconds):
                    await write(batch)
            except TimeoutError:
                return _stalled(subscriber, metrics)
            for item in batch:
                metrics.events_sent.labels(transport=subscriber.transport, event=item.event).inc()
            if batch[-1].final:
                return "final"
        if closed:
            return subscriber.closed_reason or "closed"
        remaining = deadline - loop.time()
        if remaining <= 0:
            return "max_age"
        try:
            # asyncio.timeout rather than wait_for: no extra task per wait, which matters
            # with ten thousand idle connections.
            async with asyncio.timeout(min(settings.keepalive_seconds, remaining)):
                pending = await subscriber.get()
        except TimeoutError:
            pending = []
            if keepalive is not None and deadline > loop.time():
                try:
                    async with asyncio.timeout(settings.send_timeout_seconds):
                        await keepalive()
                except TimeoutError:
                    return _stalled(subscriber, metrics)


def _stalled(subscriber: Subscriber, metrics: Metrics) -> str:
    """A write blocked too long; count the client as slow unless the feed already did."""
    if subscriber.closed_reason is None:
        metrics.slow_consumers.labels(transport=subscriber.transport).inc()
    subscriber.close("slow")
    return SEND_TIMEOUT


class EventStreamResponse(Response):
    """The SSE response for one subscribed connection."""

    media_type = "text/event-stream"

    def __init__(
        self,
        *,
        realtime: Realtime,
        subscriber: Subscriber,
        initial: list[Outgoing],
        sent_up_to: int,
    ) -> None:
        # Not Response.__init__: with no body it would announce ``Content-Length: 0``.
        self.status_code = 200
        self.background = None
        self.init_headers(HEADERS)
        self.realtime = realtime
        self.subscriber = subscriber
        self.initial = initial
        self.sent_up_to = sent_up_to

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        feed = self.realtime.require_feed()
        subscriber = self.subscriber
        watcher = asyncio.create_task(_watch_disconnect(receive, subscriber))

        # The retry hint rides in the first event's block: a block holding only ``retry:``
        # dispatches nothing in browsers but shows up as an empty message in some clients.
        prefix = f"retry: {self.realtime.settings.retry_ms}\n".encode()

        async def write(batch: list[Outgoing]) -> None:
            nonlocal prefix
            body = prefix + b"".join(item.sse for item in batch)
            prefix = b""
            await send({"type": "http.response.body", "body": body, "more_body": True})

        async def keepalive() -> None:
            await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})

        try:
            await send(
                {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
            )
            reason = await pump(
                subscriber,
                realtime=self.realtime,
                initial=self.initial,
                sent_up_to=self.sent_up_to,
                write=write,
                keepalive=keepalive,
            )
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            feed.unsubscribe(subscriber)
        if reason == SEND_TIMEOUT:
            # The client's TCP window is full, so a final empty chunk would block as well;
            # returning unfinished makes the ASGI server drop the connection.
            log.info("dropped a stream client that stopped reading")
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _watch_disconnect(receive: Receive, subscriber: Subscriber) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            subscriber.close("disconnected")
            return


def stream_environment(environment: str | None) -> str:
    if not environment:
        raise Invalid("this SDK key is not bound to an environment", details={"field": "token"})
    return environment


@router.get(
    "/stream",
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
    subscriber = feed.subscribe(environment=environment, transport="sse")
    try:
        initial, sent_up_to = await initial_events(feed, environment, after_id)
    except BaseException:
        feed.unsubscribe(subscriber)
        raise
    return EventStreamResponse(
        realtime=realtime, subscriber=subscriber, initial=initial, sent_up_to=sent_up_to
    )
