"""The durable change log the real-time stream reads.

Each write appends one event per changed object in its own transaction.  Ids come from the
database (an autoincrement column, never reused on SQLite; a sequence on PostgreSQL), so they
survive restarts and agree across replicas.  Because every writer holds the writer lock of
:func:`flagstaff.store.db.write_tx` until it commits, events become visible strictly in id
order: a reader that has seen id N will never later see a smaller id appear.  On PostgreSQL the
append also issues ``NOTIFY flagstaff_changes, '<id>'``, delivered when the transaction commits.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from flagstaff.errors import Invalid
from flagstaff.store.db import is_postgres, now
from flagstaff.store.records import ChangeEvent
from flagstaff.store.schema import change_events

NOTIFY_CHANNEL = "flagstaff_changes"
EVENT_TYPES = frozenset(
    {
        "flag_created",
        "flag_updated",
        "flag_archived",
        "flag_restored",
        "segment_created",
        "segment_updated",
        "segment_deleted",
        "environment_created",
        "environment_updated",
        "environment_deleted",
        # Not a configuration change: it tells every replica's feed to end the key's streams.
        "token_revoked",
    }
)


def append(conn: sa.Connection, *, type: str, kind: str, key: str, data: Any) -> int:
    """Append one event in the caller's (write) transaction and return its id."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown change event type {type!r}")
    insert = change_events.insert().values(
        created_at=now(), type=type, kind=kind, key=key, data=data
    )
    if is_postgres(conn):
        # The insert and its NOTIFY in one round trip (a burst of writes makes many).
        appended = insert.returning(change_events.c.id).cte("appended")
        return int(
            conn.execute(
                sa.select(
                    appended.c.id,
                    sa.func.pg_notify(NOTIFY_CHANNEL, sa.cast(appended.c.id, sa.Text)),
                )
            ).scalar_one()
        )
    primary_key = conn.execute(insert).inserted_primary_key
    assert primary_key is not None
    return int(primary_key[0])


def latest_event_id(conn: sa.Connection) -> int:
    """The newest event id, 0 when nothing was ever written."""
    return int(conn.execute(sa.select(sa.func.max(change_events.c.id))).scalar_one() or 0)


def oldest_event_id(conn: sa.Connection) -> int | None:
    value = conn.execute(sa.select(sa.func.min(change_events.c.id))).scalar_one()
    return None if value is None else int(value)


def events_since(conn: sa.Connection, *, after_id: int, limit: int = 1000) -> list[ChangeEvent]:
    """Events with id > ``after_id`` in id order, at most ``limit`` of them."""
    if limit < 1:
        raise Invalid("limit must be positive", details={"field": "limit"})
    rows = conn.execute(
        sa.select(change_events)
        .where(change_events.c.id > after_id)
        .order_by(change_events.c.id)
        .limit(limit)
    ).all()
    return [
        ChangeEvent(
            id=int(row.id),
            created_at=row.created_at,
            type=row.type,
            kind=row.kind,
            key=row.key,
            data=row.data,
        )
        for row in rows
    ]


def prune(
    conn: sa.Connection, *, max_age_seconds: float | None = None, max_count: int | None = None
) -> int:
    """Delete events older than ``max_age_seconds`` or more than ``max_count`` ids behind the
    newest, so at most ``max_count`` are kept (exactly that many unless a PostgreSQL sequence
    skipped ids for rolled-back writes).

    Counting by id lets both deletes walk an index range instead of the whole table: this runs
    every few minutes under the writer lock, and on SQLite a table scan reads every stored
    payload through the server's own memory, which the allocator then keeps (docs/reliability.md).
    The newest event is always kept, so ``latest_event_id`` stays meaningful (and a client
    holding it is known to be up to date) however aggressive the retention.
    """
    if max_count is not None and (isinstance(max_count, bool) or max_count < 1):
        raise Invalid("max_count must be at least 1", details={"field": "max_count"})
    if max_age_seconds is not None and max_age_seconds < 0:
        raise Invalid("max_age_seconds must not be negative", details={"field": "max_age_seconds"})
    latest = latest_event_id(conn)
    if latest == 0:
        return 0
    deleted = 0
    if max_count is not None:
        result = conn.execute(change_events.delete().where(change_events.c.id <= latest - max_count))
        deleted += int(result.rowcount or 0)
    if max_age_seconds is not None:
        cutoff = now() - timedelta(seconds=max_age_seconds)
        result = conn.execute(
            change_events.delete()
            .where(change_events.c.created_at < cutoff)
            .where(change_events.c.id < latest)
        )
        deleted += int(result.rowcount or 0)
    return deleted
