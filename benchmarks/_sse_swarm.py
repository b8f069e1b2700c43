"""Many raw SSE connections for load generation, shared by the streaming benchmarks.

Each connection is an ``asyncio.Protocol``, not a StreamReader and a task, so the load
generator costs one callback per read and little memory and does not compete with the server
it measures.  A benchmark says what it is looking for in the stream by the ``on_data`` callback
it gives: it is called with the connection, the bytes received (with the last 256 bytes of the
previous read in front, so a match split across two reads is still found) and the time of
arrival.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast

TAIL = 256


class SseConnection(asyncio.Protocol):
    """One raw SSE connection: sends the request, checks for a 200, then hands data on."""

    def __init__(self, swarm: SseSwarm) -> None:
        self.swarm = swarm
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.head = b""
        self.tail = b""
        self.seen = -1  # free for the benchmark: e.g. the last event number this one saw
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.swarm.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.started.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 200 " not in self.head.split(b"\r\n", 1)[0]:
                self.started.set_exception(RuntimeError(self.head.decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            self.started.set_result(None)
            data, self.head = self.head[end + 4:], b""
        buffer = self.tail + data
        self.swarm.on_data(self, buffer, now)
        self.tail = buffer[-TAIL:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.started.done():
            self.started.set_exception(ConnectionError("closed before the response"))


class SseSwarm:
    """N connections sending the same raw HTTP ``request`` to 127.0.0.1:``port``."""

    def __init__(
        self, port: int, request: bytes,
        on_data: Callable[[SseConnection, bytes, float], None],
    ) -> None:
        self.port = port
        self.request = request
        self.on_data = on_data
        self.connections: list[SseConnection] = []
        self.failed = 0

    async def open(self, n: int, batch: int = 250) -> None:
        """Open ``n`` connections, ``batch`` at a time; failures are counted, not raised."""
        for start in range(0, n, batch):
            opened = await asyncio.gather(
                *(self._connect() for _ in range(min(batch, n - start))), return_exceptions=True)
            self.failed += sum(isinstance(o, BaseException) for o in opened)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            lambda: SseConnection(self), "127.0.0.1", self.port)
        async with asyncio.timeout(30):
            await connection.started
        self.connections.append(connection)

    async def close(self) -> None:
        for connection in self.connections:
            if connection.transport is not None:
                connection.transport.close()
        await asyncio.sleep(0.5)
