"""The fleet view: what each SDK instance and relay reported, and each audit record's event.

Revision ID: 0004_fleet
Revises: 0003_client_access
Create Date: 2025-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_fleet"
down_revision = "0003_client_access"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("event_id", sa.BigInteger(), nullable=True))
    op.create_table(
        "fleet_instances",
        sa.Column("token_id", sa.String(40), primary_key=True),
        sa.Column("instance", sa.String(64), primary_key=True),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=True),
        sa.Column("version_since_ms", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("sdk", sa.String(64), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("via", sa.String(64), nullable=True),
    )
    op.create_index(
        "ix_fleet_instances_environment", "fleet_instances", ["environment", "kind", "version"]
    )
    op.create_index("ix_fleet_instances_last_seen", "fleet_instances", ["last_seen_ms"])


def downgrade() -> None:
    op.drop_table("fleet_instances")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("event_id")
