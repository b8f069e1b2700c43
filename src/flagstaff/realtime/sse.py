"""The Server-Sent Events transport: one ``text/event-stream`` response per subscriber.

The response is a small ASGI loop rather than a generic streaming response: one coroutine per
connection writes (the disconnect is noticed by driving ``receive()`` from callbacks, not by a
second task), keepalives and maximum ages come from the feed's one shared ticker, an accepted
request is served by :class:`StreamEndpoint` ahead of the framework's routing, and body chunks
bypass the middlewares (:class:`RawSendMiddleware`), which keeps ten thousand idle connections
cheap in memory and the fan-out cheap in CPU (where the memory goes, measured:
docs/streaming.md, "Server implementation notes").  SSE frames are encoded once per event and
shared by every connection of an environment.  Who may subscribe is the caller's business:
:class:`StreamEndpoint` asks the ``accept`` function it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, cast

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagstaff.realtime.events import Outgoing
from flagstaff.realtime.feed import ChangeFeed
from flagstaff.realtime.metrics import StreamMetrics
from flagstaff.realtime.session import SEND_TIMEOUT, open_session, pump
from flagstaff.realtime.subscriber import Subscriber

log = logging.getLogger("flagstaff.realtime.sse")

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
# The largest body handed to the server at once (see _SseWriter.write): the size of asyncio's
# default write-buffer high-water mark, so a stalled connection holds at most about two.
PIECE = 64 * 1024

# A relay following a stream says so (the fleet report header of its kind): it is offered
# every event before the other subscribers.
RELAY_HEADER = "flagstaff-instance-kind"
RAW_SEND_KEY = "flagstaff.raw_send"
RAW_RECEIVE_KEY = "flagstaff.raw_receive"


# The keepalive interval in force, so a client can tell a silent (dead) connection from a quiet
# one: docs/streaming.md asks clients to give up after ~2.5 intervals without a byte.
KEEPALIVE_HEADER = "Flagstaff-Keepalive-Seconds"


@functools.cache
def _raw_headers(keepalive_seconds: float) -> list[tuple[bytes, bytes]]:
    headers = {**HEADERS, KEEPALIVE_HEADER: f"{keepalive_seconds:g}"}
    response = Response(media_type=EventStreamResponse.media_type, headers=headers)
    return [(k, v) for k, v in response.raw_headers if k != b"content-length"]


class EventStreamResponse(Response):
    """The SSE response for one subscribed connection."""

    media_type = "text/event-stream"

    def __init__(
        self,
        *,
        feed: ChangeFeed,
        subscriber: Subscriber,
        initial: list[Outgoing],
        sent_up_to: int,
    ) -> None:
        # Not Response.__init__: with no body it would announce ``Content-Length: 0``.  The
        # header list is built once and shared: nothing downstream mutates it (middlewares and
        # the server copy), and every open connection would otherwise keep its own.
        self.status_code = 200
        self.background = None
        self.raw_headers = _raw_headers(feed.settings.keepalive_seconds)
        self.feed = feed
        self.subscriber = subscriber
        self.initial = initial
        self.sent_up_to = sent_up_to

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        feed = self.feed
        subscriber = self.subscriber
        # The response start goes through every middleware (request id, access log, status);
        # body chunks go straight to the server's ``send`` when RawSendMiddleware saved it:
        # no middleware looks at body bytes, and their wrapper coroutines (one per layer, per
        # chunk and per connection) were most of the fan-out's CPU.  Likewise the disconnect
        # is awaited on the server's own ``receive`` (the body limit has nothing to count on a
        # GET).
        writer = _SseWriter(
            scope.get(RAW_SEND_KEY) or send, subscriber, feed.settings.retry_ms, feed.metrics,
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
                feed=feed,
                initial=self.initial,
                sent_up_to=self.sent_up_to,
                write=writer.write,
                keepalive=writer.keepalive,
                cost=_held_while_writing,
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


async def subscribe_response(
    feed: ChangeFeed, environment: str, after_id: int | None, *, credential: str | None = None,
    relay: bool = False,
) -> EventStreamResponse:
    """Subscribe a new SSE connection of ``environment`` and read what it is missing
    (``relay``: the client is a relay, served first in every fan-out)."""
    subscriber, initial, sent_up_to = await open_session(
        feed, environment=environment, after_id=after_id, transport="sse", keepalive=True,
        credential=credential, relay=relay,
    )
    return EventStreamResponse(
        feed=feed, subscriber=subscriber, initial=initial, sent_up_to=sent_up_to
    )


class _SseWriter:
    """Writes one connection's SSE body and notices the client going away; a slotted object
    rather than closures and a second task, which cost more memory per held connection."""

    __slots__ = (
        "_metrics", "_pending", "_prefix", "_receive", "_receiving", "_send", "_subscriber",
    )

    def __init__(
        self, send: Send, subscriber: Subscriber, retry_ms: int, metrics: StreamMetrics
    ) -> None:
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
        # Frames are encoded once and shared by every connection; the server copies what it is
        # given into the connection's own buffer, so a large frame goes in pieces of at most
        # PIECE bytes, each sent only once the server's buffer has drained below its
        # high-water mark.  A client that stops reading then holds about two pieces, not a
        # copy of the snapshot, and the pump's send timeout ends it.
        send = self._send
        for body in pieces(batch, self._prefix):
            self._prefix = b""
            await send({"type": "http.response.body", "body": body, "more_body": True})

    async def keepalive(self) -> None:
        await self._send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})

    def direct(self, item: Outgoing) -> bool:
        """Write ``item`` now from the fan-out if the server can take it without waiting.

        ``send`` is driven by hand: uvicorn's completes without suspending unless the socket's
        buffer is full, and then it suspends (waiting to drain) before writing anything, so
        closing it there loses nothing and the pump sends the event the normal way, under the
        send timeout.
        """
        if self._prefix or item.final or len(item.sse) > PIECE or not self._write_now(item.sse):
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


def _held_while_writing(batch: list[Outgoing]) -> int:
    # Written in pieces, a batch leaves at most about two pieces in the server's buffer.
    return min(sum(len(item.sse) for item in batch), 2 * PIECE)


def pieces(batch: list[Outgoing], prefix: bytes = b"") -> Iterator[bytes]:
    """The batch's frames (after ``prefix``) as bodies of at most :data:`PIECE` bytes: small
    frames joined, large ones cut (a piece is copied out of the shared frame only when sent)."""
    small: list[bytes] = [prefix] if prefix else []
    size = len(prefix)
    for item in batch:
        frame = item.sse
        if size + len(frame) <= PIECE:
            small.append(frame)
            size += len(frame)
            continue
        if small:
            yield small[0] if len(small) == 1 else b"".join(small)
            small, size = [], 0
        if len(frame) <= PIECE:
            small, size = [frame], len(frame)
            continue
        view = memoryview(frame)
        for start in range(0, len(frame), PIECE):
            yield bytes(view[start:start + PIECE])
    if small:
        yield small[0] if len(small) == 1 else b"".join(small)


def is_relay(headers: Headers) -> bool:
    """Whether the client following a stream is a relay (``Flagstaff-Instance-Kind: relay``)."""
    return headers.get(RELAY_HEADER, "").strip().lower() == "relay"


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


class RawSendMiddleware:
    """Outermost: remembers the server's own ``send`` and ``receive`` in the scope of
    stream requests (see :meth:`EventStreamResponse.__call__`)."""

    def __init__(self, app: ASGIApp, *, path: str = STREAM_PATH) -> None:
        self.app = app
        self.path = path

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "http" and scope["path"] == self.path:
            scope[RAW_SEND_KEY] = send
            scope[RAW_RECEIVE_KEY] = receive
        # Returned, not awaited: a plain function keeps no suspended frame per held connection.
        return self.app(scope, receive, send)


# Given a ``GET`` of the stream path, the response to serve (an accepted stream, or an error
# answered here), or None to let the request fall through to the application's own route.
Accept = Callable[[Scope], Awaitable[Response | None]]


class StreamEndpoint:
    """Innermost middleware: serves an accepted ``GET /stream`` before the framework's routing.

    A held connection keeps its whole call chain suspended in memory; FastAPI's routing,
    dependency solving and exception wrappers alone were over half of the ~35 KiB each
    connection cost.  Served here, outside them, a connection is a few frames.  What is
    accepted is ``accept``'s decision; anything it leaves (None) goes on to the application,
    whose route answers it (errors included) in the usual way.
    """

    def __init__(self, app: ASGIApp, *, accept: Accept, path: str = STREAM_PATH) -> None:
        self.app = app
        self.accept = accept
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path and scope["method"] == "GET":
            response = await self.accept(scope)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
