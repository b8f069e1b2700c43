"""One connection's life, whatever its transport: what it sends first, then the live events.

A connection subscribes to the feed *before* it reads what the client is missing (a ``put``
snapshot, or the backlog after its last event id), then forwards buffered events whose id is
above the last one it sent.  Subscribing first means no event can fall between the backlog read
and the live buffer; the id filter means none is sent twice.  The transports (``sse``,
``websocket``) supply only how to write a batch and a keepalive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from flagstaff.realtime.budget import ByteBudget
from flagstaff.realtime.events import Outgoing, protocol_event
from flagstaff.realtime.feed import ChangeFeed
from flagstaff.realtime.subscriber import Subscriber

# Why a pump ended; the transport decides how to close.
SEND_TIMEOUT = "send_timeout"


async def initial_events(
    feed: ChangeFeed, environment: str, after_id: int | None
) -> tuple[list[Outgoing], int]:
    """What a new connection sends first, and the id it has then sent up to."""
    if after_id is not None:
        backlog = await feed.backlog(after_id=after_id)
        if backlog is not None:
            items = [o for e in backlog if (o := protocol_event(e, environment)) is not None]
            return items, max([after_id, *(e.id for e in backlog)])
    put = await feed.put_event(environment)
    return [put], put.id


async def open_session(
    feed: ChangeFeed, *, environment: str, after_id: int | None, transport: str,
    keepalive: bool, credential: str | None = None, relay: bool = False,
) -> tuple[Subscriber, list[Outgoing], int]:
    """Subscribe, then read what the client is missing (unsubscribing if that fails).

    ``credential`` is the id of the key the connection was opened with: revoking that key ends
    the connection."""
    subscriber = feed.subscribe(environment=environment, transport=transport, keepalive=keepalive,
                                credential=credential, relay=relay)
    try:
        initial, sent_up_to = await initial_events(feed, environment, after_id)
    except BaseException:
        feed.unsubscribe(subscriber)
        raise
    return subscriber, initial, sent_up_to


async def pump(
    subscriber: Subscriber,
    *,
    feed: ChangeFeed,
    initial: list[Outgoing],
    sent_up_to: int,
    write: Callable[[list[Outgoing]], Awaitable[None]],
    keepalive: Callable[[], Awaitable[None]] | None,
    cost: Callable[[list[Outgoing]], int] | None = None,
) -> str:
    """Forward events to one client until it goes away, falls behind, or reaches its age.

    Returns why it stopped: the subscriber's close reason (``max_age`` and keepalive wake-ups
    come from the feed's shared ticker), ``final`` or :data:`SEND_TIMEOUT` (the client stopped
    reading; the connection must be dropped).  ``cost`` says how many bytes a batch can leave
    in the server's buffers while it is written: they are taken from the key's budget
    (``feed.budget_of``) for the write's duration, within the same send timeout.
    """
    settings = feed.settings
    metrics = feed.metrics
    loop = asyncio.get_running_loop()
    pending: list[Outgoing | None] = list(initial)
    # Emptied (it is the caller's fresh list) rather than kept for the connection's lifetime:
    # a ``put`` can be a large snapshot, and connections opened at different times would each
    # pin a different one.
    initial.clear()
    subscriber.sent_up_to = sent_up_to
    budget = feed.budget_of(subscriber) if cost is not None else None
    # The initial events are exactly what is missing; queued ones may repeat them.
    trusted = True
    while True:
        batch: list[Outgoing] = []
        closed = False
        for item in pending:
            if item is None:
                closed = True
                break
            if trusted or item.id > subscriber.sent_up_to:
                batch.append(item)
                subscriber.sent_up_to = max(subscriber.sent_up_to, item.id)
        trusted = False
        if batch:
            try:
                async with asyncio.timeout(settings.send_timeout_seconds):
                    await _write_within_budget(budget, cost, write, batch)
            except TimeoutError:
                # What the stalled write left in the server's buffers is freed when the
                # connection closes, just after this returns.
                feed.memory.freed(cost(batch) if cost is not None else _size(batch))
                return _stalled(subscriber, feed)
            subscriber.last_write = loop.time()
            for item in batch:
                metrics.sent(subscriber.transport, item.event).inc()
            if batch[-1].final:
                return "final"
        if closed:
            return subscriber.closed_reason or "closed"
        pending = await subscriber.get()
        if not pending and keepalive is not None:
            try:
                async with asyncio.timeout(settings.send_timeout_seconds):
                    await keepalive()
            except TimeoutError:
                return _stalled(subscriber, feed)
            subscriber.last_write = loop.time()


async def _write_within_budget(
    budget: ByteBudget | None,
    cost: Callable[[list[Outgoing]], int] | None,
    write: Callable[[list[Outgoing]], Awaitable[None]],
    batch: list[Outgoing],
) -> None:
    if budget is None or cost is None:
        await write(batch)
        return
    taken = await budget.acquire(cost(batch))
    try:
        await write(batch)
    finally:
        budget.release(taken)


def _size(batch: list[Outgoing]) -> int:
    return sum(len(item.sse) for item in batch)


def _stalled(subscriber: Subscriber, feed: ChangeFeed) -> str:
    """A write blocked too long; count the client as slow unless the feed already did."""
    if subscriber.closed_reason is None:
        feed.metrics.slow(subscriber.transport).inc()
    subscriber.close("slow")
    return SEND_TIMEOUT
