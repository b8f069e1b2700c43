"""Ingestion through the relay: forwarded as it came, buffered in order while the upstream is away."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx
import pytest

from flagstaff.relay.forward import BufferFull, Forwarder, Pending
from flagstaff.relay.upstream import Unreachable


class FakeUpstream:
    def __init__(self) -> None:
        self.down = False
        self.received: list[bytes] = []
        self.refuse: set[bytes] = set()

    async def send(self, method: str, path: str, *, headers: Mapping[str, str],
                   body: bytes) -> httpx.Response:
        if self.down:
            raise Unreachable("down")
        if body in self.refuse:
            return httpx.Response(400, json={"error": {"code": "invalid"}})
        self.received.append(body)
        return httpx.Response(202, json={"accepted": 1})


def item(n: int) -> Pending:
    return Pending("/track", {"authorization": "Bearer k"}, f"batch-{n}".encode())


def test_forwarded_while_up_buffered_in_order_while_down_refused_when_full() -> None:
    upstream = FakeUpstream()

    async def scenario() -> None:
        forwarder = Forwarder(upstream, max_requests=3, backoff_cap=0.01)  # type: ignore[arg-type]
        forwarder.start()
        answer = await forwarder.forward(item(0))
        assert answer is not None and answer[0] == 202
        upstream.down = True
        for n in (1, 2, 3):
            assert await forwarder.forward(item(n)) is None  # buffered
        with pytest.raises(BufferFull):
            await forwarder.forward(item(4))
        upstream.refuse = {b"batch-2"}
        upstream.down = False
        async with asyncio.timeout(5):
            while forwarder.pending:
                await asyncio.sleep(0.01)
        # Behind a non-empty buffer, a new request waits its turn (order is kept).
        assert upstream.received == [b"batch-0", b"batch-1", b"batch-3"]
        assert forwarder.counts.dropped == 1 and forwarder.counts.refused == 1
        await forwarder.stop()

    asyncio.run(scenario())
