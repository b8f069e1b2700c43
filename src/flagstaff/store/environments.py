"""Environments: create, list and delete (inside the caller's write transaction).

Deleting an environment removes its configuration from every flag that has one (each such
flag gets a new version, an ``updated`` audit record and a ``flag_updated`` event) and revokes
the SDK keys bound to it, all in the same transaction.  The last environment cannot be
deleted.  The defaults are created by the initial migration, so a deleted default stays
deleted across restarts.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from flagstaff.errors import Conflict, Invalid, NotFound
from flagstaff.store import audit, changelog, flag_writes, flags, shared_reads, tokens
from flagstaff.store.db import now
from flagstaff.store.governance import policies
from flagstaff.store.records import EnvironmentRecord
from flagstaff.store.schema import environments

KEY_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


def _record(row: sa.Row[Any]) -> EnvironmentRecord:
    return EnvironmentRecord(key=row.key, name=row.name, created_at=row.created_at)


def get(conn: sa.Connection, *, key: str) -> EnvironmentRecord | None:
    if shared_reads.active(conn):
        # A batch of writes asks about the same few environments: read them all once.
        known = shared_reads.memo(conn, "environments", lambda: {r.key: r for r in list_all(conn)})
        return known.get(key)
    row = conn.execute(sa.select(environments).where(environments.c.key == key)).first()
    return None if row is None else _record(row)


def get_or_404(conn: sa.Connection, *, key: str) -> EnvironmentRecord:
    record = get(conn, key=key)
    if record is None:
        raise NotFound(f"environment '{key}' does not exist", details={"environment": key})
    return record


def list_all(conn: sa.Connection) -> list[EnvironmentRecord]:
    rows = conn.execute(
        sa.select(environments).order_by(environments.c.created_at, environments.c.key)
    )
    return [_record(row) for row in rows]


def create(conn: sa.Connection, *, key: Any, name: Any, actor: str) -> EnvironmentRecord:
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        raise Invalid(
            "environment key must match ^[a-z0-9][a-z0-9._-]{0,127}$", details={"field": "key"}
        )
    if name is None:
        name = key
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        raise Invalid("name must be a string of 1 to 200 characters", details={"field": "name"})
    if get(conn, key=key) is not None:
        raise Conflict(
            f"environment '{key}' already exists",
            code="environment_exists",
            details={"field": "key", "key": key},
        )
    conn.execute(environments.insert().values(key=key, name=name, created_at=now()))
    record = get_or_404(conn, key=key)
    audit.record(
        conn,
        actor=actor,
        action="created",
        target_kind="environment",
        target_key=key,
        before=None,
        after=record.to_dict(),
    )
    changelog.append(
        conn, type="environment_created", kind="environment", key=key, data=record.to_dict()
    )
    return record


def delete(conn: sa.Connection, *, key: str, actor: str) -> None:
    current = get_or_404(conn, key=key)
    count = conn.execute(sa.select(sa.func.count()).select_from(environments)).scalar_one()
    if count <= 1:
        raise Conflict(f"environment '{key}' is the last one and cannot be deleted")
    # Deleting the environment removes its configuration from every flag: that is the admin's
    # decision about the environment, not a change a policy of the environment reviews.
    removal = policies.Review(frozenset({key}), {"environment_deleted": key})
    policies.drop(conn, environment=key)
    for flag in flags.with_environment(conn, environment=key):

        def without_env(current_flag: Any) -> tuple[dict[str, Any], str]:
            definition = flags.pure(current_flag.definition)
            definition["environments"].pop(key, None)
            return definition, current_flag.state

        flag_writes.write(
            conn,
            key=flag.key,
            actor=actor,
            if_match=None,
            action="updated",
            change=without_env,
            environment=key,
            allow_archived=True,
            review=removal,
        )
    # The deletion's event goes first: streams of the environment's keys hear why they end
    # before the revocations that follow close them.
    changelog.append(conn, type="environment_deleted", kind="environment", key=key, data=None)
    tokens.revoke_for_environment(conn, environment=key, actor=actor)
    conn.execute(environments.delete().where(environments.c.key == key))
    audit.record(
        conn,
        actor=actor,
        action="deleted",
        target_kind="environment",
        target_key=key,
        before=current.to_dict(),
        after=None,
    )
