"""Flag rows: read, list, insert and version-checked update on a caller's connection."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa

from flagstaff.store import shared_reads
from flagstaff.store.flag_order import KEY_ORDER, FlagOrder, next_cursor, order_sql
from flagstaff.store.paging import check_limit
from flagstaff.store.records import FlagRecord, Page, iso
from flagstaff.store.schema import flag_tags, flags

SERVER_FIELDS = ("state", "version", "created_at", "updated_at")
STATES = ("active", "archived")


def pure(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition without server-managed fields."""
    return {k: copy.deepcopy(v) for k, v in definition.items() if k not in SERVER_FIELDS}


class FlagRow(NamedTuple):
    """The columns :func:`_record` reads (a database row has them too)."""

    key: str
    definition: dict[str, Any]
    state: str
    version: int
    created_at: datetime
    updated_at: datetime


def _record(row: sa.Row[Any] | FlagRow) -> FlagRecord:
    definition = dict(row.definition)
    definition.update(
        state=row.state,
        version=int(row.version),
        created_at=iso(row.created_at),
        updated_at=iso(row.updated_at),
    )
    return FlagRecord(
        key=row.key,
        version=int(row.version),
        state=row.state,
        created_at=row.created_at,
        updated_at=row.updated_at,
        definition=definition,
    )


FLAG_MEMO = "flags"


def _memo(conn: sa.Connection) -> dict[str, FlagRecord | None] | None:
    """Flags read or written in a :func:`shared_reads.shared` scope (None outside one)."""
    if not shared_reads.active(conn):
        return None
    return shared_reads.memo(conn, FLAG_MEMO, dict)


def get(conn: sa.Connection, *, key: str) -> FlagRecord | None:
    known = _memo(conn)
    if known is not None and key in known:
        return known[key]
    row = conn.execute(sa.select(flags).where(flags.c.key == key)).first()
    record = None if row is None else _record(row)
    if known is not None:
        known[key] = record
    return record


def prefetch(conn: sa.Connection, *, keys: list[str]) -> None:
    """Read ``keys`` in one query for the writes of a shared-reads scope that follow."""
    known = _memo(conn)
    wanted = sorted(set(keys) - set(known or {}))
    if known is None or not wanted:
        return
    found = {row.key: _record(row) for row in conn.execute(
        sa.select(flags).where(flags.c.key.in_(wanted)))}
    known.update((key, found.get(key)) for key in wanted)


def all_active(conn: sa.Connection) -> list[FlagRecord]:
    rows = conn.execute(sa.select(flags).where(flags.c.state == "active").order_by(flags.c.key))
    return [_record(row) for row in rows]


def active_keys(conn: sa.Connection, *, keys: list[str]) -> list[str]:
    """Those of ``keys`` that name active flags, sorted."""
    if not keys:
        return []
    query = sa.select(flags.c.key).where(flags.c.key.in_(keys), flags.c.state == "active")
    return sorted(conn.execute(query).scalars())


def with_environment(conn: sa.Connection, *, environment: str) -> list[FlagRecord]:
    """Flags whose definition configures ``environment`` (JSON is filtered in Python)."""
    rows = conn.execute(sa.select(flags).order_by(flags.c.key))
    return [
        _record(row) for row in rows if environment in (row.definition.get("environments") or {})
    ]


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_page(
    conn: sa.Connection,
    *,
    state: str | None,
    tag: str | None,
    q: str | None,
    limit: int,
    cursor: str | None,
    order: FlagOrder = KEY_ORDER,
) -> Page[FlagRecord]:
    """One page in ``order`` (by key unless asked otherwise) after ``cursor``."""
    limit = check_limit(limit)
    query = sa.select(flags).limit(limit + 1)
    if state is not None:
        query = query.where(flags.c.state == state)
    if tag is not None:
        query = query.where(
            flags.c.key.in_(sa.select(flag_tags.c.flag_key).where(flag_tags.c.tag == tag))
        )
    if q:
        pattern = _like(q)
        query = query.where(
            sa.or_(
                *(
                    sa.func.lower(column).like(pattern, escape="\\")
                    for column in (flags.c.key, flags.c.name, flags.c.description)
                )
            )
        )
    rows = conn.execute(order_sql(query, order, cursor)).all()
    items = [_record(row) for row in rows[:limit]]
    return Page(items=items, next_cursor=next_cursor(order, rows[limit - 1]) if len(rows) > limit else None)


def _columns(definition: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": definition.get("name") or definition["key"],
        "description": definition.get("description") or "",
        "definition": definition,
    }


def _set_tags(conn: sa.Connection, *, key: str, tags: list[str]) -> None:
    conn.execute(flag_tags.delete().where(flag_tags.c.flag_key == key))
    if tags:
        conn.execute(flag_tags.insert(), [{"flag_key": key, "tag": t} for t in sorted(set(tags))])


def insert(conn: sa.Connection, *, definition: dict[str, Any], at: datetime) -> FlagRecord:
    key = definition["key"]
    conn.execute(
        flags.insert().values(
            key=key, state="active", version=1, created_at=at, updated_at=at, **_columns(definition)
        )
    )
    _set_tags(conn, key=key, tags=list(definition.get("tags") or []))
    known = _memo(conn)
    if known is not None:
        known.pop(key, None)  # it may remember the key as missing
    record = get(conn, key=key)
    assert record is not None
    return record


def update(
    conn: sa.Connection,
    *,
    current: FlagRecord,
    definition: dict[str, Any],
    state: str,
    at: datetime,
) -> FlagRecord | None:
    """Write version+1 only if the row still has ``current.version``; None if it moved on."""
    result = conn.execute(
        flags.update()
        .where(flags.c.key == current.key, flags.c.version == current.version)
        .values(state=state, version=current.version + 1, updated_at=at, **_columns(definition))
    )
    if result.rowcount != 1:
        return None
    tags = list(definition.get("tags") or [])
    if sorted(set(tags)) != sorted(set(current.definition.get("tags") or [])):
        _set_tags(conn, key=current.key, tags=tags)
    # The row is now exactly what was written: build the record instead of reading it back
    # (through JSON, so it holds what a read would return, not the caller's objects).
    stored = json.loads(json.dumps(definition))
    record = _record(
        FlagRow(
            key=current.key, definition=stored, state=state, version=current.version + 1,
            created_at=current.created_at, updated_at=at.astimezone(UTC),
        )
    )
    known = _memo(conn)
    if known is not None:
        known[current.key] = record
    return record
