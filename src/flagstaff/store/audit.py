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
) -> int:
    """Insert one audit record in the caller's transaction; returns its id."""
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
        )
    )
    primary_key = result.inserted_primary_key
    assert primary_key is not None
    return int(primary_key[0])


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
    limit: int = 50,
    cursor: str | None = None,
) -> Page[AuditRecord]:
    """Chronological (oldest first) page of audit records matching every given filter."""
    limit = check_limit(limit)
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise Invalid(f"{name} must include a timezone", details={"field": name})
    query = sa.select(audit_log).order_by(audit_log.c.id).limit(limit + 1)
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
        query = query.where(audit_log.c.id > decode_cursor(cursor, expected=int))
    rows = conn.execute(query).all()
    items = [_to_record(row) for row in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor)
