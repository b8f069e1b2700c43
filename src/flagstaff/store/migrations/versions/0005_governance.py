"""Governed change: approval policies, change requests, schedules, webhooks, triggers; the
audit log's ``context`` column (what a write came from).

Revision ID: 0005_governance
Revises: 0004_fleet
Create Date: 2025-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_governance"
down_revision = "0004_fleet"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON(none_as_null=True)
Stamp = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", BigId, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("context", Json, nullable=True))
    op.create_table(
        "approval_policies",
        sa.Column("environment", sa.String(128), primary_key=True),
        sa.Column("required_approvals", sa.Integer(), nullable=False),
        sa.Column("author_may_approve", sa.Boolean(), nullable=False),
        sa.Column("approver_role", sa.String(16), nullable=False),
        sa.Column("kill_requires_review", sa.Boolean(), nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "change_requests",
        _id(),
        sa.Column("flag_key", sa.String(128), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("patch", Json, nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=False),
        sa.Column("base_config", Json, nullable=False),
        sa.Column("proposed_config", Json, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("author_token", sa.String(40), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.Column("schedule_id", sa.BigInteger(), nullable=True),
        sa.Column("applied_version", sa.Integer(), nullable=True),
        sa.Column("applied_audit_id", sa.BigInteger(), nullable=True),
        sa.Column("error", Json, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_change_requests_status", "change_requests", ["status", "id"])
    op.create_index("ix_change_requests_flag", "change_requests", ["flag_key", "id"])
    op.create_table(
        "change_request_reviews",
        _id(),
        sa.Column(
            "change_request_id", sa.BigInteger(),
            sa.ForeignKey("change_requests.id", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("token_id", sa.String(40), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_change_request_reviews_cr", "change_request_reviews", ["change_request_id", "id"]
    )
    op.create_table(
        "schedules",
        _id(),
        sa.Column("flag_key", sa.String(128), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("params", Json, nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("due_at", Stamp, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.Column("change_request_id", sa.BigInteger(), nullable=True),
        sa.Column("executed_at", Stamp, nullable=True),
        sa.Column("late_ms", sa.BigInteger(), nullable=True),
        sa.Column("result_version", sa.Integer(), nullable=True),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.Column("error", Json, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_schedules_due", "schedules", ["status", "due_at"])
    op.create_index("ix_schedules_flag", "schedules", ["flag_key", "id"])
    op.create_table(
        "webhooks",
        _id(),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("events", Json, nullable=False),
        sa.Column("flags", Json, nullable=False),
        sa.Column("environments", Json, nullable=False),
        sa.Column("tags", Json, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", Stamp, nullable=True),
        sa.Column("blocked_until", Stamp, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "webhook_deliveries",
        _id(),
        sa.Column(
            "webhook_id", sa.BigInteger(), sa.ForeignKey("webhooks.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.Column("payload", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("next_attempt_at", Stamp, nullable=False),
        sa.Column("last_attempt_at", Stamp, nullable=True),
        sa.Column("delivered_at", Stamp, nullable=True),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("redelivery_of", sa.BigInteger(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_webhook_deliveries_queue", "webhook_deliveries", ["webhook_id", "status", "id"]
    )
    op.create_index(
        "ix_webhook_deliveries_pending", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_table(
        "webhook_attempts",
        _id(),
        sa.Column(
            "delivery_id", sa.BigInteger(),
            sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("attempted_at", Stamp, nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(300), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_id", "id"])
    op.create_table(
        "flag_triggers",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("flag_key", sa.String(128), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("last_fired_at", Stamp, nullable=True),
        sa.Column("fire_count", sa.Integer(), nullable=False),
        sa.Column("revoked_at", Stamp, nullable=True),
    )
    op.create_index("ix_flag_triggers_flag", "flag_triggers", ["flag_key", "environment"])


def downgrade() -> None:
    for table in (
        "flag_triggers", "webhook_attempts", "webhook_deliveries", "webhooks", "schedules",
        "change_request_reviews", "change_requests", "approval_policies",
    ):
        op.drop_table(table)
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("context")
