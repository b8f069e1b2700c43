"""One connection's bounded buffer between the change feed and its transport."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from flagstaff.realtime.events import Outgoing


class Subscriber:
    """One connection's bounded buffer of outgoing events.

    A plain list and one future rather than an ``asyncio.Queue``: a queue carries four deques
    (~3 KiB) and its wake-up machinery, which at ten thousand connections is a large share of
    the server's memory and of the fan-out's CPU.  Only one coroutine ever waits here.
    """

    __slots__ = (
        "_items", "_limit", "_waiter", "channel", "closed_reason", "credential", "deadline",
        "direct", "direct_ping", "environment", "keepalive", "last_write", "relay", "sent_up_to",
        "transport",
    )

    def __init__(
        self,
        *,
        environment: str,
        transport: str,
        maxsize: int,
        deadline: float = float("inf"),
        keepalive: bool = False,
        now: float = 0.0,
        channel: str | None = None,
        credential: str | None = None,
        relay: bool = False,
    ) -> None:
        self.environment = environment
        # A downstream relay (it said so): the feed offers it events before other subscribers.
        self.relay = relay
        # The id of the key the connection was opened with: its revocation ends the connection.
        self.credential = credential
        self.transport = transport
        # None: the change protocol's subscriber; else the named channel whose publisher
        # offers it events (ChangeFeed.offer).
        self.channel = channel
        self.closed_reason: str | None = None
        self._items: list[Outgoing] = []
        self._limit = maxsize
        self._waiter: asyncio.Future[None] | None = None
        # Loop time at which the connection reaches its maximum age (the feed's ticker ends it).
        self.deadline = deadline
        # Whether the transport wants keepalive wake-ups (SSE does; WebSocket pings itself).
        self.keepalive = keepalive
        # Loop time of the last write; the ticker asks for a keepalive after enough silence.
        self.last_write = now
        # The highest event id written to the client (kept by the transport's pump).
        self.sent_up_to = -1
        # Set by a transport that can write an event synchronously (True: written).  Used only
        # while its pump is parked with nothing buffered, so order is kept; it saves a task
        # wake-up per connection and per event, most of the fan-out's cost.
        self.direct: Callable[[Outgoing], bool] | None = None
        # The same for a keepalive: keepalives fall due in bursts, and a task wake-up each
        # would stall the API for the length of the burst.
        self.direct_ping: Callable[[], bool] | None = None

    def offer(self, item: Outgoing) -> bool:
        """Buffer ``item``; False when the buffer is full (the caller closes us as slow)."""
        if self.closed_reason is not None:
            return True
        direct = self.direct
        parked = direct is not None and self._waiter is not None and not self._items
        if parked and direct is not None and (item.id <= self.sent_up_to or direct(item)):
            return True
        if len(self._items) >= self._limit:
            return False
        self._items.append(item)
        self._wake()
        return True

    def close(self, reason: str, *, drain: bool = False) -> None:
        """End the stream and wake the consumer: drop what is buffered (freeing it now), or with
        ``drain`` send it first (events that precede the close in the change log)."""
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        if not drain:
            self._items = []
        self._wake()

    def ping(self) -> None:
        """Write a keepalive now if possible, else wake the consumer with nothing to send (its
        cue to write one)."""
        direct_ping = self.direct_ping
        parked = self._waiter is not None and not self._items
        if parked and direct_ping is not None and direct_ping():
            return
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> list[Outgoing | None]:
        """Everything buffered (waiting for a wake-up when empty); a None item means closed,
        an empty list means a keepalive is due."""
        if self.closed_reason is None and not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        items: list[Outgoing | None] = list(self._items)
        self._items = []
        if self.closed_reason is not None:
            items.append(None)
        return items
