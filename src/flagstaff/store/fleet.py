"""The fleet view's storage: one row per (SDK key, instance), the last thing it reported.

Reports reach any replica; each replica coalesces what it hears and writes it here in one
batch per flush interval, so every replica reads the same view and a restart loses nothing
(docs/relay.md, "The fleet view").  Rows are keyed by the reporting key's token id as well as the
instance id: a report can only ever touch rows of the key that sent it.

The view is read as a histogram (instances per environment, kind and applied version, with how
many have gone quiet), which stays a handful of rows however large the fleet; the arithmetic is
in :mod:`flagstaff.fleet.convergence`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from flagstaff.errors import Invalid
from flagstaff.fleet import Report, VersionCount
from flagstaff.store.paging import check_limit, decode_cursor, encode_cursor
from flagstaff.store.records import Page
from flagstaff.store.schema import audit_log, change_events, fleet_instances, tokens

# Kinds of change event that reach SDKs in every environment (docs/streaming.md); others
# (environments created, tokens) never move an SDK's version.
SDK_EVENT_KINDS = ("flag", "segment")
STATUSES = ("current", "behind", "stale")
# Rows per multi-row upsert: 12 columns x 1,000 rows stays within both backends' parameter limits.
ROWS_PER_STATEMENT = 1_000


@dataclass(frozen=True, slots=True)
class Heard:
    """One report as a replica heard it: who sent it (the key) and when."""

    token_id: str
    environment: str
    report: Report
    at_ms: int


def record(conn: sa.Connection, *, heard: list[Heard]) -> None:
    """Upsert the latest report of each instance; forget instances that said they left."""
    latest: dict[tuple[str, str], Heard] = {}
    for item in heard:  # in arrival order: the last word of an instance wins
        latest[(item.token_id, item.report.instance)] = item
    gone = [key for key, item in latest.items() if item.report.left]
    rows = [_row(item) for item in latest.values() if not item.report.left]
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        conn.execute(_upsert(conn), rows[start:start + ROWS_PER_STATEMENT])
    for token_id, instance in gone:
        conn.execute(
            fleet_instances.delete()
            .where(fleet_instances.c.token_id == token_id)
            .where(fleet_instances.c.instance == instance)
        )


def _row(item: Heard) -> dict[str, Any]:
    report = item.report
    return {
        "token_id": item.token_id, "instance": report.instance, "environment": item.environment,
        "kind": report.kind, "version": report.version, "version_since_ms": item.at_ms,
        "first_seen_ms": item.at_ms, "last_seen_ms": item.at_ms, "sdk": report.sdk,
        "host": report.host, "pid": report.pid, "via": report.via,
    }


def _upsert(conn: sa.Connection) -> Any:
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = module.insert(fleet_instances)
    new, old = statement.excluded, fleet_instances.c
    return statement.on_conflict_do_update(
        index_elements=["token_id", "instance"],
        set_={
            "environment": new.environment,
            "kind": new.kind,
            "version": new.version,
            # When it reached this version: kept while the version does not move.
            "version_since_ms": sa.case(
                (old.version.is_not_distinct_from(new.version), old.version_since_ms),
                else_=new.version_since_ms,
            ),
            "last_seen_ms": new.last_seen_ms,
            # Header reports carry no description; keep the one the instance gave before.
            "sdk": sa.func.coalesce(new.sdk, old.sdk),
            "host": sa.func.coalesce(new.host, old.host),
            "pid": sa.func.coalesce(new.pid, old.pid),
            "via": new.via,
        },
    )


def histogram(
    conn: sa.Connection, *, heard_since_ms: int, stale_before_ms: int,
    environment: str | None = None,
) -> list[VersionCount]:
    """Instances heard from since ``heard_since_ms``, per environment, kind and version."""
    c = fleet_instances.c
    stale = sa.func.sum(sa.case((c.last_seen_ms < stale_before_ms, 1), else_=0))
    query = (
        sa.select(c.environment, c.kind, c.version, sa.func.count().label("n"),
                  stale.label("stale"), sa.func.min(c.first_seen_ms).label("first"),
                  sa.func.max(c.last_seen_ms).label("last"))
        .where(c.last_seen_ms >= heard_since_ms)
        .group_by(c.environment, c.kind, c.version)
    )
    if environment is not None:
        query = query.where(c.environment == environment)
    return [
        VersionCount(environment=row.environment, kind=row.kind,
                     version=None if row.version is None else int(row.version),
                     instances=int(row.n), stale=int(row.stale or 0),
                     first_heard_ms=int(row.first), last_heard_ms=int(row.last))
        for row in conn.execute(query)
    ]


def instances(
    conn: sa.Connection,
    *,
    heard_since_ms: int,
    stale_before_ms: int,
    target: int,
    environment: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[dict[str, Any]]:
    """One page of instances (ordered by key and instance id) with the key's name."""
    check_limit(limit)
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}", details={"field": "status"})
    c = fleet_instances.c
    query = (
        sa.select(fleet_instances, tokens.c.name.label("token_name"))
        .select_from(fleet_instances.outerjoin(tokens, tokens.c.id == c.token_id))
        .where(c.last_seen_ms >= heard_since_ms)
        .order_by(c.token_id, c.instance)
        .limit(limit + 1)
    )
    if environment is not None:
        query = query.where(c.environment == environment)
    if kind is not None:
        query = query.where(c.kind == kind)
    if status == "current":
        query = query.where(c.version >= target)
    elif status == "behind":
        query = query.where(sa.or_(c.version.is_(None), c.version < target))
    elif status == "stale":
        query = query.where(c.last_seen_ms < stale_before_ms)
    if cursor is not None:
        position = decode_cursor(cursor, expected=list)
        if len(position) != 2 or not all(isinstance(p, str) for p in position):
            raise Invalid("cursor is not valid", details={"field": "cursor"})
        query = query.where(sa.tuple_(c.token_id, c.instance) > tuple(position))
    rows = conn.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {
            "instance": row.instance, "kind": row.kind, "environment": row.environment,
            "version": row.version, "current": row.version is not None and row.version >= target,
            "stale": row.last_seen_ms < stale_before_ms,
            "key": {"id": row.token_id, "name": row.token_name},
            "sdk": row.sdk, "host": row.host, "pid": row.pid, "via": row.via,
            "first_heard_ms": row.first_seen_ms, "last_heard_ms": row.last_seen_ms,
            "version_since_ms": row.version_since_ms,
        }
        for row in rows
    ]
    next_cursor = encode_cursor([rows[-1].token_id, rows[-1].instance]) if more else None
    return Page(items=items, next_cursor=next_cursor)


def forget(conn: sa.Connection, *, heard_before_ms: int) -> int:
    """Delete instances not heard from since ``heard_before_ms``; returns how many."""
    result = conn.execute(
        fleet_instances.delete().where(fleet_instances.c.last_seen_ms < heard_before_ms)
    )
    return int(result.rowcount or 0)


def sdk_version(conn: sa.Connection) -> int:
    """The id of the latest change that reaches SDKs: an instance at or past it is current.

    Walks the primary key backwards and stops at the first flag or segment event.  When
    retention has pruned every such event, anything at or past the oldest retained event's
    predecessor has applied them all (conservative: an instance whose version predates that
    may still be current, and is then shown as behind).
    """
    c = change_events.c
    found = conn.execute(
        sa.select(c.id).where(c.kind.in_(SDK_EVENT_KINDS)).order_by(c.id.desc()).limit(1)
    ).scalar()
    if found is not None:
        return int(found)
    oldest = conn.execute(sa.select(sa.func.min(c.id))).scalar()
    return 0 if oldest is None else int(oldest) - 1


def latest_event_of(conn: sa.Connection, *, target_kind: str, target_key: str) -> int | None:
    """The change event of the newest audited write to one flag or segment (None: unknown)."""
    a = audit_log.c
    found = conn.execute(
        sa.select(a.event_id)
        .where(a.target_kind == target_kind, a.target_key == target_key, a.event_id.is_not(None))
        .order_by(a.id.desc())
        .limit(1)
    ).scalar()
    return None if found is None else int(found)
