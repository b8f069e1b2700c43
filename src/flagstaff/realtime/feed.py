"""The per-process change feed: learns of committed changes and fans them out.

One :class:`ChangeFeed` runs in each process that serves streams.  It keeps a cursor (the last
event id it published) and reads its :class:`~flagstaff.realtime.source.ChangeSource` in id
order whenever it is woken:

* by the source's own push channel (``ChangeSource.watch``: PostgreSQL ``LISTEN`` for the
  server, the upstream stream for a relay), which makes delivery take milliseconds;
* by :meth:`ChangeFeed.wake` (the server calls it after a write it served);
* by a periodic poll (``poll_interval_seconds``), the only mechanism on SQLite and the safety net
  for a missed wake-up or a broken push channel.

Every event becomes one protocol event per environment (``events.protocol_event``), encoded once
and offered to each :class:`~flagstaff.realtime.subscriber.Subscriber` of that environment.
Subscribers of a named *channel* are left out of that fan-out: another publisher offers them its
own events (:meth:`ChangeFeed.offer`; the server's OFREP event streams), while the feed still
gives them keepalives, maximum ages and the shutdown.  A
subscriber's buffer is bounded; one that is full is closed as a slow consumer (the client
reconnects with ``Last-Event-ID``), so memory does not depend on how fast clients read.  After
each page of events the optional ``on_changes`` observer runs (the server folds the events into
its compiled snapshots there).  Large events, replaced ``put`` snapshots and stalled writes are
reported to the feed's :class:`~flagstaff.realtime.memory.MemoryReturn`, which gives what they
leave behind in the allocator back to the operating system.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from flagstaff.realtime.budget import ByteBudget
from flagstaff.realtime.events import Change, Outgoing, dumps, protocol_event, revoked_credential
from flagstaff.realtime.memory import MemoryReturn
from flagstaff.realtime.metrics import StreamMetrics
from flagstaff.realtime.settings import StreamSettings
from flagstaff.realtime.source import ChangeSource
from flagstaff.realtime.subscriber import Subscriber

log = logging.getLogger("flagstaff.realtime.feed")

PAGE = 500
# Connections handled between two yields to the event loop in the fan-out and the ticker.
SLICE = 200

ChangeObserver = Callable[[Sequence[Change]], Awaitable[None]]


class ChangeFeed:
    """Reads a change source and fans events out to this process's subscribers."""

    def __init__(
        self,
        *,
        source: ChangeSource,
        settings: StreamSettings,
        metrics: StreamMetrics,
        on_changes: ChangeObserver | None = None,
        memory: MemoryReturn | None = None,
    ) -> None:
        self.source = source
        self.settings = settings
        self.metrics = metrics
        self._on_changes = on_changes
        # Told of large frees; the default never trims (the server passes one that does).
        self.memory = memory if memory is not None else MemoryReturn()
        self._subscribers: set[Subscriber] = set()
        # Downstream relays: offered every event before other subscribers, so the clients of a
        # relay do not wait behind this process's whole fan-out as well as behind the relay's.
        self._relays: set[Subscriber] = set()
        self._channels: dict[str, set[Subscriber]] = {}
        # Open connections by the id of the key they were opened with, and every key id this
        # feed has seen revoked (few: revocations are rare), so that a connection authenticated
        # just before a revocation but subscribed just after the feed published it still ends.
        self._by_credential: dict[str, set[Subscriber]] = {}
        self._revoked: set[str] = set()
        # Each key's budget of bytes in the server's write buffers (realtime/budget.py).
        self._budgets: dict[str, ByteBudget] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._puts: dict[str, Outgoing] = {}
        # Snapshot reads in progress, with the fan-out generation they started in (see
        # put_event), and that generation: it moves whenever an event reaches subscribers.
        self._loading: dict[str, tuple[int, asyncio.Future[Outgoing]]] = {}
        self._generation = 0
        self.cursor = 0
        self._stopping = False

    async def start(self) -> None:
        self.cursor = await self.source.latest_event_id()
        self._tasks = [
            asyncio.create_task(self._run(), name="flagstaff-changefeed"),
            asyncio.create_task(self._tick_loop(), name="flagstaff-stream-ticker"),
            asyncio.create_task(self.source.watch(self.wake), name="flagstaff-change-watch"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        self.close_all("shutdown")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.memory.close()

    def subscribe(
        self, *, environment: str, transport: str, keepalive: bool = False,
        channel: str | None = None, credential: str | None = None, relay: bool = False,
    ) -> Subscriber:
        settings = self.settings
        now = asyncio.get_running_loop().time()
        subscriber = Subscriber(
            environment=environment,
            transport=transport,
            maxsize=settings.buffer_size,
            deadline=now + random.uniform(settings.max_age_min_seconds, settings.max_age_max_seconds),
            keepalive=keepalive,
            now=now,
            channel=channel,
            credential=credential,
            relay=relay,
        )
        self._members(channel, relay=relay).add(subscriber)
        self.metrics.clients(transport).inc()
        if credential is not None:
            self._by_credential.setdefault(credential, set()).add(subscriber)
            if credential not in self._budgets:
                self._budgets[credential] = ByteBudget(settings.key_buffer_bytes)
            if credential in self._revoked:
                subscriber.close("revoked")
        return subscriber

    def _members(self, channel: str | None, *, relay: bool = False) -> set[Subscriber]:
        if channel is None:
            return self._relays if relay else self._subscribers
        return self._channels.setdefault(channel, set())

    def unsubscribe(self, subscriber: Subscriber) -> None:
        members = self._members(subscriber.channel, relay=subscriber.relay)
        if subscriber in members:
            members.discard(subscriber)
            self.metrics.clients(subscriber.transport).dec()
        credential = subscriber.credential
        if credential is not None:
            holders = self._by_credential.get(credential)
            if holders is not None:
                holders.discard(subscriber)
                if not holders:
                    del self._by_credential[credential]
                    budget = self._budgets.get(credential)
                    if budget is not None and budget.idle:
                        del self._budgets[credential]
        subscriber.close("unsubscribed")

    def _everyone(self) -> list[Subscriber]:
        everyone = [*self._relays, *self._subscribers]
        for members in self._channels.values():
            everyone.extend(members)
        return everyone

    def budget_of(self, subscriber: Subscriber) -> ByteBudget | None:
        """The write budget shared by the connections of ``subscriber``'s key (None: no key)."""
        credential = subscriber.credential
        return None if credential is None else self._budgets.get(credential)

    def revoke(self, credential: str) -> int:
        """End every connection opened with key ``credential`` (and any opened later in this
        process); returns how many were open."""
        self._revoked.add(credential)
        holders = list(self._by_credential.get(credential, ()))
        for subscriber in holders:
            # What is buffered came before the revocation in the change log (an environment's
            # deletion, say, which tells the client why its stream ends): it goes out first.
            subscriber.close("revoked", drain=True)
        return len(holders)

    def resync(self, *, cursor: int) -> None:
        """The source's snapshot was replaced wholesale (a relay's upstream sent a new ``put``
        instead of the changes it missed): open streams may lack changes, so they end as at
        their maximum age (clients reconnect and get the new snapshot), and the feed reads on
        from ``cursor``, the replacement's version."""
        self._puts.clear()
        self._generation += 1
        self.cursor = cursor
        self.close_all("max_age")

    def close_all(self, reason: str) -> None:
        for subscriber in self._everyone():
            subscriber.close(reason)

    def channel_size(self, channel: str) -> int:
        return len(self._channels.get(channel, ()))

    async def offer(self, channel: str, environment: str, item: Outgoing) -> None:
        """Offer ``item`` to the ``channel`` subscribers of ``environment`` (closing any that
        is full as a slow consumer), yielding to the loop between slices as the fan-out does."""
        for n, subscriber in enumerate(list(self._channels.get(channel, ())), 1):
            if n % SLICE == 0:
                await asyncio.sleep(0)
            if subscriber.environment == environment and not subscriber.offer(item):
                self.metrics.slow(subscriber.transport).inc()
                subscriber.close("slow")

    def wake(self) -> None:
        self._wake.set()

    async def put_event(self, environment: str) -> Outgoing:
        """A ``put`` with the environment's full snapshot, its id being the snapshot's version.

        The encoded snapshot is shared by every connection until the next published event,
        so a reconnect storm costs one snapshot read (and one copy in memory) per environment,
        not one per client: connections arriving while it is read wait for that read, as long
        as no event was published since it began (one published meanwhile may be missing from
        it, and the newcomer, subscribed only now, would not get it live either).
        """
        cached = self._puts.get(environment)
        if cached is not None:
            return cached
        loading = self._loading.get(environment)
        if loading is None or loading[0] != self._generation:
            # A task of its own, so the first client leaving does not cancel the others' read.
            task = asyncio.ensure_future(self._load_put(environment))
            task.add_done_callback(_retrieve)
            loading = self._loading[environment] = (self._generation, task)
        return await asyncio.shield(loading[1])

    async def _load_put(self, environment: str) -> Outgoing:
        try:
            raw = await self.source.snapshot(environment=environment)
            put = Outgoing.of(int(raw["version"]), "put", dumps(raw))
            del raw  # the snapshot's objects, about as large as the frame: freed now
        finally:
            loading = self._loading.get(environment)
            if loading is not None and loading[1] is asyncio.current_task():
                del self._loading[environment]
        self.memory.freed(len(put.sse))
        # A snapshot older than the cursor would miss events subscribers already got.
        if put.id >= self.cursor:
            self._puts[environment] = put
        return put

    async def backlog(self, *, after_id: int) -> list[Change] | None:
        """Every retained event after ``after_id`` in order; None if some were pruned or the
        id is unknown (newer than the log), in which case the client needs a fresh ``put``."""
        source = self.source
        latest = await source.latest_event_id()
        if after_id > latest:
            return None
        if after_id == latest:
            return []
        oldest = await source.oldest_event_id()
        if oldest is None or after_id < oldest - 1:
            return None
        events: list[Change] = []
        cursor = after_id
        while True:
            page = await source.events_since(after_id=cursor, limit=PAGE)
            events.extend(page)
            if len(page) < PAGE:
                return events
            cursor = page[-1].id

    async def _run(self) -> None:
        failures = 0  # consecutive failed reads of the source
        while not self._stopping:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that races with the wake-up, and stop() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval_seconds):
                    await self._wake.wait()
            self._wake.clear()
            if server_exiting():
                # The ASGI server waits for open responses before running the lifespan
                # shutdown, so streams must end here or shutdown would hang.
                self.close_all("shutdown")
            try:
                await self._catch_up()
            except Exception:
                # The database is down, say: the poll retries every interval, so only the
                # first failure of an outage is a warning, not one per poll.
                failures += 1
                if failures == 1:
                    log.warning(
                        "reading the change log failed; retrying every %ss until it works",
                        self.settings.poll_interval_seconds, exc_info=True,
                    )
                else:
                    log.debug("reading the change log failed again (%d)", failures, exc_info=True)
            else:
                if failures:
                    log.info("reading the change log works again after %d failed attempts",
                             failures)
                failures = 0

    async def _catch_up(self) -> None:
        while True:
            page = await self.source.events_since(after_id=self.cursor, limit=PAGE)
            encoded = 0
            for event in page:
                encoded += await self._publish(event)
            if page and self._on_changes is not None:
                await self._on_changes(page)
            # The page's objects, its encoded events (once every connection has taken them) and
            # what the write and the observers made of it are garbage from here on.
            self.memory.freed(encoded)
            if len(page) < PAGE:
                return

    async def _publish(self, event: Change) -> int:
        """Offer ``event`` to every subscriber; returns the bytes it was encoded into (and of
        the ``put`` snapshots it made obsolete)."""
        self.cursor = max(self.cursor, event.id)
        self.metrics.feed_events.inc()
        self.metrics.feed_delay.observe(
            max(0.0, (datetime.now(UTC) - _aware(event.created_at)).total_seconds())
        )
        credential = revoked_credential(event)
        if credential is not None:
            # Nothing for clients to see (the put snapshots stay valid): only connections end.
            if self.revoke(credential):
                log.info("ended the open streams of a revoked key (%s)", credential)
            return 0
        size = sum(len(put.sse) for put in self._puts.values())
        self._puts.clear()
        self._generation += 1
        encoded: dict[str, Outgoing | None] = {}
        for n, subscriber in enumerate([*self._relays, *self._subscribers], 1):
            if n % SLICE == 0:
                # Let requests in between slices: writing to ten thousand sockets takes a
                # few hundred milliseconds that would otherwise stall the whole API.  A client
                # connecting meanwhile reads the change from the source instead.
                await asyncio.sleep(0)
            env = subscriber.environment
            if env not in encoded:
                encoded[env] = protocol_event(event, env)
            item = encoded[env]
            if item is not None and not subscriber.offer(item):
                self.metrics.slow(subscriber.transport).inc()
                subscriber.close("slow")
        return size + sum(len(item.sse) for item in encoded.values() if item is not None)

    async def _tick_loop(self) -> None:
        """Keepalives and maximum ages for every connection from one shared ticker.

        One timer per connection (re-armed on every wait) costs a heap entry and a handle per
        connection and per event; a single pass over the subscribers costs well under a
        millisecond per thousand connections and fires within one tick of the due time.
        """
        settings = self.settings
        period = min(1.0, settings.keepalive_seconds / 2)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            quiet_since = now - settings.keepalive_seconds
            for n, subscriber in enumerate(self._everyone(), 1):
                if n % SLICE == 0:
                    # Keepalives fall due together (after a fan-out every connection went
                    # quiet at once); waking them in slices keeps the API responsive.
                    await asyncio.sleep(0)
                if now >= subscriber.deadline:
                    subscriber.close("max_age")
                elif subscriber.keepalive and subscriber.last_write <= quiet_since:
                    subscriber.ping()


def _retrieve(task: asyncio.Future[Any]) -> None:
    # Whoever awaited the read got its error; one nobody awaited any more must not be logged.
    if not task.cancelled():
        task.exception()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def server_exiting() -> bool:
    """True once uvicorn has been asked to exit (found through its SIGTERM handler)."""
    handler = signal.getsignal(signal.SIGTERM)
    server = getattr(handler, "__self__", None)
    return bool(getattr(server, "should_exit", False))
