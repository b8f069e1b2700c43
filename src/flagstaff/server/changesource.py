"""The server's change source: the store's change log, for the real-time feed.

:class:`StoreChangeSource` gives :class:`flagstaff.realtime.ChangeFeed` the store's change log.
Store calls are synchronous SQLAlchemy, so they run in worker threads and never block the event
loop; :meth:`StoreChangeSource.drain` waits for those still running so the store is never closed
under a connection a thread is using (it would leak, unclosed).  On PostgreSQL
:meth:`StoreChangeSource.watch` ``LISTEN``s on ``flagstaff_changes`` on a dedicated psycopg
connection (reconnected with back-off), which makes cross-replica delivery take milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from flagstaff.store.changelog import NOTIFY_CHANNEL

if TYPE_CHECKING:
    from flagstaff.store import Store
    from flagstaff.store.records import ChangeEvent

log = logging.getLogger("flagstaff.server.changesource")

T = TypeVar("T")


class StoreChangeSource:
    """The store's change log as a :class:`flagstaff.realtime.ChangeSource`."""

    def __init__(self, store: Store, *, listen: bool = True) -> None:
        self.store = store
        self._listen = listen
        # Store calls still running in worker threads (see drain()).
        self._inflight: set[asyncio.Future[Any]] = set()

    async def latest_event_id(self) -> int:
        return await self.call(self.store.latest_event_id)

    async def oldest_event_id(self) -> int | None:
        return await self.call(self.store.oldest_event_id)

    async def events_since(self, *, after_id: int, limit: int) -> Sequence[ChangeEvent]:
        return await self.call(partial(self.store.events_since, after_id=after_id, limit=limit))

    async def snapshot(self, *, environment: str) -> dict[str, Any]:
        return await self.call(partial(self.store.snapshot, environment=environment))

    async def watch(self, wake: Callable[[], None]) -> None:
        dsn = listen_dsn(self.store)
        if dsn is None or not self._listen:
            return  # SQLite, or LISTEN turned off: the feed's poll is the only mechanism
        await _listen(dsn, wake)

    async def call(self, func: Callable[[], T]) -> T:
        """Run a blocking store call in a worker thread, tracked for :meth:`drain`."""
        future = asyncio.get_running_loop().run_in_executor(None, func)
        self._inflight.add(future)
        future.add_done_callback(self._inflight.discard)
        # Shielded: a cancelled caller stops waiting, but the call's completion is still
        # tracked in ``_inflight`` for drain().
        return await asyncio.shield(future)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for store calls still running in threads (before the store is closed)."""
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=timeout)


async def _listen(dsn: str, wake: Callable[[], None]) -> None:
    import psycopg

    delay = 0.5
    failures = 0  # consecutive failures: only an outage's first one is a warning
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                delay = 0.5
                if failures:
                    log.info("LISTEN %s reconnected", NOTIFY_CHANNEL)
                failures = 0
                # Anything committed while we were not listening is found by this read.
                wake()
                async for _ in conn.notifies():
                    wake()
        except asyncio.CancelledError:
            raise
        except Exception:
            failures += 1
            log.log(logging.WARNING if failures == 1 else logging.DEBUG,
                    "LISTEN %s failed; reconnecting in %.1fs", NOTIFY_CHANNEL, delay, exc_info=True)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)


def listen_dsn(store: Store) -> str | None:
    """A libpq URL for the store's database when it is PostgreSQL, else None."""
    engine: Any = getattr(store, "engine", None)
    url = getattr(engine, "url", None)
    if url is None or not str(url.drivername).startswith("postgresql"):
        return None
    return str(url.set(drivername="postgresql").render_as_string(hide_password=False))
