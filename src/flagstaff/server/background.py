"""Per-process background work: every periodic job of the server process starts here.

:func:`start` is called once by the app's lifespan (``streaming.install`` wraps it) after the
store is open, and returns the running :class:`Background`; its ``stop`` runs before the store
closes.  A job is an ``async`` function looping forever; it must survive its own failures (log
and carry on), and blocking store calls go through ``StoreChangeSource.call`` so shutdown waits
for them.  Today's jobs: change-log retention (``prune_loop``), and the scheduler and webhook
dispatcher of governed change (``governance.workers.spawn``).  Add new periodic jobs to
:func:`start`, next to them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from flagstaff.realtime import StreamSettings
from flagstaff.server.changesource import StoreChangeSource
from flagstaff.server.governance import workers
from flagstaff.server.governance.workers import Workers

log = logging.getLogger("flagstaff.server.background")


@dataclass(slots=True)
class Background:
    """The process's running background jobs."""

    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def spawn(self, job: Coroutine[Any, Any, None], *, name: str) -> None:
        self.tasks.append(asyncio.create_task(job, name=name))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []


def start(
    *, source: StoreChangeSource, settings: StreamSettings, governance: Workers | None = None
) -> Background:
    """Start this process's background jobs."""
    background = Background()
    background.spawn(prune_loop(source, settings), name="flagstaff-prune")
    if governance is not None:
        workers.spawn(background, governance, store=source.store, call=source.call)
    return background


async def prune_loop(source: StoreChangeSource, settings: StreamSettings) -> None:
    """Change-log retention (docs/streaming.md, "Catch-up and ids"), every prune interval."""
    while True:
        try:
            await source.call(
                partial(
                    source.store.prune,
                    max_age_seconds=settings.retention_max_age_seconds,
                    max_count=settings.retention_max_count,
                )
            )
        except Exception:
            log.warning("pruning the change log failed", exc_info=True)
        await asyncio.sleep(settings.prune_interval_seconds)
