"""Rate limiting of authentication failures, per client IP, in process memory.

Every ``401`` answer (missing, unknown or revoked token; also a refused WebSocket handshake)
counts as one failure for the client's IP.  Once an IP has ``limit`` failures inside a fixed
window of ``window_seconds``, every request from it except the probes (``/health``,
``/ready``) is answered ``429 rate_limited`` with ``Retry-After`` until the window ends (a
WebSocket handshake too, as an HTTP denial response), even
with a valid token: otherwise a guesser would still learn which guess was right.  Successful
requests never count, and other IPs are not affected.  The console's sign-in page
(``/ui/login``) is the one path let through while blocked: failed sign-ins are ``401`` and count
like any other, but a blocked address gets the sign-in form with the message next to the
token field (still ``429`` with ``Retry-After``, see ``console/signin.py``) rather than JSON.

The counters live in this process only (several replicas each count on their own) and are
bounded: at most ``max_tracked`` IPs, oldest dropped first.  Behind a reverse proxy run uvicorn
with ``--proxy-headers --forwarded-allow-ips`` so the client IP is the real one.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagstaff.errors import RateLimited
from flagstaff.server.limits import deny_websocket, send_error

EXEMPT_PATHS = frozenset({"/health", "/ready"})
# Answers blocked addresses itself (an HTML page for a person), refusing every sign-in.
SELF_LIMITED_PATHS = frozenset({"/ui/login"})


class AuthFailureLimiter:
    """Fixed-window failure counters per IP."""

    def __init__(
        self, *, limit: int, window_seconds: float, max_tracked: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.max_tracked = max_tracked
        self.clock = clock
        # ip -> [window start, failures]
        self._windows: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    @property
    def tracking(self) -> bool:
        """Whether any address has failures in its window (none: no address is blocked).
        Read without the lock: a failure recorded at this instant may go unseen by one
        request, as if it had come a moment later."""
        return bool(self._windows)

    def retry_after(self, ip: str) -> float | None:
        """Seconds until ``ip`` may try again, or None if it is not blocked."""
        with self._lock:
            window = self._windows.get(ip)
            if window is None:
                return None
            remaining = window[0] + self.window_seconds - self.clock()
            if remaining <= 0:
                del self._windows[ip]
                return None
            return remaining if window[1] >= self.limit else None

    def retry_after_seconds(self, ip: str) -> int | None:
        """``retry_after`` in whole seconds (at least 1) for a ``Retry-After`` header."""
        remaining = self.retry_after(ip)
        return None if remaining is None else max(1, math.ceil(remaining))

    def record_failure(self, ip: str) -> None:
        with self._lock:
            now = self.clock()
            window = self._windows.get(ip)
            if window is None or now - window[0] >= self.window_seconds:
                self._windows.pop(ip, None)
                if len(self._windows) >= self.max_tracked:
                    self._evict(now)
                self._windows[ip] = [now, 1]
            else:
                window[1] += 1

    def _evict(self, now: float) -> None:
        expired = [ip for ip, w in self._windows.items() if now - w[0] >= self.window_seconds]
        for ip in expired:
            del self._windows[ip]
        while len(self._windows) >= self.max_tracked:
            del self._windows[next(iter(self._windows))]  # the oldest window


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class AuthRateLimitMiddleware:
    """Counts 401 answers per IP and answers 429 to blocked IPs."""

    def __init__(self, app: ASGIApp, *, limiter: AuthFailureLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        ip = client_ip(scope)
        seconds = self.limiter.retry_after_seconds(ip)
        if seconds is not None and scope.get("path") not in SELF_LIMITED_PATHS:
            error = RateLimited(
                "too many authentication failures from this address; try again later",
                details={"retry_after_seconds": seconds},
            )
            if scope["type"] == "http":
                await send_error(send, error, scope=scope)
            else:
                # 429 with Retry-After like HTTP, not a bare close: uvicorn turns a close before
                # the handshake into 403, which tells clients to give up for good.
                await deny_websocket(scope, send, error, reason="rate limited")
            return

        async def observing_send(message: Message) -> None:
            if (
                message["type"] in ("http.response.start", "websocket.http.response.start")
                and message.get("status") == 401
            ):
                self.limiter.record_failure(ip)
            await send(message)

        await self.app(scope, receive, observing_send)
