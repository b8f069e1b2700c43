"""Memory under slow readers: one shared ``put`` per environment, stalled writes reported as freed
when the connection is dropped, and a debounced ``malloc_trim`` after large frees."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from flagstaff.realtime import ChangeFeed, StreamMetrics, StreamSettings
from flagstaff.realtime.events import Outgoing
from flagstaff.realtime.memory import MemoryReturn, malloc_trim, tune_allocator
from flagstaff.realtime.session import SEND_TIMEOUT, open_session, pump

LARGE_FLAG = {"key": "large", "values": ["x" * 100] * 20_000}  # about 2 MB of JSON


class Source:
    """A change source with no events and a large snapshot, counting snapshot reads."""

    def __init__(self) -> None:
        self.reads = 0
        self.release = asyncio.Event()

    async def latest_event_id(self) -> int:
        return 7

    async def oldest_event_id(self) -> int | None:
        return None

    async def events_since(self, *, after_id: int, limit: int) -> list[Any]:
        return []

    async def snapshot(self, *, environment: str) -> dict[str, Any]:
        self.reads += 1
        await self.release.wait()  # every connection arrives while it is read
        return {"version": 7, "flags": [LARGE_FLAG], "segments": []}

    async def watch(self, wake: Callable[[], None]) -> None:
        return None


class Recording(MemoryReturn):
    """Records what it is told was freed instead of trimming."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[int] = []

    def freed(self, nbytes: int) -> None:
        self.reports.append(nbytes)


def feed_of(source: Source, memory: MemoryReturn, **settings: Any) -> ChangeFeed:
    return ChangeFeed(source=source, settings=StreamSettings(**settings),
                      metrics=StreamMetrics(CollectorRegistry()), memory=memory)


def test_connections_arriving_together_share_one_encoded_snapshot() -> None:
    async def scenario() -> None:
        source = Source()
        memory = Recording()
        feed = feed_of(source, memory)
        sessions = [asyncio.create_task(open_session(
            feed, environment="production", after_id=None, transport="sse", keepalive=True,
            credential="key-1")) for _ in range(20)]
        await asyncio.sleep(0)
        source.release.set()
        opened = await asyncio.gather(*sessions)
        puts = [initial[0] for _, initial, _ in opened]
        assert source.reads == 1
        # One object, not equal copies: twenty connections hold one frame between them.
        assert all(put is puts[0] for put in puts)
        assert puts[0].event == "put" and len(puts[0].sse) > 2_000_000
        # The snapshot's objects are garbage once it is encoded: reported once, not per client.
        assert memory.reports == [len(puts[0].sse)]
        # The WebSocket message is built once too.
        assert puts[0].ws_message() is puts[1].ws_message()
        for subscriber, _, _ in opened:
            feed.unsubscribe(subscriber)

    asyncio.run(scenario())


def test_a_reader_dropped_at_the_send_timeout_reports_what_its_stalled_write_held() -> None:
    async def scenario() -> None:
        source = Source()
        source.release.set()
        memory = Recording()
        feed = feed_of(source, memory, send_timeout_seconds=0.05)
        subscriber, initial, sent_up_to = await open_session(
            feed, environment="production", after_id=None, transport="sse", keepalive=True,
            credential="key-1")
        memory.reports.clear()

        async def never_completes(batch: list[Outgoing]) -> None:
            await asyncio.Event().wait()  # the client's TCP window is full

        reason = await pump(subscriber, feed=feed, initial=initial, sent_up_to=sent_up_to,
                            write=never_completes, keepalive=None, cost=lambda batch: 131_072)
        assert reason == SEND_TIMEOUT
        assert memory.reports == [131_072]
        assert feed.metrics.slow("sse")._value.get() == 1
        # The key's budget got its bytes back: nothing is left held for the dropped reader.
        budget = feed.budget_of(subscriber)
        assert budget is not None and budget.used == 0
        feed.unsubscribe(subscriber)

    asyncio.run(scenario())


def test_large_frees_are_trimmed_once_per_burst_and_not_more_often_than_the_interval() -> None:
    async def scenario() -> None:
        calls: list[float] = []
        loop = asyncio.get_running_loop()
        observed: list[tuple[float, int]] = []
        memory = MemoryReturn(trim=lambda: calls.append(loop.time()), delay=0.0,
                              min_interval=3600.0, threshold=1000, smallest=100,
                              on_trim=lambda seconds, returned: observed.append((seconds, returned)))
        for _ in range(50):
            memory.freed(99)
        assert not memory.scheduled  # small frees are left to malloc's own reuse...
        memory.freed(999)
        assert not memory.scheduled  # ...and so is less than the threshold in all
        for _ in range(5):
            memory.freed(600)  # a burst: one trim
        assert memory.scheduled
        while memory.scheduled:
            await asyncio.sleep(0.01)
        assert len(calls) == 1 and len(observed) == 1
        # More large frees soon after: the next trim waits for the interval, not the delay.
        memory.freed(5000)
        assert memory.scheduled
        assert memory._timer is not None and memory._timer.when() >= calls[0] + 3600.0
        await memory.close()
        assert not memory.scheduled and len(calls) == 1

    asyncio.run(scenario())


def test_without_a_trim_function_reports_are_ignored() -> None:
    async def scenario() -> None:
        memory = MemoryReturn()  # what a feed gets by default, and every process off glibc
        memory.freed(10**9)
        assert not memory.scheduled
        await memory.trim_now()

    asyncio.run(scenario())


def test_the_glibc_hooks_are_both_present_or_both_absent() -> None:
    # On glibc (this project's CI and containers) both exist; elsewhere both are no-ops.
    trim = malloc_trim()
    if trim is None:
        assert tune_allocator() is False
    else:
        assert trim() in (0, 1)
