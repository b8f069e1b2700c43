"""Reads that a batch of writes in one transaction makes once and shares.

The scheduler applies a burst of due schedules in one write transaction.  Each of those writes
would otherwise read the same few rows again: which environments exist, which approval
policies are on, which webhook subscriptions are active.  Inside :func:`shared` each such
read (:func:`memo`) is made once and its result reused until the scope ends; outside it,
``memo`` simply reads.

Only a caller whose writes inside the scope never change what is memoised may open it (the
scheduler's batch changes flags, schedules, change requests, the audit log, change events and
webhook deliveries; never environments, policies or subscriptions).  The write transaction
holds the writer lock, so no other writer can change those rows under the batch either.
Flags are the exception that the batch does write: their memo is kept current by the one
function that writes them (:func:`flagstaff.store.flags.update`), and whoever rolls back to a
savepoint inside the scope must :func:`forget` it, since it may hold rows the rollback undid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa

T = TypeVar("T")
# conn.info belongs to the pooled DB-API connection, so the scope removes its entry on exit.
_INFO_KEY = "flagstaff.shared_reads"


@contextmanager
def shared(conn: sa.Connection) -> Iterator[None]:
    """Share :func:`memo` reads on ``conn`` until the block ends."""
    conn.info[_INFO_KEY] = {}
    try:
        yield
    finally:
        conn.info.pop(_INFO_KEY, None)


def active(conn: sa.Connection) -> bool:
    """Whether ``conn`` is inside a :func:`shared` scope."""
    return _INFO_KEY in conn.info


def forget(conn: sa.Connection, name: str) -> None:
    """Drop one memo (a rollback inside the scope undid what it may hold)."""
    cache: dict[str, Any] | None = conn.info.get(_INFO_KEY)
    if cache is not None:
        cache.pop(name, None)


def memo(conn: sa.Connection, name: str, load: Callable[[], T]) -> T:
    """``load()``, made once per :func:`shared` scope (every time outside one)."""
    cache: dict[str, Any] | None = conn.info.get(_INFO_KEY)
    if cache is None:
        return load()
    if name not in cache:
        cache[name] = load()
    value: T = cache[name]
    return value
