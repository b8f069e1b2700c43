"""Pure ASGI middleware: request ids, the access log and the request-body size limit.

The body limit counts bytes as they stream in rather than trusting ``Content-Length``, so a
chunked upload cannot slip past it; the handler only ever sees a body within the limit.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagstaff.errors import TooLarge
from flagstaff.server.logging_setup import request_id_var

log = logging.getLogger("flagstaff.server.access")

REQUEST_ID_HEADER = b"x-request-id"
# Client-supplied ids are echoed into logs and headers, so only a safe, short alphabet passes.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Takes ``X-Request-ID`` (or makes one), echoes it back and logs one line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER, b"").decode("latin-1")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k != REQUEST_ID_HEADER]
                headers.append((REQUEST_ID_HEADER, request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The catch-all for unexpected errors lives here (not in Starlette's outermost
            # ServerErrorMiddleware) so the 500 still carries the request id and our shape.
            log.exception("unhandled error", extra={"path": scope.get("path")})
            if scope["type"] == "http" and status == 0:
                await send_with_id(_internal_error_start())
                await send_with_id({"type": "http.response.body", "body": _INTERNAL_BODY})
        finally:
            if scope["type"] == "http":
                log.info(
                    "request",
                    extra={
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            request_id_var.reset(token)


_INTERNAL_BODY = json.dumps(
    {"error": {"code": "internal_error", "message": "internal server error", "details": {}}}
).encode()


def _internal_error_start() -> Message:
    return {
        "type": "http.response.start",
        "status": 500,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(_INTERNAL_BODY)).encode()),
        ],
    }


class BodyLimitMiddleware:
    """Answers 413 ``too_large`` once more than ``max_bytes`` of request body arrived."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, path_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Exact paths with their own limit (event ingestion takes bigger batches).
        self.path_limits = dict(path_limits or {})

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http" or not _may_have_body(scope):
            # Nothing to count.  Returned rather than awaited, so a held ``/stream`` keeps no
            # frame or receive/send wrappers of this layer (memory per connection).
            return self.app(scope, receive, send)
        return self._limited(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.path_limits.get(scope.get("path", ""), self.max_bytes)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit)
            return

        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLargeError:
            if not response_started:
                await self._reject(send, limit)

    async def _reject(self, send: Send, limit: int) -> None:
        error = TooLarge(
            f"request body exceeds {limit} bytes",
            details={"limit_bytes": limit},
        )
        body = json.dumps(error.to_dict()).encode()
        headers: list[Any] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _may_have_body(scope: Scope) -> bool:
    """HTTP/1.1 frames a request body only with ``Content-Length`` or ``Transfer-Encoding``."""
    return any(
        name in (b"content-length", b"transfer-encoding") for name, _ in scope.get("headers") or []
    )


class BodyTooLargeError(HTTPException):
    """Raised inside ``receive`` to abandon the handler before it sees an oversized body.

    It is an ``HTTPException`` because FastAPI re-raises those from body parsing (anything
    else becomes a generic 400), so the error handlers can render it as ``too_large``.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body exceeds {limit} bytes")
        self.limit = limit
