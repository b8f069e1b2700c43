"""Storage layer: SQLAlchemy repositories, Alembic migrations, audit log and change log.

The server uses :class:`Store` only; the modules behind it take a connection and never open
transactions themselves.  Requires the ``server`` extra (SQLAlchemy, Alembic).
"""

from __future__ import annotations

from flagstaff.store.records import (
    AuditRecord,
    ChangeEvent,
    EnvironmentRecord,
    FlagRecord,
    Page,
    SegmentRecord,
    TokenRecord,
)
from flagstaff.store.store import Store

__all__ = [
    "AuditRecord",
    "ChangeEvent",
    "EnvironmentRecord",
    "FlagRecord",
    "Page",
    "SegmentRecord",
    "Store",
    "TokenRecord",
]
