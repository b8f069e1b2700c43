"""Where the change feed takes its events from: the :class:`ChangeSource` interface.

The server's source is its store's change log (``flagstaff.server.changesource``); a relay's is
the stream it follows upstream.  Either way the feed only needs ids in commit order, the events
after an id, the retained range and a snapshot per environment, so this package never touches a
database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from flagstaff.realtime.events import Change


class ChangeSource(Protocol):
    """An ordered, durable (or at least retained) log of changes.

    Ids increase in commit order and may skip values; once an id has been seen no smaller one
    may appear later.  Every method may raise (a database outage, say): the feed retries.
    """

    async def latest_event_id(self) -> int:
        """The newest id, 0 when there is none."""
        ...

    async def oldest_event_id(self) -> int | None:
        """The oldest retained id, None when the log is empty."""
        ...

    async def events_since(self, *, after_id: int, limit: int) -> Sequence[Change]:
        """At most ``limit`` events with id > ``after_id``, in id order."""
        ...

    async def snapshot(self, *, environment: str) -> dict[str, Any]:
        """The contract's environment snapshot (``version`` = the id of its latest change)."""
        ...

    async def watch(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever new changes may exist, until cancelled.

        A source without a push channel returns at once; the feed's periodic poll then is the
        only way it learns of changes (it is also the safety net for a missed wake-up).
        """
        ...
