"""The per-process change feed: learns of committed change events and fans them out.

One :class:`ChangeFeed` runs in each server process.  It keeps a cursor (the last event id it
published) and reads ``store.events_since`` in id order whenever it is woken:

* on PostgreSQL by ``LISTEN flagstaff_changes`` on a dedicated psycopg connection (reconnected
  with back-off), which makes cross-replica delivery take milliseconds;
* by a periodic poll (``poll_interval_seconds``), the only mechanism on SQLite and the safety net
  for a missed notification or a broken LISTEN connection.

Every event becomes one protocol event per environment (:func:`protocol_event`), encoded once and
offered to each :class:`Subscriber` of that environment.  A subscriber's queue is bounded; one
that is full is closed as a slow consumer (the client reconnects with ``Last-Event-ID``), so the
server's memory does not depend on how fast clients read.  Store calls are synchronous
SQLAlchemy, so they run in worker threads and never block the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sse_starlette import ServerSentEvent

from flagstaff.engine import resolve_flag
from flagstaff.server.metrics import Metrics

if TYPE_CHECKING:
    from flagstaff.server.realtime import StreamSettings
    from flagstaff.server.snapshots import SnapshotCache
    from flagstaff.store import Store
    from flagstaff.store.records import ChangeEvent

log = logging.getLogger("flagstaff.server.changefeed")

CHANNEL = "flagstaff_changes"
PAGE = 500
# Connections handled between two yields to the event loop in the fan-out and the ticker.
SLICE = 200
T = TypeVar("T")


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One protocol event, encoded once for every connection that receives it.

    ``data`` is the JSON payload, ``sse`` the complete SSE frame; ``final`` closes the
    connection after sending.
    """

    id: int
    event: str
    data: str
    sse: bytes
    final: bool = False

    @classmethod
    def of(cls, event_id: int, event: str, data: str, *, final: bool = False) -> Outgoing:
        frame = ServerSentEvent(data, event=event, id=str(event_id), sep="\n").encode()
        return cls(event_id, event, data, frame, final)

    def ws_message(self) -> str:
        """The WebSocket text message ``{"id": ..., "event": ..., "data": {...}}``."""
        return f'{{"id":{self.id},"event":{dumps(self.event)},"data":{self.data}}}'


def protocol_event(event: ChangeEvent, environment: str) -> Outgoing | None:
    """The event a client of ``environment`` receives for a stored change (None: nothing).

    Flags are resolved for the environment, so a client only ever sees its own environment's
    configuration.  Unknown types are skipped so older servers tolerate newer writers.
    """
    data = event.data
    if event.kind == "flag":
        if event.type == "flag_archived" or data is None or data.get("state") == "archived":
            return Outgoing.of(event.id, "flag_archived", dumps({"key": event.key}))
        resolved = resolve_flag(data, environment)
        return Outgoing.of(event.id, "flag_updated", dumps({"key": event.key, "flag": resolved}))
    if event.kind == "segment":
        if event.type == "segment_deleted" or data is None:
            return Outgoing.of(event.id, "segment_deleted", dumps({"key": event.key}))
        return Outgoing.of(event.id, "segment_updated", dumps({"key": event.key, "segment": data}))
    deleted_here = event.type == "environment_deleted" and event.key == environment
    if event.kind == "environment" and deleted_here:
        return Outgoing.of(
                event.id, "environment_deleted", dumps({"key": event.key}), final=True
            )
    return None


class Subscriber:
    """One connection's bounded buffer of outgoing events.

    A plain list and one future rather than an ``asyncio.Queue``: a queue carries four deques
    (~3 KiB) and its wake-up machinery, which at ten thousand connections is a large share of
    the server's memory and of the fan-out's CPU.  Only one coroutine ever waits here.
    """

    __slots__ = (
        "_items", "_limit", "_waiter", "closed_reason", "deadline", "direct", "direct_ping",
        "environment", "keepalive", "last_write", "sent_up_to", "transport",
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
    ) -> None:
        self.environment = environment
        self.transport = transport
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

    def close(self, reason: str) -> None:
        """End the stream: drop what is buffered (freeing it now) and wake the consumer."""
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
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
        if self.closed_reason is not None:
            return [None]
        items: list[Outgoing | None] = list(self._items)
        self._items = []
        return items


class ChangeFeed:
    """Reads the change log and fans events out to this process's subscribers."""

    def __init__(
        self,
        *,
        store: Store,
        settings: StreamSettings,
        metrics: Metrics,
        snapshots: SnapshotCache | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._snapshots = snapshots
        self._subscribers: set[Subscriber] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._puts: dict[str, Outgoing] = {}
        # Store calls still running in worker threads; stop() waits for them so the store is
        # never closed under a connection a thread is using (it would leak, unclosed).
        self._inflight: set[asyncio.Future[Any]] = set()
        self.cursor = 0
        self._stopping = False

    async def start(self) -> None:
        self.cursor = await self._call(self._store.latest_event_id)
        self._tasks = [
            asyncio.create_task(self._run(), name="flagstaff-changefeed"),
            asyncio.create_task(self._prune_loop(), name="flagstaff-prune"),
            asyncio.create_task(self._tick_loop(), name="flagstaff-stream-ticker"),
        ]
        dsn = listen_dsn(self._store)
        if dsn is not None and self._settings.listen:
            self._tasks.append(asyncio.create_task(self._listen(dsn), name="flagstaff-listen"))

    async def stop(self) -> None:
        self._stopping = True
        self.close_all("shutdown")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=30)

    def subscribe(self, *, environment: str, transport: str, keepalive: bool = False) -> Subscriber:
        settings = self._settings
        now = asyncio.get_running_loop().time()
        subscriber = Subscriber(
            environment=environment,
            transport=transport,
            maxsize=settings.buffer_size,
            deadline=now + random.uniform(settings.max_age_min_seconds, settings.max_age_max_seconds),
            keepalive=keepalive,
            now=now,
        )
        self._subscribers.add(subscriber)
        self._metrics.clients(transport).inc()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.discard(subscriber)
            self._metrics.clients(subscriber.transport).dec()
        subscriber.close("unsubscribed")

    def close_all(self, reason: str) -> None:
        for subscriber in list(self._subscribers):
            subscriber.close(reason)

    def wake(self) -> None:
        self._wake.set()

    async def put_event(self, environment: str) -> Outgoing:
        """A ``put`` with the environment's full snapshot, its id being the snapshot's version.

        The encoded snapshot is shared by every connection until the next published event,
        so a reconnect storm costs one snapshot query per environment, not one per client.
        """
        cached = self._puts.get(environment)
        if cached is None:
            raw = await self._call(partial(self._store.snapshot, environment=environment))
            cached = Outgoing.of(int(raw["version"]), "put", dumps(raw))
            # A snapshot older than the cursor would miss events subscribers already got.
            if cached.id >= self.cursor:
                self._puts[environment] = cached
        return cached

    async def backlog(self, *, after_id: int) -> list[ChangeEvent] | None:
        """Every retained event after ``after_id`` in order; None if some were pruned or the
        id is unknown (newer than the log), in which case the client needs a fresh ``put``."""
        latest = await self._call(self._store.latest_event_id)
        if after_id > latest:
            return None
        if after_id == latest:
            return []
        oldest = await self._call(self._store.oldest_event_id)
        if oldest is None or after_id < oldest - 1:
            return None
        events: list[ChangeEvent] = []
        cursor = after_id
        while True:
            page = await self._call(partial(self._store.events_since, after_id=cursor, limit=PAGE))
            events.extend(page)
            if len(page) < PAGE:
                return events
            cursor = page[-1].id

    async def _run(self) -> None:
        failures = 0  # consecutive failed reads of the change log
        while not self._stopping:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that races with the wake-up, and stop() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.poll_interval_seconds):
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
                        self._settings.poll_interval_seconds, exc_info=True,
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
            page = await self._call(
                partial(self._store.events_since, after_id=self.cursor, limit=PAGE)
            )
            for event in page:
                await self._publish(event)
            if page and self._snapshots is not None:
                await self._call(partial(_apply_all, self._snapshots, page))
            if len(page) < PAGE:
                return

    async def _publish(self, event: ChangeEvent) -> None:
        self.cursor = max(self.cursor, event.id)
        self._puts.clear()
        self._metrics.feed_events.inc()
        self._metrics.feed_delay.observe(
            max(0.0, (datetime.now(UTC) - _aware(event.created_at)).total_seconds())
        )
        encoded: dict[str, Outgoing | None] = {}
        for n, subscriber in enumerate(list(self._subscribers), 1):
            if n % SLICE == 0:
                # Let requests in between slices: writing to ten thousand sockets takes a
                # few hundred milliseconds that would otherwise stall the whole API.  A client
                # connecting meanwhile reads the change from the database instead.
                await asyncio.sleep(0)
            env = subscriber.environment
            if env not in encoded:
                encoded[env] = protocol_event(event, env)
            item = encoded[env]
            if item is not None and not subscriber.offer(item):
                self._metrics.slow(subscriber.transport).inc()
                subscriber.close("slow")

    async def _tick_loop(self) -> None:
        """Keepalives and maximum ages for every connection from one shared ticker.

        One timer per connection (re-armed on every wait) costs a heap entry and a handle per
        connection and per event; a single pass over the subscribers costs well under a
        millisecond per thousand connections and fires within one tick of the due time.
        """
        settings = self._settings
        period = min(1.0, settings.keepalive_seconds / 2)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            quiet_since = now - settings.keepalive_seconds
            for n, subscriber in enumerate(list(self._subscribers), 1):
                if n % SLICE == 0:
                    # Keepalives fall due together (after a fan-out every connection went
                    # quiet at once); waking them in slices keeps the API responsive.
                    await asyncio.sleep(0)
                if now >= subscriber.deadline:
                    subscriber.close("max_age")
                elif subscriber.keepalive and subscriber.last_write <= quiet_since:
                    subscriber.ping()

    async def _listen(self, dsn: str) -> None:
        import psycopg

        delay = 0.5
        failures = 0  # consecutive failures: only an outage's first one is a warning
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    delay = 0.5
                    if failures:
                        log.info("LISTEN %s reconnected", CHANNEL)
                    failures = 0
                    # Anything committed while we were not listening is found by this read.
                    self.wake()
                    async for _ in conn.notifies():
                        self.wake()
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.log(logging.WARNING if failures == 1 else logging.DEBUG,
                        "LISTEN %s failed; reconnecting in %.1fs", CHANNEL, delay, exc_info=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _prune_loop(self) -> None:
        settings = self._settings
        while True:
            try:
                await self._call(
                    partial(
                        self._store.prune,
                        max_age_seconds=settings.retention_max_age_seconds,
                        max_count=settings.retention_max_count,
                    )
                )
            except Exception:
                log.warning("pruning the change log failed", exc_info=True)
            await asyncio.sleep(settings.prune_interval_seconds)

    async def _call(self, func: Callable[[], T]) -> T:
        future = asyncio.get_running_loop().run_in_executor(None, func)
        self._inflight.add(future)
        future.add_done_callback(self._inflight.discard)
        # Shielded: a cancelled caller stops waiting, but the call's completion is still
        # tracked in ``_inflight`` for stop().
        return await asyncio.shield(future)


def _apply_all(snapshots: SnapshotCache, events: list[ChangeEvent]) -> None:
    for event in events:
        snapshots.apply_event(event)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def listen_dsn(store: Store) -> str | None:
    """A libpq URL for the store's database when it is PostgreSQL, else None."""
    engine: Any = getattr(store, "engine", None)
    url = getattr(engine, "url", None)
    if url is None or not str(url.drivername).startswith("postgresql"):
        return None
    return str(url.set(drivername="postgresql").render_as_string(hide_password=False))


def server_exiting() -> bool:
    """True once uvicorn has been asked to exit (found through its SIGTERM handler)."""
    handler = signal.getsignal(signal.SIGTERM)
    server = getattr(handler, "__self__", None)
    return bool(getattr(server, "should_exit", False))
