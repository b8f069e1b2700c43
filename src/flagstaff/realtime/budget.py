"""A per-key budget of bytes being written, so one key's stalled connections cannot hold
unbounded memory.

Each connection's pump takes what a write can leave in the server's buffers from its key's
budget before writing and gives it back when the write completes.  Connections that read
release at once; one that stopped reading holds its share until the send timeout drops it.
When the budget is spent, further writes of that key wait (in order) under the same timeout,
so a key's held bytes never exceed the budget plus the high-water mark of each connection.
"""

from __future__ import annotations

import asyncio
from collections import deque


class ByteBudget:
    """Bytes in flight for one key; :meth:`acquire` waits while they would exceed ``limit``."""

    __slots__ = ("_waiters", "limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, size: int) -> int:
        """Take ``size`` bytes (at most the whole budget), waiting for them; returns what was
        taken, to be given back with :meth:`release`."""
        size = min(size, self.limit)
        if not self._waiters and self.used + size <= self.limit:
            self.used += size
            return size
        waiter = asyncio.get_running_loop().create_future()
        entry = (size, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release(size)  # granted just as the wait was abandoned
            else:
                self._waiters.remove(entry)
                self._grant()
            raise
        return size

    def release(self, size: int) -> None:
        self.used -= size
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self.used + self._waiters[0][0] <= self.limit:
            size, waiter = self._waiters.popleft()
            if not waiter.done():
                self.used += size
                waiter.set_result(None)

    @property
    def idle(self) -> bool:
        return self.used == 0 and not self._waiters
