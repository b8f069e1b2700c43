"""CORS for pages on other origins: preflights answered and cached, refusals explained.

A preflight carries no credentials, so it cannot name an environment: it is answered for any
origin that some environment (or ``FLAGSTAFF_CORS_ORIGINS``) allows, with
``Access-Control-Max-Age`` so the browser asks once per URL and not before every poll.  The
request that follows is checked against its own key's environment by
:func:`flagstaff.browser.guard.check_origin`.  Responses to allowed origins carry
``Access-Control-Allow-Origin`` and expose ``ETag``, ``Retry-After`` and ``X-Request-ID``.

Anything else is refused (a preflight with 403), and the server log says which origin was
refused, for which request, and which setting allows it: in the browser, a refusal for a
misspelt origin and for no configuration at all look the same.  Each distinct refusal is logged
at most once a minute.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagstaff.browser.origins import HOW_TO_ALLOW, OriginPolicy

log = logging.getLogger("flagstaff.server.cors")

ALLOWED_HEADERS = frozenset({
    "authorization", "content-type", "if-none-match", "if-match", "x-request-id",
})
EXPOSED_HEADERS = b"ETag, Retry-After, X-Request-ID"
# Methods an origin allowed only for an environment may use (browser routes); origins in
# FLAGSTAFF_CORS_ORIGINS may use the management API's methods too.
BROWSER_METHODS = frozenset({"GET", "HEAD", "POST"})
ALL_METHODS = BROWSER_METHODS | {"PUT", "PATCH", "DELETE"}


class RefusalLog:
    """Logs each (origin, reason) refusal at most once per ``interval`` seconds."""

    def __init__(self, interval: float = 60.0, max_entries: int = 1000) -> None:
        self._interval = interval
        self._max = max_entries
        self._last: OrderedDict[tuple[str, str], float] = OrderedDict()

    def warn(self, origin: str, reason: str, message: str) -> None:
        now = time.monotonic()
        key = (origin, reason)
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self._max:
            self._last.popitem(last=False)
        # The origin is quoted with repr so a hostile value cannot forge log lines.
        log.warning(message, extra={"origin": origin, "reason": reason})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class BrowserCorsMiddleware:
    def __init__(
        self, app: ASGIApp, *, policy: OriginPolicy, refusals: RefusalLog, max_age: int,
    ) -> None:
        self.app = app
        self.policy = policy
        self.refusals = refusals
        self.max_age = str(max_age).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if not self.policy.fresh():  # the server's policy is due for a reload from its store
            await anyio.to_thread.run_sync(self.policy.origin_known, origin)
        requested = _header(scope, b"access-control-request-method")
        if scope["method"] == "OPTIONS" and requested is not None:
            await self._preflight(scope, send, origin, requested)
            return
        if not self.policy.origin_known(origin):
            await self.app(scope, receive, send)  # same-origin pages and non-browser callers
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ())
                           if k not in (b"access-control-allow-origin", b"vary")]
                message = {**message, "headers": headers + cors_headers(origin)}
            await send(message)

        await self.app(scope, receive, with_cors)

    async def _preflight(self, scope: Scope, send: Send, origin: str, method: str) -> None:
        what = f"{method.upper()} {scope.get('path', '')}"
        if not self.policy.origin_known(origin):
            self.refusals.warn(origin, "origin", (
                f"CORS: refused a preflight from origin {origin!r} for {what}: no environment "
                f"allows this origin; {HOW_TO_ALLOW.format(origin=origin)}"
            ))
            await _refuse(send, f"origin {origin!r} is not allowed to call this server; the "
                                "server log says which setting allows it")
            return
        methods = ALL_METHODS if self.policy.allowed_everywhere(origin) else BROWSER_METHODS
        wanted = _header(scope, b"access-control-request-headers") or ""
        headers = [h.strip().lower() for h in wanted.split(",") if h.strip()]
        unknown = [h for h in headers if h not in ALLOWED_HEADERS]
        if method.upper() not in methods or unknown:
            reason = f"method {method.upper()}" if method.upper() not in methods else (
                f"header(s) {', '.join(unknown)}")
            self.refusals.warn(origin, reason, (
                f"CORS: refused a preflight from origin {origin!r} for {what}: {reason} not "
                f"allowed (browsers may send {', '.join(sorted(ALLOWED_HEADERS))} with "
                f"{', '.join(sorted(methods))})"
            ))
            await _refuse(send, f"{reason} not allowed from a browser")
            return
        await send({"type": "http.response.start", "status": 204, "headers": [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", ", ".join(sorted(methods)).encode()),
            (b"access-control-allow-headers", ", ".join(headers).encode("latin-1")
             if headers else b"content-type"),
            (b"access-control-max-age", self.max_age),
            (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
        ]})
        await send({"type": "http.response.body", "body": b""})


def cors_headers(origin: str) -> list[tuple[bytes, bytes]]:
    """The headers an answer to a request from an allowed ``origin`` ends with."""
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", EXPOSED_HEADERS),
        (b"vary", b"Origin"),
    ]


async def _refuse(send: Send, message: str) -> None:
    body = json.dumps({"error": {"code": "forbidden", "message": message, "details": {}}}).encode()
    await send({"type": "http.response.start", "status": 403, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"vary", b"Origin"),
    ]})
    await send({"type": "http.response.body", "body": body})

