"""Initial schema: environments, flags, segments, references, audit log, change log, tokens.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON(none_as_null=True)
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    environments = op.create_table(
        "environments",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
    )
    op.create_table(
        "flags",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", Json, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
    )
    op.create_table(
        "flag_tags",
        sa.Column(
            "flag_key",
            sa.String(128),
            sa.ForeignKey("flags.key", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("tag", sa.String(64), primary_key=True),
    )
    op.create_index("ix_flag_tags_tag", "flag_tags", ["tag"])
    op.create_table(
        "segments",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", Json, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
    )
    op.create_table(
        "object_refs",
        sa.Column("source_kind", sa.String(16), primary_key=True),
        sa.Column("source_key", sa.String(128), primary_key=True),
        sa.Column("target_kind", sa.String(16), primary_key=True),
        sa.Column("target_key", sa.String(128), primary_key=True),
    )
    op.create_index("ix_object_refs_target", "object_refs", ["target_kind", "target_key"])
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target_kind", sa.String(16), nullable=False),
        sa.Column("target_key", sa.String(128), nullable=False),
        sa.Column("environment", sa.String(128), nullable=True),
        sa.Column("before", Json, nullable=True),
        sa.Column("after", Json, nullable=True),
        sa.Column("diff", Json, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_target", "audit_log", ["target_kind", "target_key", "id"])
    op.create_index("ix_audit_created_at", "audit_log", ["created_at"])
    op.create_table(
        "change_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("data", Json, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_change_events_created_at", "change_events", ["created_at"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("environment", sa.String(128), nullable=True),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("last_used_at", Stamp, nullable=True),
        sa.Column("revoked_at", Stamp, nullable=True),
    )
    # The default environments exist from the start; a deleted one is not re-created on restart.
    created = datetime.now(UTC)
    op.bulk_insert(
        environments,
        [
            {"key": "development", "name": "Development", "created_at": created},
            {"key": "staging", "name": "Staging", "created_at": created},
            {"key": "production", "name": "Production", "created_at": created},
        ],
    )


def downgrade() -> None:
    for table in (
        "tokens",
        "change_events",
        "audit_log",
        "object_refs",
        "segments",
        "flag_tags",
        "flags",
        "environments",
    ):
        op.drop_table(table)
