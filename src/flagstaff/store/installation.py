"""This database's identity: one row written by migration ``0003_client_access``.

The id is random per database, so two installs (or a reset one) never share it; what derives
from it (bulk-evaluation ETags, signed event-stream URLs) cannot be mistaken across installs.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa

from flagstaff.store.db import now
from flagstaff.store.records import InstallationRecord
from flagstaff.store.schema import installation


def get(conn: sa.Connection) -> InstallationRecord:
    row = conn.execute(sa.select(installation).order_by(installation.c.created_at)).first()
    if row is None:  # only if someone deleted the row by hand: make a new identity
        record = InstallationRecord(
            id=secrets.token_hex(16), signing_key=secrets.token_urlsafe(48), created_at=now()
        )
        conn.execute(installation.insert().values(
            id=record.id, signing_key=record.signing_key, created_at=record.created_at
        ))
        return record
    return InstallationRecord(id=row.id, signing_key=row.signing_key, created_at=row.created_at)
