"""A response's writes gathered into one system call: uvicorn's HTTP protocol over a coalescing
transport.

uvicorn writes a response's head and its body with two ``transport.write`` calls, and under
uvloop each is a ``write`` system call of its own: two trips through the kernel's TCP path for
an answer of a few hundred bytes.  For the small answers a server gives most (an evaluation, a
304, a health check) the second trip was a tenth of the whole answer's CPU time: the bare ASGI
app of ``benchmarks/bench_remote_eval.py`` took 25.3 µs of server CPU per request with its two
writes and 22.6 µs with them joined.

:class:`CoalescingTransport` stands between the protocol and the socket's transport: what is
written during one turn of the event loop is joined and written once, at the end of that turn
(``loop.call_soon``), so an answer leaves no later than before, in one system call.  Anything
that could tell the difference is kept: writes stay in order; pending bytes count in
``get_write_buffer_size``; a write that brings the pending bytes to :data:`FLUSH_BYTES` is
written at once, so a large body meets the socket's flow control (the high-water mark that
pauses the writer) as it did; closing writes what is pending first, aborting drops it, and a
transport already closing drops it as the socket's own would.  A connection upgraded to a
WebSocket hands the socket's own transport to the WebSocket protocol, whose frames go out as
they are written.

:class:`CoalescingHttpProtocol` is uvicorn's httptools protocol over such a transport; the server
and the relay pass it to uvicorn as their ``http`` implementation (:data:`HTTP_PROTOCOL`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

FLUSH_BYTES = 64 * 1024


class CoalescingTransport(asyncio.Transport):
    """A transport that writes what one turn of the event loop wrote as one write."""

    __slots__ = ("_loop", "_pending", "_pending_bytes", "raw")

    def __init__(self, raw: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.raw = raw
        self._loop = loop
        self._pending: list[bytes | bytearray | memoryview] = []
        self._pending_bytes = 0

    # -- writing ---------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        pending = self._pending
        if not pending:
            self._loop.call_soon(self.flush)
        pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= FLUSH_BYTES:
            self.flush()

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Write what is pending now (one write), or drop it if the transport is closing."""
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self._pending_bytes = 0
        if not self.raw.is_closing():
            self.raw.write(data)

    def write_eof(self) -> None:
        self.flush()
        self.raw.write_eof()

    def can_write_eof(self) -> bool:
        return self.raw.can_write_eof()

    def get_write_buffer_size(self) -> int:
        return self.raw.get_write_buffer_size() + self._pending_bytes

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.raw.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.raw.set_write_buffer_limits(high, low)

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        self.flush()
        self.raw.close()

    def abort(self) -> None:
        self._pending.clear()
        self._pending_bytes = 0
        self.raw.abort()

    def is_closing(self) -> bool:
        return self.raw.is_closing()

    # -- the rest is the socket transport's own ------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.raw.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.raw.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.raw.get_protocol()

    def is_reading(self) -> bool:
        return self.raw.is_reading()

    def pause_reading(self) -> None:
        self.raw.pause_reading()

    def resume_reading(self) -> None:
        self.raw.resume_reading()


class CoalescingHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP/1.1 protocol, writing through a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))

    def handle_websocket_upgrade(self) -> None:
        # The WebSocket protocol writes its frames itself, on the socket's own transport.
        coalescing = self.transport
        if isinstance(coalescing, CoalescingTransport):
            coalescing.flush()
            self.transport = coalescing.raw
        super().handle_websocket_upgrade()


HTTP_PROTOCOL: type[asyncio.Protocol] = CoalescingHttpProtocol
