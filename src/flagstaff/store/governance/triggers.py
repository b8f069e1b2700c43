"""Incoming triggers: a secret URL per flag and environment that turns the flag off.

Meant for alerting systems (an alert fires, the feature goes dark without waiting for a
person).  The secret is shown once and stored as its SHA-256 digest, like token secrets.
Calling a trigger is a kill: audited (actor ``trigger <name> (<id>)``), streamed, and let
through an approval policy by the incident exception unless the policy removes it.  Each call
is recorded on the trigger (count, last time) and in the audit log (``trigger.fired``), also
when the flag was already off.  Revoking a trigger makes its URL answer 404.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import sqlalchemy as sa

from flagstaff.errors import Invalid, NotFound
from flagstaff.store import audit, environments, flag_writes, flags
from flagstaff.store.db import now
from flagstaff.store.governance import changes, policies
from flagstaff.store.governance.records import TriggerRecord
from flagstaff.store.governance.tables import flag_triggers
from flagstaff.store.records import FlagRecord

SECRET_PREFIX = "fst_"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _record(row: sa.Row[Any]) -> TriggerRecord:
    return TriggerRecord(
        id=row.id, flag=row.flag_key, environment=row.environment, name=row.name,
        created_at=row.created_at, created_by=row.created_by, last_fired_at=row.last_fired_at,
        fire_count=int(row.fire_count), revoked_at=row.revoked_at,
    )


def get(conn: sa.Connection, *, trigger_id: str) -> TriggerRecord:
    row = conn.execute(sa.select(flag_triggers).where(flag_triggers.c.id == trigger_id)).first()
    if row is None:
        raise NotFound(f"trigger '{trigger_id}' does not exist", details={"id": trigger_id})
    return _record(row)


def list_for(conn: sa.Connection, *, flag: str | None) -> list[TriggerRecord]:
    query = sa.select(flag_triggers).order_by(flag_triggers.c.created_at, flag_triggers.c.id)
    if flag is not None:
        query = query.where(flag_triggers.c.flag_key == flag)
    return [_record(row) for row in conn.execute(query)]


def _audit(conn: sa.Connection, *, actor: str, action: str, before: TriggerRecord | None,
           after: TriggerRecord, context: dict[str, Any] | None = None) -> None:
    audit.record(
        conn, actor=actor, action=action, target_kind="trigger", target_key=after.id,
        environment=after.environment, before=None if before is None else before.to_dict(),
        after=after.to_dict(), context=context,
    )


def create(
    conn: sa.Connection, *, flag: str, environment: str, name: Any, actor: str
) -> tuple[TriggerRecord, str]:
    if name is None:
        name = "trigger"
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        raise Invalid("name must be a string of 1 to 200 characters", details={"field": "name"})
    flag_writes.get_or_404(conn, key=flag)
    environments.get_or_404(conn, key=environment)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    trigger_id = "trg_" + secrets.token_hex(8)
    conn.execute(
        flag_triggers.insert().values(
            id=trigger_id, flag_key=flag, environment=environment, name=name,
            secret_hash=_digest(secret), created_at=now(), created_by=actor, fire_count=0,
        )
    )
    record = get(conn, trigger_id=trigger_id)
    _audit(conn, actor=actor, action="created", before=None, after=record)
    return record, secret


def revoke(conn: sa.Connection, *, trigger_id: str, actor: str) -> TriggerRecord:
    current = get(conn, trigger_id=trigger_id)
    if current.revoked_at is not None:
        return current
    conn.execute(
        flag_triggers.update().where(flag_triggers.c.id == trigger_id).values(revoked_at=now())
    )
    record = get(conn, trigger_id=trigger_id)
    _audit(conn, actor=actor, action="revoked", before=current, after=record)
    return record


def find(conn: sa.Connection, *, secret: str) -> TriggerRecord | None:
    """The live trigger for ``secret`` (None: unknown or revoked)."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    digest = _digest(secret)
    row = conn.execute(
        sa.select(flag_triggers).where(flag_triggers.c.secret_hash == digest)
    ).first()
    if row is None or not hmac.compare_digest(row.secret_hash, digest) or row.revoked_at:
        return None
    return _record(row)


def fire(conn: sa.Connection, *, secret: str) -> tuple[TriggerRecord, FlagRecord]:
    """Turn the trigger's flag off in its environment (a no-op write if it is off already)."""
    trigger = find(conn, secret=secret)
    if trigger is None:
        raise NotFound("no such trigger (unknown or revoked)")
    environments.get_or_404(conn, key=trigger.environment)

    def kill(current: FlagRecord) -> tuple[dict[str, Any], str]:
        definition = flags.pure(current.definition)
        configs = definition.setdefault("environments", {})
        if trigger.environment in configs:
            configs[trigger.environment]["enabled"] = False
        return flag_writes.normalise(definition, key=current.key), current.state

    record, audit_id = flag_writes.write_audited(
        conn, key=trigger.flag,
        actor=changes.actor_label(f"trigger {trigger.name} ({trigger.id})"),
        if_match=None, action="killed", change=kill, environment=trigger.environment,
        review=policies.Review(frozenset(), {"trigger": trigger.id}),
    )
    conn.execute(
        flag_triggers.update()
        .where(flag_triggers.c.id == trigger.id)
        .values(last_fired_at=now(), fire_count=flag_triggers.c.fire_count + 1)
    )
    fired = get(conn, trigger_id=trigger.id)
    _audit(conn, actor=f"trigger {trigger.id}", action="fired", before=trigger, after=fired,
           context={"audit_id": audit_id, "version": record.version, "changed": audit_id is not None})
    return fired, record
