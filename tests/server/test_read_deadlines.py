"""One timer for every body read: a late read ends at its deadline (within a tick), a prompt one
returns its message, and a cancellation that is not the deadline's still cancels."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from flagstaff.server.read_deadlines import ReadDeadlines

MESSAGE: Message = {"type": "http.request", "body": b"{}", "more_body": False}


async def never() -> Message:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


async def prompt() -> Message:
    return MESSAGE


def test_reads_end_at_their_deadline_and_prompt_reads_are_answered() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        deadlines = ReadDeadlines(loop, tick_seconds=0.05)
        began = loop.time()
        late, on_time = await asyncio.gather(
            deadlines.receive(never, began + 0.2), deadlines.receive(prompt, began + 0.2))
        assert late is None and on_time == MESSAGE
        assert 0.2 <= loop.time() - began < 1.0
        # The timer stops once nobody waits, and starts again for the next reader.
        assert await deadlines.receive(never, loop.time() + 0.1) is None

    asyncio.run(scenario())


def test_a_cancellation_that_is_not_the_deadlines_propagates() -> None:
    async def scenario() -> None:
        deadlines = ReadDeadlines(asyncio.get_running_loop(), tick_seconds=0.05)
        reading = asyncio.ensure_future(deadlines.receive(never, deadlines.deadline(60)))
        await asyncio.sleep(0.1)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading

    asyncio.run(scenario())
