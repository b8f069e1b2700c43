"""The audit log: who changed what, when, with the state before, after and a readable diff.

``structural_diff`` walks two JSON documents and lists each changed leaf as
``{"path": "environments.production.enabled", "op": "replace", "old": false, "new": true}``.
Objects are compared key by key and lists of objects index by index (so a changed rule shows
as ``rules[1].serve.variant``); lists of scalars (tags, target values) change as one value,
which reads better than a shifted list of per-index replacements.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from flagstaff.errors import Invalid
from flagstaff.store.db import now
from flagstaff.store.governance import outbox
from flagstaff.store.paging import check_limit, decode_cursor, encode_cursor
from flagstaff.store.records import AuditRecord, Page
from flagstaff.store.schema import audit_log


def same_json(a: Any, b: Any) -> bool:
    """Equality that, unlike ``==``, tells ``1`` from ``1.0`` and ``true`` from ``1``."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def structural_diff(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    if same_json(before, after):
        return []
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[dict[str, Any]] = []
        for key, old in before.items():
            if key not in after:
                changes.append({"path": _join(path, key), "op": "remove", "old": old, "new": None})
            else:
                changes.extend(structural_diff(old, after[key], _join(path, key)))
        for key, new in after.items():
            if key not in before:
                changes.append({"path": _join(path, key), "op": "add", "old": None, "new": new})
        return changes
    if (
        isinstance(before, list)
        and isinstance(after, list)
        and any(isinstance(item, dict) for item in before + after)
    ):
        changes = []
        for index in range(max(len(before), len(after))):
            item_path = f"{path}[{index}]"
            if index >= len(after):
                changes.append(
                    {"path": item_path, "op": "remove", "old": before[index], "new": None}
                )
            elif index >= len(before):
                changes.append({"path": item_path, "op": "add", "old": None, "new": after[index]})
            else:
                changes.extend(structural_diff(before[index], after[index], item_path))
        return changes
    return [{"path": path, "op": "replace", "old": before, "new": after}]


def record(
    conn: sa.Connection,
    *,
    actor: str,
    action: str,
    target_kind: str,
    target_key: str,
    before: Any,
    after: Any,
    diff: list[dict[str, Any]] | None = None,
    environment: str | None = None,
    event_id: int | None = None,
    context: dict[str, Any] | None = None,
) -> int:
    """Insert one audit record in the caller's transaction; returns its id.

    ``event_id`` is the change event the same write appended, if any (SDKs see that one).
    The webhook deliveries the record calls for are queued in the same transaction (the
    outbox), so a committed change is never without its notifications, nor the reverse.
    """
    if diff is None:
        diff = structural_diff(
            before if before is not None else {}, after if after is not None else {}
        )
    result = conn.execute(
        audit_log.insert().values(
            created_at=now(),
            actor=actor,
            action=action,
            target_kind=target_kind,
            target_key=target_key,
            environment=environment,
            before=before,
            after=after,
            diff=diff,
            event_id=event_id,
            context=context or None,
        )
    )
    primary_key = result.inserted_primary_key
    assert primary_key is not None
    audit_id = int(primary_key[0])
    outbox.enqueue(
        conn,
        audit_id=audit_id,
        actor=actor,
        action=action,
        target_kind=target_kind,
        target_key=target_key,
        environment=environment,
        before=before,
        after=after,
        diff=diff,
        context=context or None,
    )
    return audit_id


def flag_version(conn: sa.Connection, *, key: str, version: int) -> dict[str, Any] | None:
    """The definition a flag had at ``version`` (the ``after`` of the write that made it)."""
    rows = conn.execute(
        sa.select(audit_log.c.after)
        .where(audit_log.c.target_kind == "flag", audit_log.c.target_key == key)
        .order_by(audit_log.c.id.desc())
    )
    for (after,) in rows:
        if isinstance(after, dict) and after.get("version") == version:
            return after
    return None


def _touches_environment(environment: str) -> sa.ColumnElement[bool]:
    """Records of one environment: its toggles and kills, and whole-flag writes (a replaced
    or patched definition) whose diff changes that environment's configuration."""
    escaped = environment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    diff_text = sa.cast(audit_log.c.diff, sa.Text)
    return sa.or_(
        audit_log.c.environment == environment,
        sa.and_(
            audit_log.c.environment.is_(None),
            sa.or_(
                diff_text.like(f'%"environments.{escaped}"%', escape="\\"),
                diff_text.like(f'%"environments.{escaped}.%', escape="\\"),
                diff_text.like(f'%"environments.{escaped}[%', escape="\\"),
            ),
        ),
    )


def _to_record(row: sa.Row[Any]) -> AuditRecord:
    return AuditRecord(
        id=int(row.id),
        created_at=row.created_at,
        actor=row.actor,
        action=row.action,
        target_kind=row.target_kind,
        target_key=row.target_key,
        environment=row.environment,
        before=row.before,
        after=row.after,
        diff=list(row.diff or []),
        event_id=None if row.event_id is None else int(row.event_id),
        context=row.context,
    )


def list_audit(
    conn: sa.Connection,
    *,
    target_kind: str | None = None,
    target_key: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    environment: str | None = None,
    newest_first: bool = False,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[AuditRecord]:
    """A page of audit records matching every given filter, oldest first (or newest first)."""
    limit = check_limit(limit)
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise Invalid(f"{name} must include a timezone", details={"field": name})
    order = audit_log.c.id.desc() if newest_first else audit_log.c.id
    query = sa.select(audit_log).order_by(order).limit(limit + 1)
    if environment is not None:
        query = query.where(_touches_environment(environment))
    for column, value in (
        (audit_log.c.target_kind, target_kind),
        (audit_log.c.target_key, target_key),
        (audit_log.c.actor, actor),
        (audit_log.c.action, action),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(audit_log.c.created_at >= since)
    if until is not None:
        query = query.where(audit_log.c.created_at < until)
    if cursor is not None:
        after = decode_cursor(cursor, expected=int)
        query = query.where(audit_log.c.id < after if newest_first else audit_log.c.id > after)
    rows = conn.execute(query).all()
    items = [_to_record(row) for row in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor)
