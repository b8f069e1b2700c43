"""Browser access: the installation's identity and per-environment client-side settings.

``installation`` holds one row: a random id that tells this database apart from every other
(fresh installs and resets get a new one; bulk-evaluation ETags include it) and the key that
signs short-lived event-stream URLs, shared by every replica on this database.
``environment_client_access`` holds, per environment, the origins browsers may call from and
secure mode (with its HMAC secret); an environment without a row allows no origin and has
secure mode off.

Revision ID: 0003_client_access
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003_client_access"
down_revision = "0002"
branch_labels = None
depends_on = None

Json = sa.JSON(none_as_null=True)
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    installation = op.create_table(
        "installation",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("signing_key", sa.String(128), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
    )
    op.bulk_insert(installation, [{
        "id": secrets.token_hex(16),
        "signing_key": secrets.token_urlsafe(48),
        "created_at": datetime.now(UTC),
    }])
    op.create_table(
        "environment_client_access",
        sa.Column(
            "environment", sa.String(128),
            sa.ForeignKey("environments.key", ondelete="CASCADE"), primary_key=True,
        ),
        sa.Column("allowed_origins", Json, nullable=False),
        sa.Column("secure_mode", sa.Boolean(), nullable=False),
        sa.Column("secure_mode_secret", sa.String(128), nullable=True),
        sa.Column("updated_at", Stamp, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("environment_client_access")
    op.drop_table("installation")
