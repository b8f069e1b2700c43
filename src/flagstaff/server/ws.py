"""``GET /ws``: the ``/stream`` events over a WebSocket (protocol: docs/streaming.md).

Each text message is ``{"id": <event id>, "event": "<type>", "data": {...}}`` with exactly the
events and catch-up rules of the SSE stream; the last id seen is passed back as the
``last_event_id`` query parameter on reconnect.  Authentication is the ``Authorization`` header
only: server-side SDK keys live in servers, whose WebSocket clients can set headers, and keys in
URLs end up in access logs.  A refused handshake gets the common JSON error body with its HTTP
status when the ASGI server supports denial responses, else close code 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect

from flagstaff.errors import FlagstaffError, Forbidden, Unauthorized
from flagstaff.server.auth import SDK_SERVER
from flagstaff.server.changefeed import Outgoing, Subscriber
from flagstaff.server.stream import (
    SEND_TIMEOUT,
    initial_events,
    parse_last_event_id,
    pump,
    stream_environment,
)

if TYPE_CHECKING:
    from flagstaff.server.realtime import Realtime

router = APIRouter(tags=["sdk"])

# Close codes by why the server ended the connection (RFC 6455 section 7.4, IANA registry).
_CLOSE_CODES = {
    "final": 1000,  # the environment was deleted; nothing more will come
    "max_age": 1001,  # going away: reconnect (possibly to another replica)
    "shutdown": 1012,  # service restart
    "slow": 1013,  # try again later: the client fell behind
    SEND_TIMEOUT: 1013,
}


async def _environment_of(websocket: WebSocket) -> str:
    """The SDK key's environment; raises 401/403 like the HTTP routes."""
    scheme, _, secret = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    store = websocket.app.state.store
    record: Any = await anyio.to_thread.run_sync(lambda: store.authenticate(secret=secret.strip()))
    if record is None:
        raise Unauthorized("unknown or revoked token")
    fields = record if isinstance(record, dict) else vars(record) if hasattr(record, "__dict__") else {
        name: getattr(record, name, None) for name in ("kind", "environment")
    }
    if fields.get("kind") != SDK_SERVER:
        raise Forbidden(f"this route needs an SDK key of kind {SDK_SERVER}")
    return stream_environment(fields.get("environment"))


async def _deny(websocket: WebSocket, error: FlagstaffError) -> None:
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


@router.websocket("/ws")
async def ws_endpoint(websocket: WebSocket) -> None:
    realtime: Realtime = websocket.app.state.realtime
    try:
        environment = await _environment_of(websocket)
        after_id = parse_last_event_id(
            websocket.query_params.get("last_event_id"), field="last_event_id"
        )
        feed = realtime.require_feed()
        subscriber = feed.subscribe(environment=environment, transport="ws")
    except FlagstaffError as error:
        await _deny(websocket, error)
        return
    reader: asyncio.Task[None] | None = None
    try:
        try:
            initial, sent_up_to = await initial_events(feed, environment, after_id)
        except FlagstaffError as error:
            await _deny(websocket, error)
            return
        await websocket.accept()
        reader = asyncio.create_task(_read_until_closed(websocket, subscriber))

        async def write(batch: list[Outgoing]) -> None:
            for item in batch:
                await websocket.send_text(item.ws_message())

        reason = await pump(
            subscriber,
            realtime=realtime,
            initial=initial,
            sent_up_to=sent_up_to,
            write=write,
            keepalive=None,
        )
        if reason != "disconnected":
            # A client that stopped reading may never take the close frame either.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await websocket.close(code=_CLOSE_CODES.get(reason, 1000), reason=reason)
    finally:
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        feed.unsubscribe(subscriber)
