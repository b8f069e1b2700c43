"""The ingestion ledger's migration to (kind, environment, batch id) keeps every claimed batch."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from flagstaff.store.db import MIGRATIONS_DIR, normalise_url

CLAIMED = [("exposures", "production", "b-1"), ("track", "staging", "b-2")]


def _alembic(conn: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    return config


def _ledger(conn: sa.Connection) -> list[tuple[str, str, str]]:
    rows = conn.execute(sa.text("SELECT kind, environment, batch_id FROM ingest_batches"))
    return sorted((r.kind, r.environment, r.batch_id) for r in rows)


def test_upgrade_keeps_claimed_batches_and_downgrade_keeps_one_claim_per_id(
    database_url: str,
) -> None:
    engine = sa.create_engine(normalise_url(database_url))
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic(conn), "0005_governance")
            for kind, environment, batch_id in CLAIMED:
                conn.execute(sa.text(
                    "INSERT INTO ingest_batches (kind, environment, batch_id, received_at) "
                    "VALUES (:k, :e, :b, :t)"),
                    {"k": kind, "e": environment, "b": batch_id, "t": datetime(2026, 1, 1, tzinfo=UTC)})
            command.upgrade(_alembic(conn), "head")
            assert _ledger(conn) == sorted(CLAIMED)
            # The same id of another kind is now another batch.
            conn.execute(sa.text(
                "INSERT INTO ingest_batches (kind, environment, batch_id, received_at) "
                "VALUES ('track', 'production', 'b-1', :t)"), {"t": datetime(2026, 1, 2, tzinfo=UTC)})
            command.downgrade(_alembic(conn), "0005_governance")
            assert _ledger(conn) == sorted(CLAIMED)  # the earliest claim of "b-1" stayed
            command.upgrade(_alembic(conn), "head")
            assert _ledger(conn) == sorted(CLAIMED)
    finally:
        engine.dispose()
