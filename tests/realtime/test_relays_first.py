"""A downstream relay is offered every event before the other subscribers of a feed, so its own
clients do not wait behind this process's whole fan-out too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from flagstaff.realtime import ChangeFeed, StreamMetrics, StreamSettings


@dataclass(frozen=True)
class Event:
    id: int
    type: str = "flag_updated"
    kind: str = "segment"
    key: str = "s"
    data: Any = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Source:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def latest_event_id(self) -> int:
        return self.events[-1].id if self.events else 0

    async def oldest_event_id(self) -> int | None:
        return self.events[0].id if self.events else None

    async def events_since(self, *, after_id: int, limit: int) -> Sequence[Event]:
        return [e for e in self.events if e.id > after_id][:limit]

    async def snapshot(self, *, environment: str) -> dict[str, Any]:
        return {"environment": environment, "version": 0, "flags": {}, "segments": {}}

    async def watch(self, wake: Callable[[], None]) -> None:
        return None


def test_relays_are_offered_each_event_first() -> None:
    async def scenario() -> list[object]:
        source = Source()
        feed = ChangeFeed(source=source, settings=StreamSettings(),
                          metrics=StreamMetrics(CollectorRegistry()))
        await feed.start()
        order: list[object] = []

        async def receive(name: object, subscriber: Any) -> None:
            await subscriber.get()
            order.append(name)

        clients = [feed.subscribe(environment="production", transport="sse")
                   for _ in range(1000)]
        relay = feed.subscribe(environment="production", transport="sse", relay=True)
        tasks = [asyncio.create_task(receive(n, s)) for n, s in enumerate(clients)]
        tasks.append(asyncio.create_task(receive("relay", relay)))
        await asyncio.sleep(0)
        source.events.append(Event(1, data={"key": "s"}))
        feed.wake()
        async with asyncio.timeout(10):
            await asyncio.gather(*tasks)
        await feed.stop()
        return order

    order = asyncio.run(scenario())
    assert order[0] == "relay" and len(order) == 1001
