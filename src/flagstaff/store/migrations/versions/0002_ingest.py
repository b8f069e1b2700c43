"""Exposures, metric events, evaluation counts and the ingestion batch ledger.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ingest_batches",
        sa.Column("batch_id", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("received_at", Stamp, nullable=False),
    )
    op.create_table(
        "exposures",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("flag_key", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("user_key", sa.String(256), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("flag_version", sa.Integer(), nullable=True),
        sa.Column("in_experiment", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_exposures_flag_ts", "exposures", ["environment", "flag_key", "ts_ms"])
    op.create_table(
        "metric_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("metric", sa.String(128), nullable=False),
        sa.Column("user_key", sa.String(256), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_metric_events_user", "metric_events", ["environment", "metric", "user_key", "ts_ms"]
    )
    op.create_table(
        "evaluation_counts",
        sa.Column("environment", sa.String(128), primary_key=True),
        sa.Column("flag_key", sa.String(128), primary_key=True),
        sa.Column("variant", sa.String(64), primary_key=True),
        sa.Column("day", sa.Integer(), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_evaluation_counts_flag", "evaluation_counts", ["flag_key", "day"])


def downgrade() -> None:
    for table in ("evaluation_counts", "metric_events", "exposures", "ingest_batches"):
        op.drop_table(table)
