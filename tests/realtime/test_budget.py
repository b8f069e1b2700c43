"""The per-key write budget: bytes beyond it wait in order, and abandoned waits give back."""

from __future__ import annotations

import asyncio

import pytest

from flagstaff.realtime.budget import ByteBudget


def test_writes_beyond_the_budget_wait_in_order_until_bytes_come_back() -> None:
    async def scenario() -> None:
        budget = ByteBudget(100)
        assert await budget.acquire(60) == 60
        second = asyncio.create_task(budget.acquire(50))
        third = asyncio.create_task(budget.acquire(10))
        await asyncio.sleep(0)
        # The third would fit, but waits behind the second: a big write is not starved.
        assert not second.done() and not third.done() and budget.used == 60
        budget.release(60)
        assert await second == 50 and await third == 10 and budget.used == 60
        # More than the whole budget is capped at it, so it can always proceed alone.
        budget.release(50)
        budget.release(10)
        assert budget.idle
        assert await budget.acquire(1_000) == 100
        budget.release(100)
        assert budget.idle

    asyncio.run(scenario())


def test_a_wait_abandoned_by_the_send_timeout_takes_nothing() -> None:
    async def scenario() -> None:
        budget = ByteBudget(100)
        await budget.acquire(100)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await budget.acquire(30)
        follower = asyncio.create_task(budget.acquire(30))
        budget.release(100)
        assert await follower == 30 and budget.used == 30

    asyncio.run(scenario())
