"""The WebSocket transport: the stream's events as text messages (protocol: docs/streaming.md).

Each text message is ``{"id": <event id>, "event": "<type>", "data": {...}}`` with exactly the
events and catch-up rules of the SSE stream.  Who may connect is the caller's business; it hands
an authorised socket to :func:`serve_websocket`, or refuses it with :func:`deny`: the common JSON
error body with its HTTP status when the ASGI server supports denial responses, else close code
1008.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from flagstaff.errors import FlagstaffError
from flagstaff.realtime.events import Outgoing
from flagstaff.realtime.feed import ChangeFeed
from flagstaff.realtime.session import SEND_TIMEOUT, initial_events, pump
from flagstaff.realtime.subscriber import Subscriber

# Close codes by why the server ended the connection (RFC 6455 section 7.4, IANA registry).
CLOSE_CODES = {
    "final": 1000,  # the environment was deleted; nothing more will come
    "max_age": 1001,  # going away: reconnect (possibly to another replica)
    "shutdown": 1012,  # service restart
    "slow": 1013,  # try again later: the client fell behind
    "revoked": 1008,  # policy violation: the key was revoked; do not reconnect with it
    SEND_TIMEOUT: 1013,
}


async def deny(websocket: WebSocket, error: FlagstaffError) -> None:
    """Refuse the handshake with ``error``'s status and the common error body."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(
            JSONResponse(error.to_dict(), status_code=error.status)
        )
    else:
        await websocket.close(code=1008, reason=error.message[:120])


async def _read_until_closed(websocket: WebSocket, subscriber: Subscriber) -> None:
    # Clients have nothing to say; reading only notices when they leave.
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()
    subscriber.close("disconnected")


async def serve_websocket(
    websocket: WebSocket, feed: ChangeFeed, *, environment: str, after_id: int | None,
    credential: str | None = None,
) -> None:
    """Stream ``environment`` to an authorised, not yet accepted socket until it ends
    (``credential``: the id of its key, whose revocation ends it)."""
    subscriber = feed.subscribe(environment=environment, transport="ws", credential=credential)
    reader: asyncio.Task[None] | None = None
    try:
        try:
            initial, sent_up_to = await initial_events(feed, environment, after_id)
        except FlagstaffError as error:
            await deny(websocket, error)
            return
        await websocket.accept()
        reader = asyncio.create_task(_read_until_closed(websocket, subscriber))

        async def write(batch: list[Outgoing]) -> None:
            for item in batch:
                await websocket.send_text(item.ws_message())

        reason = await pump(
            subscriber,
            feed=feed,
            initial=initial,
            sent_up_to=sent_up_to,
            write=write,
            keepalive=None,
            # A message cannot be cut: the server buffers each one whole until it is sent.
            cost=lambda batch: sum(len(item.ws_message()) for item in batch),
        )
        if reason != "disconnected":
            # A client that stopped reading may never take the close frame either.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await websocket.close(code=CLOSE_CODES.get(reason, 1000), reason=reason)
    finally:
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        feed.unsubscribe(subscriber)
