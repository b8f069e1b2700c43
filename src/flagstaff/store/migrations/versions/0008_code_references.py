"""Code references: the flag keys ``flagstaff scan --report`` found in each repository (file and
line), with the time of the scan; a repository's new report replaces its old one.

Revision ID: 0008_code_references
Revises: 0007_experiment_runs
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_code_references"
down_revision = "0007_experiment_runs"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "code_repositories",
        sa.Column("repository", sa.String(200), primary_key=True),
        sa.Column("scanned_at", Stamp, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("revision", sa.String(100), nullable=True),
        sa.Column("reference_count", sa.Integer(), nullable=False),
        sa.Column("flag_count", sa.Integer(), nullable=False),
    )
    op.create_table(
        "code_references",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "repository", sa.String(200),
            sa.ForeignKey("code_repositories.repository", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("flag_key", sa.String(128), nullable=False),
        sa.Column("file", sa.String(1000), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
    )
    op.create_index("ix_code_references_flag", "code_references", ["flag_key", "repository"])
    op.create_index("ix_code_references_repository", "code_references", ["repository"])


def downgrade() -> None:
    op.drop_table("code_references")
    op.drop_table("code_repositories")
