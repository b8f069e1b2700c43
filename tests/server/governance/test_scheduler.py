"""The scheduler worker on an injected clock: it sleeps exactly until the next due schedule,
applies what is due, and applies a schedule that came due while it was not running."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from flagstaff.server.changesource import StoreChangeSource
from flagstaff.server.governance.scheduler import Scheduler
from flagstaff.store import Store
from tests.builders import flag

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
ACTOR = "alice (token tok_alice)"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store.open(database_url)
    yield opened
    opened.close()


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def test_the_scheduler_sleeps_until_the_due_time_and_applies_on_time(store: Store) -> None:
    store.create_flag(definition=flag("checkout").boolean().build(), actor=ACTOR)
    due = datetime.now(UTC) + timedelta(minutes=10)
    store.create_schedule(flag="checkout", environment="production", at=due, action="enable",
                          body={}, actor=ACTOR)
    clock = Clock(due - timedelta(seconds=0.25))
    scheduler = Scheduler(store, call=StoreChangeSource(store).call, poll_seconds=1.0, clock=clock)

    async def scenario() -> None:
        assert await scheduler.tick() == pytest.approx(0.25)  # sleeps until due, not a full poll
        clock.now = due - timedelta(seconds=5)
        assert await scheduler.tick() == 1.0  # far away: at most one poll interval
        clock.now = due
        assert await scheduler.tick() == 1.0  # applied; nothing else pending
        assert scheduler.applied == 1

    asyncio.run(scenario())
    (done,) = store.list_schedules().items
    assert (done.status, done.late_ms) == ("applied", 0)


def test_a_schedule_due_while_no_scheduler_ran_is_applied_at_start_with_its_lateness(
    store: Store,
) -> None:
    store.create_flag(definition=flag("checkout").boolean().build(), actor=ACTOR)
    due = datetime.now(UTC) + timedelta(minutes=1)
    store.create_schedule(flag="checkout", environment="production", at=due, action="enable",
                          body={}, actor=ACTOR)
    clock = Clock(due + timedelta(minutes=42))  # every server was down meanwhile

    async def scenario() -> None:
        source = StoreChangeSource(store)
        scheduler = Scheduler(store, call=source.call, poll_seconds=0.05, clock=clock)
        running = asyncio.create_task(scheduler.run())
        try:
            for _ in range(200):
                if scheduler.applied:
                    break
                await asyncio.sleep(0.02)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await source.drain()

    asyncio.run(scenario())
    (done,) = store.list_schedules().items
    assert done.status == "applied"
    assert done.late_ms == 42 * 60 * 1000
    assert store.get_flag(key="checkout").definition["environments"]["production"]["enabled"]
