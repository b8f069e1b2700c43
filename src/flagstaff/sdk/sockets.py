"""Interrupting blocking HTTP calls from another thread, so that shutting down is bounded.

A thread blocked in ``recv()`` on a server that accepts but never answers stays blocked until
its read timeout (40 s for the sync thread); closing the socket from another thread does not
wake it, ``shutdown()`` does.  httpx has no cancellation for synchronous requests, so the
SDK's background clients install :meth:`SocketTracker.attach` as an httpx request hook, which
sets httpcore's public ``trace`` request extension: it reports each new TCP connection, and
:meth:`SocketTracker.interrupt` shuts all of them down, which makes every pending call on them
fail at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import weakref
from typing import Any

import httpx


class SocketTracker:
    """Remembers the sockets an httpx client opens; ``interrupt()`` shuts them down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: weakref.WeakSet[Any] = weakref.WeakSet()
        self.interrupted = False

    def attach(self, request: httpx.Request) -> None:
        """An httpx ``request`` event hook: report the connections this request opens."""
        request.extensions["trace"] = self._trace

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        if not event.endswith("connect_tcp.complete"):
            return
        stream = info.get("return_value")
        if stream is None:
            return
        with self._lock:
            self._streams.add(stream)
            late = self.interrupted
        if late:  # connected after interrupt(): this call must fail too
            _shutdown(stream)

    def interrupt(self) -> None:
        """Make every pending and future call on the tracked connections fail now."""
        with self._lock:
            self.interrupted = True
            streams = list(self._streams)
        for stream in streams:
            _shutdown(stream)

    def reset(self) -> None:
        """Track afresh (after fork: the inherited sockets belong to the parent too)."""
        with self._lock:
            self._streams = weakref.WeakSet()
            self.interrupted = False


def _shutdown(stream: Any) -> None:
    sock = stream.get_extra_info("socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
