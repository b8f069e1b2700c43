"""What browsers may do in an environment: allowed origins and secure mode (inside the
caller's transaction).

An environment without a row allows no origin and has secure mode off.  The secure-mode
secret is the HMAC key an application's back end signs context keys with
(:func:`flagstaff.secure_mode.secure_mode_hash`); it is created the first time it is asked
for, never written to the audit log or the change log, and can be rotated.  Every change of
the settings is audited and appends an ``environment_updated`` change event (without the
secret) so that every replica's origin policy follows.
"""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa

from flagstaff.browser.origins import normalise_origin
from flagstaff.errors import Invalid
from flagstaff.store import audit, changelog, environments
from flagstaff.store.db import now
from flagstaff.store.records import ClientAccessRecord
from flagstaff.store.schema import environment_client_access as table

MAX_ORIGINS = 100


def _origins(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise Invalid("allowed_origins must be a list of origins", details={"field": "allowed_origins"})
    if len(value) > MAX_ORIGINS:
        raise Invalid(f"allowed_origins: at most {MAX_ORIGINS} origins",
                      details={"field": "allowed_origins"})
    out: list[str] = []
    for i, item in enumerate(value):
        origin = normalise_origin(item, f"allowed_origins[{i}]")
        if origin not in out:
            out.append(origin)
    return out


def _record(environment: str, row: sa.Row[Any] | None) -> ClientAccessRecord:
    if row is None:
        return ClientAccessRecord(environment=environment, allowed_origins=(), secure_mode=False,
                                  secure_mode_secret=None)
    return ClientAccessRecord(
        environment=environment,
        allowed_origins=tuple(row.allowed_origins or ()),
        secure_mode=bool(row.secure_mode),
        secure_mode_secret=row.secure_mode_secret,
    )


def get(conn: sa.Connection, *, environment: str) -> ClientAccessRecord:
    environments.get_or_404(conn, key=environment)
    row = conn.execute(sa.select(table).where(table.c.environment == environment)).first()
    return _record(environment, row)


def list_all(conn: sa.Connection) -> list[ClientAccessRecord]:
    """Every environment's settings (environments without a row get the defaults)."""
    rows = {row.environment: row for row in conn.execute(sa.select(table))}
    return [_record(env.key, rows.get(env.key)) for env in environments.list_all(conn)]


def _save(conn: sa.Connection, record: ClientAccessRecord, *, existed: bool) -> None:
    values = {
        "allowed_origins": list(record.allowed_origins),
        "secure_mode": record.secure_mode,
        "secure_mode_secret": record.secure_mode_secret,
        "updated_at": now(),
    }
    if existed:
        conn.execute(table.update().where(table.c.environment == record.environment).values(**values))
    else:
        conn.execute(table.insert().values(environment=record.environment, **values))


def _exists(conn: sa.Connection, environment: str) -> bool:
    return conn.execute(
        sa.select(table.c.environment).where(table.c.environment == environment)
    ).first() is not None


def _changed(conn: sa.Connection, *, before: ClientAccessRecord, after: ClientAccessRecord,
             actor: str, action: str) -> None:
    audit.record(
        conn, actor=actor, action=action, target_kind="environment",
        target_key=after.environment, environment=after.environment,
        before=before.to_dict(), after=after.to_dict(),
    )
    changelog.append(conn, type="environment_updated", kind="environment",
                     key=after.environment, data=after.to_dict())


def update(
    conn: sa.Connection, *, environment: str, allowed_origins: Any = None, secure_mode: Any = None,
    actor: str,
) -> ClientAccessRecord:
    """Set the origins and/or secure mode (``None`` leaves a setting as it is)."""
    before = get(conn, environment=environment)
    origins = before.allowed_origins if allowed_origins is None else tuple(_origins(allowed_origins))
    if secure_mode is not None and not isinstance(secure_mode, bool):
        raise Invalid("secure_mode must be true or false", details={"field": "secure_mode"})
    secure = before.secure_mode if secure_mode is None else secure_mode
    secret = before.secure_mode_secret
    if secure and secret is None:
        secret = new_secret()
    after = ClientAccessRecord(environment=environment, allowed_origins=origins,
                               secure_mode=secure, secure_mode_secret=secret)
    if after == before:
        return before
    _save(conn, after, existed=_exists(conn, environment))
    _changed(conn, before=before, after=after, actor=actor, action="updated")
    return after


def new_secret() -> str:
    return "fsh_" + secrets.token_urlsafe(32)


def secret(conn: sa.Connection, *, environment: str, rotate: bool, actor: str) -> str:
    """The environment's secure-mode secret, created on first use; ``rotate`` replaces it
    (signatures made with the old one stop working at once)."""
    before = get(conn, environment=environment)
    if before.secure_mode_secret is not None and not rotate:
        return before.secure_mode_secret
    after = ClientAccessRecord(environment=environment, allowed_origins=before.allowed_origins,
                               secure_mode=before.secure_mode, secure_mode_secret=new_secret())
    _save(conn, after, existed=_exists(conn, environment))
    audit.record(
        conn, actor=actor,
        action="secret_rotated" if before.secure_mode_secret else "secret_created",
        target_kind="environment", target_key=environment, environment=environment,
        before=None, after=None, diff=[{"path": "secure_mode_secret", "op": "replace",
                                        "old": None, "new": None}],
    )
    changelog.append(conn, type="environment_updated", kind="environment", key=environment,
                     data=after.to_dict())
    assert after.secure_mode_secret is not None
    return after.secure_mode_secret
