"""Ingestion through the relay: forwarded upstream as it came, buffered while the upstream is away.

``/track``, ``/exposures``, ``/evaluation-counts`` and ``/fleet/reports`` are not the relay's to
answer: each request goes to the upstream with the caller's own key, so the upstream
authenticates, validates and files it exactly as if the client had called it directly (batch
ids keep retries idempotent).  While the upstream answers, the client gets the upstream's
answer.  When it does not (no answer, 5xx, 429), or while earlier requests are still waiting,
the request joins an in-memory FIFO buffer and the client gets ``202 {"buffered": true}``; a
background task sends the buffer in order, with backoff, as soon as the upstream is back.  The
buffer is bounded (``max_requests`` and ``max_bytes``): when full, new requests are refused with
``503`` and ``Retry-After`` so clients keep them (the SDK's sinks retry) instead of the relay
growing without bound.  What the upstream refuses once it is back (4xx) is dropped and counted.
The buffer does not survive a restart of the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from dataclasses import dataclass

from flagstaff.relay.upstream import Unreachable, Upstream

log = logging.getLogger("flagstaff.relay")

# Headers worth passing on: who is calling, what the body is, and the fleet report headers.
PASSED_HEADERS = ("authorization", "content-type", "content-encoding", "flagstaff-instance",
                  "flagstaff-version", "user-agent")


@dataclass(frozen=True, slots=True)
class Pending:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class Counts:
    forwarded: int = 0
    buffered: int = 0
    refused: int = 0  # buffer full: the client was told to retry
    dropped: int = 0  # sent from the buffer, refused by the upstream (4xx)


class Forwarder:
    def __init__(
        self, upstream: Upstream | None, *, max_requests: int = 10_000,
        max_bytes: int = 64 * 2**20, backoff_cap: float = 10.0,
    ) -> None:
        self._upstream = upstream
        self._queue: deque[Pending] = deque()
        self._bytes = 0
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self._backoff_cap = backoff_cap
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.counts = Counts()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.create_task(self._drain_forever(), name="flagstaff-relay-forward")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._queue:
            log.warning("exiting with %d ingestion requests not yet forwarded", len(self._queue))

    async def forward(self, item: Pending) -> tuple[int, bytes, str] | None:
        """The upstream's answer (status, body, content type), or None: buffered.

        Raises :class:`BufferFull` when it can be neither sent nor buffered."""
        if not self._queue and self._upstream is not None:
            try:
                response = await self._upstream.send("POST", item.path, headers=item.headers,
                                                     body=item.body)
            except Unreachable:
                pass
            else:
                self.counts.forwarded += 1
                return (response.status_code, response.content,
                        response.headers.get("content-type", "application/json"))
        if len(self._queue) >= self.max_requests or self._bytes + len(item.body) > self.max_bytes:
            self.counts.refused += 1
            raise BufferFull
        self._queue.append(item)
        self._bytes += len(item.body)
        self.counts.buffered += 1
        self._wake.set()
        return None

    def enqueue(self, item: Pending) -> bool:
        """Buffer ``item`` to be sent in the background (False: the buffer is full)."""
        if len(self._queue) >= self.max_requests or self._bytes + len(item.body) > self.max_bytes:
            self.counts.refused += 1
            return False
        self._queue.append(item)
        self._bytes += len(item.body)
        self._wake.set()
        return True

    async def _drain_forever(self) -> None:
        failures = 0
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            if self._upstream is None:
                await asyncio.sleep(3600)
                continue
            item = self._queue[0]
            try:
                response = await self._upstream.send("POST", item.path, headers=item.headers,
                                                      body=item.body)
            except Unreachable:
                failures += 1
                await asyncio.sleep(random.uniform(0, min(self._backoff_cap,
                                                          0.1 * 2 ** min(failures, 10))))
                continue
            failures = 0
            self._queue.popleft()
            self._bytes -= len(item.body)
            if response.status_code >= 400:
                self.counts.dropped += 1
                log.warning("the upstream refused a buffered %s (%d): dropped", item.path,
                            response.status_code)
            else:
                self.counts.forwarded += 1


class BufferFull(Exception):
    """The upstream is away and the buffer is full."""
