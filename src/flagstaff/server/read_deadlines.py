"""Deadlines for reading request bodies, kept by one timer for all readers.

A request body must arrive within ``FLAGSTAFF_BODY_TIMEOUT_SECONDS`` (slowloris).  A timer per
request (``asyncio.timeout``) cost more than the rest of reading a small body, which has almost
always arrived with the headers; :class:`ReadDeadlines` instead notes each waiting reader in a
dict and checks them all every ``tick_seconds``, cancelling the read of any past its deadline.
A read may so outlive its deadline by up to one tick; a reader handing the request on passes
the deadline along (``BODY_DEADLINE_KEY``), so the whole body still gets one timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Message, Receive

TICK_SECONDS = 0.25


class ReadDeadlines:
    """The body reads of one event loop (given, not looked up: under Python 3.11 each look-up
    of the running loop is a ``getpid`` system call, and a read made three)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, tick_seconds: float = TICK_SECONDS,
                 ) -> None:
        self.loop = loop
        self._tick_seconds = tick_seconds
        self._waiting: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def deadline(self, seconds: float) -> float:
        """The deadline ``seconds`` from now, on the loop's clock."""
        return self.loop.time() + seconds

    async def receive(self, receive: Receive, deadline: float) -> Message | None:
        """The next message, or None when ``deadline`` (the loop's clock) passed first."""
        task = asyncio.current_task(self.loop)
        if task is None:  # not in a task: nothing to cancel, so no deadline to keep
            return await receive()
        self._waiting[task] = deadline
        if self._timer is None:
            self._timer = self.loop.call_later(self._tick_seconds, self._check)
        try:
            return await receive()
        except asyncio.CancelledError:
            if task in self._expired:
                self._expired.discard(task)
                if task.uncancel() == 0:
                    return None  # our cancellation, and nobody else's: the deadline passed
            raise
        finally:
            self._waiting.pop(task, None)
            self._expired.discard(task)

    def _check(self) -> None:
        now = self.loop.time()
        for task, deadline in list(self._waiting.items()):
            if deadline <= now:
                del self._waiting[task]
                self._expired.add(task)
                task.cancel()
        self._timer = (self.loop.call_later(self._tick_seconds, self._check)
                       if self._waiting else None)
