"""``GET /stream``: Server-Sent Events for server-side SDK keys (protocol: docs/streaming.md).

A connection subscribes to the change feed *before* it reads what the client is missing (a
``put`` snapshot, or the backlog after ``Last-Event-ID``), then forwards queued events whose id
is above the last one it sent.  Subscribing first means no event can fall between the backlog
read and the live queue; the id filter means none is sent twice.

The response is a small ASGI loop rather than a generic streaming response: one coroutine per
connection writes (the disconnect is noticed by driving ``receive()`` from callbacks, not by a
second task), keepalives and maximum ages come from the change feed's one shared ticker, a
successful request is served by :class:`StreamEndpoint` ahead of FastAPI's routing and body
chunks bypass the middlewares (:class:`RawSendMiddleware`), which keeps ten thousand idle
connections cheap in memory and the fan-out cheap in CPU (where the memory goes, measured:
docs/streaming.md, "Server implementation notes").  SSE
frames are encoded once per event and shared by every connection of an environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagstaff.errors import FlagstaffError, Invalid
from flagstaff.server.auth import SDK_SERVER, ServerSdk
from flagstaff.server.changefeed import ChangeFeed, Outgoing, Subscriber, protocol_event
from flagstaff.server.errors import error_responses
from flagstaff.server.metrics import Metrics
from flagstaff.server.redaction import redact

if TYPE_CHECKING:
    from flagstaff.server.realtime import Realtime

log = logging.getLogger("flagstaff.server.stream")

router = APIRouter(tags=["sdk"])

STREAM_PATH = "/stream"

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


@functools.cache
def _raw_headers() -> list[tuple[bytes, bytes]]:
    response = Response(media_type=EventStreamResponse.media_type, headers=HEADERS)
    return [(k, v) for k, v in response.raw_headers if k != b"content-length"]


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

    Returns why it stopped: the subscriber's close reason (``max_age`` and keepalive wake-ups
    come from the feed's shared ticker), ``final`` or :data:`SEND_TIMEOUT` (the client stopped
    reading; the connection must be dropped).
    """
    settings = realtime.settings
    metrics = realtime.metrics
    loop = asyncio.get_running_loop()
    pending: list[Outgoing | None] = list(initial)
    # Emptied (it is the caller's fresh list) rather than kept for the connection's lifetime:
    # a ``put`` can be a large snapshot, and connections opened at different times would each
    # pin a different one.
    initial.clear()
    subscriber.sent_up_to = sent_up_to
    # The initial events are exactly what is missing; queued ones may repeat them.
    trusted = True
    while True:
        batch: list[Outgoing] = []
        closed = False
        for item in pending:
            if item is None:
                closed = True
                break
            if trusted or item.id > subscriber.sent_up_to:
                batch.append(item)
                subscriber.sent_up_to = max(subscriber.sent_up_to, item.id)
        trusted = False
        if batch:
            try:
                async with asyncio.timeout(settings.send_timeout_seconds):
                    await write(batch)
            except TimeoutError:
                return _stalled(subscriber, metrics)
            subscriber.last_write = loop.time()
            for item in batch:
                metrics.sent(subscriber.transport, item.event).inc()
            if batch[-1].final:
                return "final"
        if closed:
            return subscriber.closed_reason or "closed"
        pending = await subscriber.get()
        if not pending and keepalive is not None:
            try:
                async with asyncio.timeout(settings.send_timeout_seconds):
                    await keepalive()
            except TimeoutError:
                return _stalled(subscriber, metrics)
            subscriber.last_write = loop.time()


def _stalled(subscriber: Subscriber, metrics: Metrics) -> str:
    """A write blocked too long; count the client as slow unless the feed already did."""
    if subscriber.closed_reason is None:
        metrics.slow(subscriber.transport).inc()
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
        # Not Response.__init__: with no body it would announce ``Content-Length: 0``.  The
        # header list is built once and shared: nothing downstream mutates it (middlewares and
        # the server copy), and every open connection would otherwise keep its own.
        self.status_code = 200
        self.background = None
        self.raw_headers = _raw_headers()
        self.realtime = realtime
        self.subscriber = subscriber
        self.initial = initial
        self.sent_up_to = sent_up_to

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        feed = self.realtime.require_feed()
        subscriber = self.subscriber
        # The response start goes through every middleware (request id, access log, status);
        # body chunks go straight to the server's ``send`` when RawSendMiddleware saved it:
        # no middleware looks at body bytes, and their wrapper coroutines (one per layer, per
        # chunk and per connection) were most of the fan-out's CPU.  Likewise the disconnect
        # is awaited on the server's own ``receive`` (the body limit has nothing to count on a
        # GET).
        writer = _SseWriter(
            scope.get(RAW_SEND_KEY) or send, subscriber, self.realtime.settings.retry_ms,
            self.realtime.metrics,
        )
        server_receive = scope.get(RAW_RECEIVE_KEY) or receive
        watcher: asyncio.Task[None] | None = None
        try:
            if _drivable_by_hand(server_receive):
                writer.watch_disconnect(server_receive)
            else:
                watcher = asyncio.create_task(_watch_disconnect(server_receive, subscriber))
            await send(
                {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
            )
            subscriber.direct = writer.direct
            subscriber.direct_ping = writer.direct_ping
            reason = await pump(
                subscriber,
                realtime=self.realtime,
                initial=self.initial,
                sent_up_to=self.sent_up_to,
                write=writer.write,
                keepalive=writer.keepalive,
            )
        finally:
            subscriber.direct = subscriber.direct_ping = None
            writer.stop_watching()
            if watcher is not None:
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


class _SseWriter:
    """Writes one connection's SSE body and notices the client going away; a slotted object
    rather than closures and a second task, which cost more memory per held connection."""

    __slots__ = (
        "_metrics", "_pending", "_prefix", "_receive", "_receiving", "_send", "_subscriber",
    )

    def __init__(self, send: Send, subscriber: Subscriber, retry_ms: int, metrics: Metrics) -> None:
        self._send = send
        self._subscriber = subscriber
        self._metrics = metrics
        # The retry hint rides in the first event's block: a block holding only ``retry:``
        # dispatches nothing in browsers but shows up as an empty message in some clients.
        self._prefix = f"retry: {retry_ms}\n".encode()
        self._receive: Receive | None = None
        # The ``receive()`` call in progress, and what it waits on (a future, or the handle of
        # a bare-yield retry) while it is suspended.
        self._receiving: Coroutine[Any, Any, Message] | None = None
        self._pending: asyncio.Future[Any] | asyncio.Handle | None = None

    def watch_disconnect(self, receive: Receive) -> None:
        """Close the subscriber as soon as ``receive`` reports ``http.disconnect``.

        ``receive()`` is driven by hand, step by step from its futures' done callbacks, which
        is what a task awaiting it would do: a task (with its context, its weak reference in
        the loop's task set and one more suspended coroutine) cost ~0.6 KiB more per held
        connection.
        The first step runs now, so a client already gone is noticed before anything is sent.
        """
        self._receive = receive
        self._step_receive(None)

    def stop_watching(self) -> None:
        """Abandon the ``receive()`` in progress (closing it runs its cleanup, e.g. uvicorn's
        ``Event.wait`` drops its waiter)."""
        self._receive = None
        pending, self._pending = self._pending, None
        if isinstance(pending, asyncio.Handle):
            pending.cancel()
        elif pending is not None:
            pending.remove_done_callback(self._step_receive)
        receiving, self._receiving = self._receiving, None
        if receiving is not None:
            receiving.close()

    def _step_receive(self, _done: object) -> None:
        self._pending = None
        while self._receive is not None:
            receiving = self._receiving
            if receiving is None:
                receiving = self._receiving = cast(
                    Coroutine[Any, Any, Message], self._receive()
                )
            try:
                yielded = receiving.send(None)
            except StopIteration as stop:
                self._receiving = None
                if stop.value["type"] == "http.disconnect":
                    self._subscriber.close("disconnected")
                    return
                continue  # request body (a GET has none worth reading): read on
            except Exception:
                # Whatever broke the server's receive, disconnects can no longer be seen:
                # end the stream (the client reconnects) rather than hold it blind.
                self._receiving = None
                log.debug("receive() failed on a stream", exc_info=True)
                self._subscriber.close("disconnected")
                return
            if getattr(yielded, "_asyncio_future_blocking", None):
                # The asyncio protocol: a coroutine suspends by yielding the future it awaits.
                future = cast("asyncio.Future[Any]", yielded)
                future._asyncio_future_blocking = False
                future.add_done_callback(self._step_receive)
                self._pending = future
            else:
                # A bare ``yield`` (``asyncio.sleep(0)``) asks to be resumed on the next turn.
                self._pending = asyncio.get_running_loop().call_soon(self._step_receive, None)
            return

    async def write(self, batch: list[Outgoing]) -> None:
        # One event (the usual case) needs no join; frames are shared, never copied.
        frames = batch[0].sse if len(batch) == 1 else b"".join([i.sse for i in batch])
        body = self._prefix + frames if self._prefix else frames
        self._prefix = b""
        await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def keepalive(self) -> None:
        await self._send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})

    def direct(self, item: Outgoing) -> bool:
        """Write ``item`` now from the fan-out if the server can take it without waiting.

        ``send`` is driven by hand: uvicorn's completes without suspending unless the socket's
        buffer is full, and then it suspends (waiting to drain) before writing anything, so
        closing it there loses nothing and the pump sends the event the normal way, under the
        send timeout.
        """
        if self._prefix or item.final or not self._write_now(item.sse):
            return False
        self._subscriber.sent_up_to = item.id
        self._metrics.sent("sse", item.event).inc()
        return True

    def direct_ping(self) -> bool:
        """Write a keepalive now if the server can take it without waiting."""
        return self._write_now(KEEPALIVE)

    def _write_now(self, body: bytes) -> bool:
        coroutine = cast(
            Coroutine[Any, Any, None],
            self._send({"type": "http.response.body", "body": body, "more_body": True}),
        )
        try:
            coroutine.send(None)
        except StopIteration:
            self._subscriber.last_write = asyncio.get_running_loop().time()
            return True
        except Exception:
            # Whatever failed, the pump's own write will meet it and end the stream.
            return False
        coroutine.close()
        return False


def _drivable_by_hand(receive: Receive) -> bool:
    """Whether ``receive`` is uvicorn's own, which :meth:`_SseWriter.watch_disconnect` can step
    through without a task: it only waits on an ``asyncio.Event``.  Another server's (or a
    test client's) may need a current task, so it gets one."""
    owner = getattr(receive, "__self__", None)
    return type(owner).__module__.startswith("uvicorn.")


async def _watch_disconnect(receive: Receive, subscriber: Subscriber) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            subscriber.close("disconnected")
            return


RAW_SEND_KEY = "flagstaff.raw_send"
RAW_RECEIVE_KEY = "flagstaff.raw_receive"


class RawSendMiddleware:
    """Outermost: remembers the server's own ``send`` and ``receive`` in the scope of
    ``/stream`` requests (see :meth:`EventStreamResponse.__call__`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "http" and scope["path"] == STREAM_PATH:
            scope[RAW_SEND_KEY] = send
            scope[RAW_RECEIVE_KEY] = receive
        # Returned, not awaited: a plain function keeps no suspended frame per held connection.
        return self.app(scope, receive, send)


class StreamEndpoint:
    """Innermost middleware: serves an authorised ``GET /stream`` before FastAPI routing.

    A held connection keeps its whole call chain suspended in memory; FastAPI's routing,
    dependency solving and exception wrappers alone were over half of the ~35 KiB each
    connection cost.  Served here, outside them, a connection is a few frames.  Anything
    that is not a clean success (no or bad key, wrong kind, bad ``Last-Event-ID``, no feed)
    falls through to the ``/stream`` route, which answers it exactly as before; a domain error
    on the way (the database is down: ``503``) is answered here in the common error shape.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == STREAM_PATH and scope["method"] == "GET":
            try:
                response = await self._accept(scope)
            except FlagstaffError as exc:
                # The database is down (503), say.  This runs outside FastAPI's exception
                # handlers, where it would become the catch-all 500: answer in the common
                # shape here, as the route would, without asking the database a second time.
                error = JSONResponse(redact(exc.to_dict()), status_code=exc.status)
                await error(scope, receive, send)
                return
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _accept(self, scope: Scope) -> EventStreamResponse | None:
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
        store = app.state.store
        record = await anyio.to_thread.run_sync(partial(store.authenticate, secret=secret))
        if record is None or record.kind != SDK_SERVER or not record.environment:
            return None
        return await subscribe_response(realtime, record.environment, after_id)


async def subscribe_response(
    realtime: Realtime, environment: str, after_id: int | None
) -> EventStreamResponse:
    feed = realtime.require_feed()
    subscriber = feed.subscribe(environment=environment, transport="sse", keepalive=True)
    try:
        initial, sent_up_to = await initial_events(feed, environment, after_id)
    except BaseException:
        feed.unsubscribe(subscriber)
        raise
    return EventStreamResponse(
        realtime=realtime, subscriber=subscriber, initial=initial, sent_up_to=sent_up_to
    )


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
    realtime.require_feed()
    environment = stream_environment(principal.environment)
    after_id = parse_last_event_id(request.headers.get("last-event-id"), field="Last-Event-ID")
    return await subscribe_response(realtime, environment, after_id)
