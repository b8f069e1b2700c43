"""Segments: rows plus audited writes (runs inside the caller's write transaction).

Segments are global.  Snapshots and change events carry the canonical segment definition (the
engine's input, no server fields); API records add ``version`` and timestamps.  Deleting a
segment that any flag (active or archived) or segment references is refused, so a restore can
never resurrect a dangling reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from flagstaff.engine import DefinitionError, segment_references, validate_segment
from flagstaff.errors import Conflict, Invalid, NotFound, PreconditionFailed
from flagstaff.store import audit, changelog, references
from flagstaff.store.db import now
from flagstaff.store.paging import check_limit, decode_cursor, encode_cursor
from flagstaff.store.records import Page, SegmentRecord
from flagstaff.store.schema import segments

_SERVER_FIELDS = ("version", "created_at", "updated_at")


def _record(row: sa.Row[Any]) -> SegmentRecord:
    return SegmentRecord(
        key=row.key,
        version=int(row.version),
        created_at=row.created_at,
        updated_at=row.updated_at,
        definition=dict(row.definition),
    )


def get(conn: sa.Connection, *, key: str) -> SegmentRecord | None:
    row = conn.execute(sa.select(segments).where(segments.c.key == key)).first()
    return None if row is None else _record(row)


def get_or_404(conn: sa.Connection, *, key: str) -> SegmentRecord:
    record = get(conn, key=key)
    if record is None:
        raise NotFound(f"segment '{key}' does not exist", details={"key": key})
    return record


def all_segments(conn: sa.Connection) -> list[SegmentRecord]:
    return [_record(row) for row in conn.execute(sa.select(segments).order_by(segments.c.key))]


def list_page(conn: sa.Connection, *, limit: int, cursor: str | None) -> Page[SegmentRecord]:
    limit = check_limit(limit)
    query = sa.select(segments).order_by(segments.c.key).limit(limit + 1)
    if cursor is not None:
        query = query.where(segments.c.key > decode_cursor(cursor, expected=str))
    rows = conn.execute(query).all()
    items = [_record(row) for row in rows[:limit]]
    return Page(
        items=items, next_cursor=encode_cursor(items[-1].key) if len(rows) > limit else None
    )


def normalise(definition: Any, *, key: str | None = None) -> dict[str, Any]:
    if not isinstance(definition, Mapping):
        raise Invalid("a segment definition must be a JSON object", details={"field": ""})
    raw = {k: v for k, v in definition.items() if k not in _SERVER_FIELDS}
    if key is not None and raw.setdefault("key", key) != key:
        raise Invalid(
            f"the key of a segment cannot be changed (is '{key}')", details={"field": "key"}
        )
    try:
        clean = validate_segment(raw)
    except DefinitionError as exc:
        raise Invalid(exc.message, details={"field": exc.path}) from exc
    return {k: v for k, v in clean.items() if k not in _SERVER_FIELDS}


def _prepare(conn: sa.Connection, clean: dict[str, Any]) -> list[tuple[str, str]]:
    keys = segment_references(clean)
    references.check_segment_references(conn, clean, segment_keys=keys)
    return [("segment", k) for k in keys]


def _log(
    conn: sa.Connection,
    *,
    actor: str,
    action: str,
    event: str,
    key: str,
    before: SegmentRecord | None,
    after: SegmentRecord | None,
) -> None:
    event_id = changelog.append(
        conn, type=event, kind="segment", key=key, data=None if after is None else after.definition
    )
    audit.record(
        conn,
        actor=actor,
        action=action,
        target_kind="segment",
        target_key=key,
        before=None if before is None else before.to_dict(),
        after=None if after is None else after.to_dict(),
        diff=audit.structural_diff(
            {} if before is None else before.definition, {} if after is None else after.definition
        ),
        event_id=event_id,
    )


def create(conn: sa.Connection, *, definition: Any, actor: str) -> SegmentRecord:
    clean = normalise(definition)
    key = clean["key"]
    if get(conn, key=key) is not None:
        raise Conflict(
            f"segment '{key}' already exists",
            code="segment_exists",
            details={"field": "key", "key": key},
        )
    targets = _prepare(conn, clean)
    at = now()
    conn.execute(
        segments.insert().values(key=key, version=1, definition=clean, created_at=at, updated_at=at)
    )
    references.replace_refs(conn, kind="segment", key=key, targets=targets)
    record = get_or_404(conn, key=key)
    _log(
        conn,
        actor=actor,
        action="created",
        event="segment_created",
        key=key,
        before=None,
        after=record,
    )
    return record


def replace(
    conn: sa.Connection, *, key: str, definition: Any, actor: str, if_match: int | None
) -> SegmentRecord:
    current = get_or_404(conn, key=key)
    if if_match is not None and if_match != current.version:
        raise PreconditionFailed(
            f"'{key}' is at version {current.version}, not {if_match}",
            details={"current_version": current.version, "if_match": if_match},
        )
    clean = normalise(definition, key=key)
    if audit.same_json(clean, current.definition):
        return current
    targets = _prepare(conn, clean)
    conn.execute(
        segments.update()
        .where(segments.c.key == key)
        .values(definition=clean, version=current.version + 1, updated_at=now())
    )
    references.replace_refs(conn, kind="segment", key=key, targets=targets)
    record = get_or_404(conn, key=key)
    _log(
        conn,
        actor=actor,
        action="updated",
        event="segment_updated",
        key=key,
        before=current,
        after=record,
    )
    return record


def delete(conn: sa.Connection, *, key: str, actor: str) -> None:
    current = get_or_404(conn, key=key)
    users = [
        f"{kind} '{source}'"
        for kind, source in references.referrers(conn, target_kind="segment", target_key=key)
        if (kind, source) != ("segment", key)
    ]
    if users:
        raise Conflict(
            f"segment '{key}' is used by {', '.join(users)}", details={"referenced_by": users}
        )
    conn.execute(segments.delete().where(segments.c.key == key))
    references.replace_refs(conn, kind="segment", key=key, targets=[])
    _log(
        conn,
        actor=actor,
        action="deleted",
        event="segment_deleted",
        key=key,
        before=current,
        after=None,
    )
