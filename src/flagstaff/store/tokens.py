"""API tokens: management tokens with roles and SDK keys bound to one environment.

Secrets are ``fsm_``/``fss_``/``fsc_`` + 32 random bytes (urlsafe), shown once and stored only
as their SHA-256 hex digest.  Lookup is by digest, confirmed with ``hmac.compare_digest``.
``last_used_at`` is written at most once a minute per token so that authenticating a busy SDK
key does not turn every request into a database write.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from flagstaff.errors import Invalid, NotFound
from flagstaff.store import audit, changelog
from flagstaff.store.db import now
from flagstaff.store.records import TokenRecord
from flagstaff.store.schema import environments, tokens

KINDS = {"management": "fsm_", "sdk-server": "fss_", "sdk-client": "fsc_"}
ROLES = ("admin", "editor", "viewer")
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(kind: str) -> str:
    return KINDS[kind] + secrets.token_urlsafe(32)


def _record(row: sa.Row[Any]) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        name=row.name,
        kind=row.kind,
        role=row.role,
        environment=row.environment,
        created_at=row.created_at,
        created_by=row.created_by,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def _check(conn: sa.Connection, *, name: Any, kind: Any, role: Any, environment: Any) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        raise Invalid("name must be a string of 1 to 200 characters", details={"field": "name"})
    if kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}", details={"field": "kind"})
    if kind == "management":
        if role not in ROLES:
            raise Invalid(
                f"a management token needs a role: {', '.join(ROLES)}", details={"field": "role"}
            )
        if environment is not None:
            raise Invalid(
                "management tokens are not bound to an environment",
                details={"field": "environment"},
            )
        return
    if role is not None:
        raise Invalid("SDK keys have no role", details={"field": "role"})
    exists = (
        isinstance(environment, str)
        and conn.execute(
            sa.select(environments.c.key).where(environments.c.key == environment)
        ).first()
    )
    if not exists:
        raise Invalid(
            "an SDK key must name an existing environment", details={"field": "environment"}
        )


def create(
    conn: sa.Connection,
    *,
    name: Any,
    kind: Any,
    role: Any = None,
    environment: Any = None,
    actor: str,
    secret: str | None = None,
) -> tuple[TokenRecord, str]:
    _check(conn, name=name, kind=kind, role=role, environment=environment)
    if secret is None:
        secret = new_secret(kind)
    elif not isinstance(secret, str) or len(secret) < 16:
        raise Invalid(
            "a given secret must have at least 16 characters", details={"field": "secret"}
        )
    token_id = "tok_" + secrets.token_hex(8)
    conn.execute(
        tokens.insert().values(
            id=token_id,
            name=name,
            kind=kind,
            role=role,
            environment=environment,
            secret_hash=hash_secret(secret),
            created_at=now(),
            created_by=actor,
        )
    )
    record = get_or_404(conn, token_id=token_id)
    audit.record(
        conn,
        actor=actor,
        action="token_created",
        target_kind="token",
        target_key=token_id,
        environment=environment,
        before=None,
        after=record.to_dict(),
    )
    return record, secret


def get_or_404(conn: sa.Connection, *, token_id: str) -> TokenRecord:
    row = conn.execute(sa.select(tokens).where(tokens.c.id == token_id)).first()
    if row is None:
        raise NotFound(f"token '{token_id}' does not exist", details={"id": token_id})
    return _record(row)


def list_all(conn: sa.Connection) -> list[TokenRecord]:
    rows = conn.execute(sa.select(tokens).order_by(tokens.c.created_at, tokens.c.id))
    return [_record(row) for row in rows]


def count(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(tokens)).scalar_one())


def revoke(conn: sa.Connection, *, token_id: str, actor: str) -> TokenRecord:
    """Revoke a token; revoking an already revoked token changes nothing."""
    current = get_or_404(conn, token_id=token_id)
    if current.revoked:
        return current
    conn.execute(tokens.update().where(tokens.c.id == token_id).values(revoked_at=now()))
    record = get_or_404(conn, token_id=token_id)
    audit.record(
        conn,
        actor=actor,
        action="token_revoked",
        target_kind="token",
        target_key=token_id,
        environment=record.environment,
        before=current.to_dict(),
        after=record.to_dict(),
        diff=[
            {
                "path": "revoked_at",
                "op": "replace",
                "old": None,
                "new": record.to_dict()["revoked_at"],
            }
        ],
    )
    # Through the change log, in this transaction, so every replica's change feed ends the
    # key's open streams (docs/streaming.md, "How a stream ends").  Never the secret or its hash.
    changelog.append(conn, type="token_revoked", kind="token", key=token_id,
                     data={"kind": record.kind, "environment": record.environment})
    return record


def revoke_for_environment(conn: sa.Connection, *, environment: str, actor: str) -> None:
    ids = conn.execute(
        sa.select(tokens.c.id).where(
            tokens.c.environment == environment, tokens.c.revoked_at.is_(None)
        )
    ).scalars()
    for token_id in list(ids):
        revoke(conn, token_id=token_id, actor=actor)


def find(conn: sa.Connection, *, secret: str) -> tuple[TokenRecord, bool] | None:
    """The live token for ``secret`` and whether its ``last_used_at`` is due for an update."""
    digest = hash_secret(secret)
    row = conn.execute(sa.select(tokens).where(tokens.c.secret_hash == digest)).first()
    if (
        row is None
        or not hmac.compare_digest(row.secret_hash, digest)
        or row.revoked_at is not None
    ):
        return None
    record = _record(row)
    last = record.last_used_at
    return record, last is None or now() - last >= LAST_USED_RESOLUTION


def touch(conn: sa.Connection, *, token_id: str) -> None:
    moment = now()
    conn.execute(
        tokens.update()
        .where(
            tokens.c.id == token_id,
            sa.or_(
                tokens.c.last_used_at.is_(None),
                tokens.c.last_used_at <= moment - LAST_USED_RESOLUTION,
            ),
        )
        .values(last_used_at=moment)
    )


def live_sdk_keys(conn: sa.Connection, *, hashes: list[str]) -> dict[str, TokenRecord]:
    """The live SDK keys among ``hashes`` (SHA-256 hex of their secrets), by hash.

    Management tokens are never answered here: a relay asks about SDK keys only.
    """
    if not hashes:
        return {}
    rows = conn.execute(
        sa.select(tokens).where(
            tokens.c.secret_hash.in_(hashes),
            tokens.c.revoked_at.is_(None),
            tokens.c.kind.in_(("sdk-server", "sdk-client")),
        )
    )
    return {row.secret_hash: _record(row) for row in rows}
