"""The webhook outbox: deliveries queued in the transaction of the change they report.

:func:`enqueue` runs inside :func:`flagstaff.store.audit.record`, so every audited change (a flag
write, a schedule failing, a change request approved ...) queues one delivery per matching,
active subscription before its transaction commits: a change is never committed without its
notifications, and a rolled-back change sends none.  The dispatcher
(:mod:`flagstaff.store.governance.deliveries` and the server's worker) sends them later.

An event's name is ``<target kind>.<action>`` (``flag.killed``, ``schedule.failed``,
``change_request.approved``, ``token.created``); subscriptions filter by name pattern
(``flag.*``, ``*``), flag key, environment and flag tag.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from flagstaff.store import shared_reads
from flagstaff.store.db import now
from flagstaff.store.governance.tables import webhook_deliveries, webhooks
from flagstaff.store.records import iso
from flagstaff.store.schema import flag_tags


def event_name(target_kind: str, action: str) -> str:
    """``("token", "token_created")`` -> ``token.created``; ``("flag", "killed")`` -> ``flag.killed``."""
    prefix = f"{target_kind}_"
    return f"{target_kind}.{action.removeprefix(prefix)}"


def matches_pattern(patterns: Iterable[str], event: str) -> bool:
    for pattern in patterns:
        if pattern in ("*", event):
            return True
        if pattern.endswith(".*") and event.startswith(pattern[:-1]):
            return True
    return False


def flag_of(target_kind: str, target_key: str, before: Any, after: Any) -> str | None:
    """The flag an event concerns: the target itself, or the flag a schedule, change request or
    trigger names."""
    if target_kind == "flag":
        return target_key
    for state in (after, before):
        if isinstance(state, dict) and isinstance(state.get("flag"), str):
            return str(state["flag"])
    return None


def _tags(conn: sa.Connection, flag: str, before: Any, after: Any, target_kind: str) -> set[str]:
    if target_kind == "flag":
        tags: set[str] = set()
        for state in (before, after):
            if isinstance(state, dict):
                tags.update(t for t in state.get("tags") or [] if isinstance(t, str))
        return tags
    rows = conn.execute(sa.select(flag_tags.c.tag).where(flag_tags.c.flag_key == flag))
    return set(rows.scalars())


def _active(conn: sa.Connection) -> Sequence[Any]:
    return conn.execute(
        sa.select(
            webhooks.c.id, webhooks.c.events, webhooks.c.flags, webhooks.c.environments,
            webhooks.c.tags,
        ).where(webhooks.c.active.is_(True))
    ).all()


def enqueue(
    conn: sa.Connection,
    *,
    audit_id: int,
    actor: str,
    action: str,
    target_kind: str,
    target_key: str,
    environment: str | None,
    before: Any,
    after: Any,
    diff: list[dict[str, Any]],
    context: dict[str, Any] | None,
) -> int:
    """Queue a delivery for every active subscription the event matches; returns how many."""
    subscriptions = shared_reads.memo(conn, "webhook_subscriptions", lambda: _active(conn))
    if not subscriptions:
        return 0
    event = event_name(target_kind, action)
    flag = flag_of(target_kind, target_key, before, after)
    tags: set[str] | None = None
    chosen: list[int] = []
    for sub in subscriptions:
        if not matches_pattern(sub.events or ["*"], event):
            continue
        if sub.flags and flag not in sub.flags:
            continue
        if sub.environments and environment not in sub.environments:
            continue
        if sub.tags:
            if flag is None:
                continue
            if tags is None:
                tags = _tags(conn, flag, before, after, target_kind)
            if not tags.intersection(sub.tags):
                continue
        chosen.append(int(sub.id))
    if not chosen:
        return 0
    moment = now()
    version = after.get("version") if isinstance(after, dict) and target_kind == "flag" else None
    payload = {
        "event": event,
        "audit_id": audit_id,
        "created_at": iso(moment),
        "actor": actor,
        "target": {"kind": target_kind, "key": target_key},
        "flag": flag,
        "environment": environment,
        "version": version,
        "diff": diff,
        "context": context,
    }
    conn.execute(
        webhook_deliveries.insert(),
        [
            {
                "webhook_id": webhook_id, "event": event, "audit_id": audit_id,
                "payload": payload, "status": "pending", "attempts": 0, "created_at": moment,
                "next_attempt_at": moment,
            }
            for webhook_id in chosen
        ],
    )
    return len(chosen)
