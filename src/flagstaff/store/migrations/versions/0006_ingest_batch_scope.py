"""Ingestion batch ids are idempotent per (kind, environment, batch id), not globally.

A batch id sent to ``/track`` after the same id went to ``/exposures`` (or by a key of another
environment) was answered ``duplicate`` and its events thrown away.  The ledger's primary key
becomes the triple; existing rows keep their kind and environment, so nothing already claimed is
lost.  The table is rebuilt (SQLite cannot change a primary key in place).

Revision ID: 0006_ingest_batch_scope
Revises: 0005_governance
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_ingest_batch_scope"
down_revision = "0005_governance"
branch_labels = None
depends_on = None

Stamp = sa.DateTime(timezone=True)
COLUMNS = "kind, environment, batch_id, received_at"


def _ledger(name: str, *key: str) -> None:
    op.create_table(
        name,
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("batch_id", sa.String(128), nullable=False),
        sa.Column("received_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint(*key, name=f"{name}_pkey"),
    )


def _rebuild(*key: str, select: str) -> None:
    _ledger("ingest_batches_rebuilt", *key)
    op.execute(f"INSERT INTO ingest_batches_rebuilt ({COLUMNS}) {select}")
    op.drop_table("ingest_batches")
    op.rename_table("ingest_batches_rebuilt", "ingest_batches")
    if op.get_bind().dialect.name == "postgresql":
        # Keep PostgreSQL's conventional name, as a table created under its final name has.
        op.execute("ALTER TABLE ingest_batches RENAME CONSTRAINT "
                   "ingest_batches_rebuilt_pkey TO ingest_batches_pkey")


def upgrade() -> None:
    _rebuild("kind", "environment", "batch_id",
             select=f"SELECT {COLUMNS} FROM ingest_batches")


def downgrade() -> None:
    # Back to one row per batch id: of ids claimed more than once, the earliest claim stays.
    _rebuild("batch_id", select=(
        f"SELECT {COLUMNS} FROM ingest_batches AS b WHERE NOT EXISTS ("
        "SELECT 1 FROM ingest_batches AS o WHERE o.batch_id = b.batch_id AND "
        "(o.received_at < b.received_at OR (o.received_at = b.received_at AND "
        "(o.kind, o.environment) < (b.kind, b.environment))))"))
