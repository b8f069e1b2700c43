"""Experiment runs: each start of an experiment, with its salt, configuration and time span, so
results, SRM and exposure counts belong to one run and earlier runs stay readable.

Revision ID: 0007_experiment_runs
Revises: 0006_ingest_batch_scope
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_experiment_runs"
down_revision = "0006_ingest_batch_scope"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON(none_as_null=True)
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "experiment_runs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("flag_key", sa.String(128), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("salt", sa.String(128), nullable=False),
        sa.Column("config", Json, nullable=False),
        sa.Column("started_at", Stamp, nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=False),
        sa.Column("start_version", sa.Integer(), nullable=False),
        sa.Column("ended_at", Stamp, nullable=True),
        sa.Column("ended_ms", sa.BigInteger(), nullable=True),
        sa.Column("end_version", sa.Integer(), nullable=True),
        sa.UniqueConstraint("environment", "flag_key", "number", name="uq_experiment_runs_number"),
    )


def downgrade() -> None:
    op.drop_table("experiment_runs")
