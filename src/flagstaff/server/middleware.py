"""Pure ASGI middleware: request ids, the access log and the request-body size limit.

The access log writes one line per request, except for the high-volume SDK routes
(evaluation, ``/sdk/flags``, event ingestion), which every SDK process calls continuously:
those are counted in ``/metrics`` (``flagstaff_http_request_duration_seconds_count``) and
logged only when the answer is one an operator must see (401, 403, 5xx), unless
``FLAGSTAFF_ACCESS_LOG_SDK_ROUTES=true``.  :class:`AccessLogPolicy` is that one decision; a
handler that answers outside this middleware asks it too.

The body limit counts bytes as they stream in rather than trusting ``Content-Length``, so a
chunked upload cannot slip past it; the handler only ever sees a body within the limit.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagstaff.errors import TooLarge
from flagstaff.numerals import ascii_int
from flagstaff.server.errors import OFREP_PREFIX, error_payload
from flagstaff.server.logging_setup import request_id_var
from flagstaff.server.redaction import redact

log = logging.getLogger("flagstaff.server.access")

REQUEST_ID_HEADER = b"x-request-id"
# Client-supplied ids are echoed into logs and headers, so only a safe, short alphabet passes.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


# Called by every SDK process many times a minute (evaluation, polling, event batches).
SDK_ROUTES = frozenset(
    {"/evaluate", "/evaluate/all", "/sdk/flags", "/track", "/exposures", "/evaluation-counts",
     "/fleet/reports", "/relay/keys", "/relay/access"}
)
SDK_ROUTE_PREFIXES = ("/ofrep/v1/evaluate/",)
_ALWAYS_LOGGED = frozenset({401, 403})


@dataclass(frozen=True)
class AccessLogPolicy:
    """Which requests get an access-log line (``FLAGSTAFF_ACCESS_LOG_SDK_ROUTES``)."""

    sdk_routes: bool = False

    def logs(self, path: str, status: int) -> bool:
        if self.sdk_routes or status >= 500 or status in _ALWAYS_LOGGED:
            return True
        return not is_sdk_route(path)


def is_sdk_route(path: str) -> bool:
    return path in SDK_ROUTES or path.startswith(SDK_ROUTE_PREFIXES)


def log_request(method: str | None, path: str | None, status: int, duration_ms: float) -> None:
    log.info(
        "request",
        # Trigger URLs carry their secret in the path.
        extra={"method": method, "path": redact(path), "status": status,
               "duration_ms": duration_ms},
    )


# Generated ids: this process's random prefix and a counter, 32 hex digits like a UUID's.  They
# only need to be unique (they correlate log lines, they grant nothing), and a system call
# for fresh random bytes on every request was a visible part of an evaluation's cost.
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count()


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def request_id_from(header: bytes | None) -> str:
    """The request's id: the client's ``X-Request-ID`` if it is safe to echo, else a new one."""
    incoming = (header or b"").decode("latin-1")
    return incoming if _VALID_REQUEST_ID.match(incoming) else new_request_id()


class RequestIdMiddleware:
    """Takes ``X-Request-ID`` (or makes one), echoes it back and logs requests per the policy."""

    def __init__(self, app: ASGIApp, *, access_log: AccessLogPolicy | None = None) -> None:
        self.app = app
        self.access_log = access_log or AccessLogPolicy()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(dict(scope.get("headers") or []).get(REQUEST_ID_HEADER))
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
                body = _OFREP_INTERNAL_BODY if str(scope.get("path", "")).startswith(
                    OFREP_PREFIX) else _INTERNAL_BODY
                await send_with_id(_internal_error_start(body))
                await send_with_id({"type": "http.response.body", "body": body})
        finally:
            path = scope.get("path", "")
            if scope["type"] == "http" and self.access_log.logs(path, status):
                duration_ms = round((time.perf_counter() - started) * 1000, 2)
                log_request(scope.get("method"), path, status, duration_ms)
            request_id_var.reset(token)


_INTERNAL_BODY = json.dumps(
    {"error": {"code": "internal_error", "message": "internal server error", "details": {}}}
).encode()


# OFREP's general error shape for its routes.
_OFREP_INTERNAL_BODY = json.dumps({"errorDetails": "internal server error"}).encode()


def _internal_error_start(body: bytes) -> Message:
    return {
        "type": "http.response.start",
        "status": 500,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
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
        size = None if declared is None else ascii_int(declared, max_digits=30)
        if size is not None and size > limit:
            await self._reject(send, limit, scope)
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
                await self._reject(send, limit, scope)

    async def _reject(self, send: Send, limit: int, scope: Scope) -> None:
        error = TooLarge(
            f"request body exceeds {limit} bytes",
            details={"limit_bytes": limit},
        )
        body = json.dumps(error_payload(error, scope.get("path", ""))).encode()
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
