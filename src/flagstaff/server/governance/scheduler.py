"""The per-process scheduler: applies due schedules, within about a second of their time.

Every server process runs one.  It sleeps until the earliest pending schedule is due (read
from the database, at most ``poll_seconds`` apart so schedules created on other replicas are
seen), then asks the store to run what is due, a batch at a time; the store claims the batch in the
write transaction that applies it, so several processes or replicas never apply one twice.  A
schedule that came due while no server ran is applied at the next start, with its lateness
recorded.  The clock is injectable (tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from flagstaff.store import Store

T = TypeVar("T")


class Call(Protocol):
    """Runs a blocking store call in a worker thread, tracked so that shutdown waits for it
    (``StoreChangeSource.call``)."""

    def __call__(self, func: Callable[[], T], /) -> Awaitable[T]: ...


log = logging.getLogger("flagstaff.server.scheduler")
# After a due schedule could not be claimed (another process holds it), look again this soon.
BUSY_RETRY_SECONDS = 0.05


def utc_now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    def __init__(
        self,
        store: Store,
        *,
        call: Call,
        poll_seconds: float = 1.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._call = call
        self._poll = poll_seconds
        self._clock = clock
        self._wake = asyncio.Event()
        self.applied = 0

    def wake(self) -> None:
        """Look again now (a schedule was created or moved in this process)."""
        self._wake.set()

    async def run(self) -> None:
        """Loop forever (a background job of the process; cancelled at shutdown)."""
        failures = 0
        while True:
            try:
                delay = await self.tick()
            except Exception:
                failures += 1
                log.log(logging.WARNING if failures == 1 else logging.DEBUG,
                        "running due schedules failed; retrying", exc_info=True)
                delay = self._poll
            else:
                if failures:
                    log.info("running due schedules works again after %d failures", failures)
                failures = 0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()

    async def tick(self) -> float:
        """Run everything due now; returns how long to sleep before looking again."""
        while True:
            due = await self._call(self._store.next_schedule_due)
            now = self._clock()
            if due is None:
                return self._poll
            if due > now:
                return min(self._poll, (due - now).total_seconds())
            # Everything due (up to a batch) in one claim and one transaction: a burst of
            # schedules due at the same instant costs a few commits, not one wait each.
            done = await self._call(partial(self._store.run_due_schedules, at=now))
            if not done:
                return BUSY_RETRY_SECONDS
            self.applied += len(done)
            for record in done:
                level = logging.INFO if record.status == "applied" else logging.WARNING
                log.log(level, "schedule %s %s (%s %s in %s, %d ms late)", record.id,
                        record.status, record.action, record.flag, record.environment,
                        record.late_ms or 0)
