"""Table definitions shared by the repositories and the initial migration.

JSON columns use ``sa.JSON`` (text on SQLite, ``json`` on PostgreSQL, never ``jsonb``) so that
the key order of stored definitions is preserved exactly as written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

# SQLite only aliases the rowid (and so only autoincrements) for a plain INTEGER primary key.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON(none_as_null=True)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite drops the offset on storage)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


environments = sa.Table(
    "environments",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

flags = sa.Table(
    "flags",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    # The canonical definition without the server fields, which live in their own columns.
    sa.Column("definition", Json, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

flag_tags = sa.Table(
    "flag_tags",
    metadata,
    sa.Column(
        "flag_key", sa.String(128), sa.ForeignKey("flags.key", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("tag", sa.String(64), primary_key=True),
    sa.Index("ix_flag_tags_tag", "tag"),
)

segments = sa.Table(
    "segments",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("definition", Json, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# Who references whom (flag -> flag prerequisites, flag/segment -> segment), kept in step with
# every write so that delete/archive checks and cycle detection need no full scan.
object_refs = sa.Table(
    "object_refs",
    metadata,
    sa.Column("source_kind", sa.String(16), primary_key=True),
    sa.Column("source_key", sa.String(128), primary_key=True),
    sa.Column("target_kind", sa.String(16), primary_key=True),
    sa.Column("target_key", sa.String(128), primary_key=True),
    sa.Index("ix_object_refs_target", "target_kind", "target_key"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target_kind", sa.String(16), nullable=False),
    sa.Column("target_key", sa.String(128), nullable=False),
    sa.Column("environment", sa.String(128), nullable=True),
    sa.Column("before", Json, nullable=True),
    sa.Column("after", Json, nullable=True),
    sa.Column("diff", Json, nullable=False),
    sa.Index("ix_audit_target", "target_kind", "target_key", "id"),
    sa.Index("ix_audit_created_at", "created_at"),
    sqlite_autoincrement=True,
)

change_events = sa.Table(
    "change_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("key", sa.String(128), nullable=False),
    sa.Column("data", Json, nullable=True),
    sa.Index("ix_change_events_created_at", "created_at"),
    # AUTOINCREMENT: ids are never reused on SQLite, even after pruning the newest rows.
    sqlite_autoincrement=True,
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("role", sa.String(16), nullable=True),
    sa.Column("environment", sa.String(128), nullable=True),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("last_used_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)

DEFAULT_ENVIRONMENTS: tuple[tuple[str, str], ...] = (
    ("development", "Development"),
    ("staging", "Staging"),
    ("production", "Production"),
)

# -- issue 6: exposures, metric events, evaluation counts (migration 0002) ----------------------
# Event timestamps are integer epoch milliseconds: hour/day buckets are then plain integer
# division on both backends, and bulk inserts skip per-row datetime conversion.

ingest_batches = sa.Table(
    "ingest_batches",
    metadata,
    sa.Column("batch_id", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("environment", sa.String(128), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
)

exposures = sa.Table(
    "exposures",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("environment", sa.String(128), nullable=False),
    sa.Column("flag_key", sa.String(128), nullable=False),
    sa.Column("variant", sa.String(64), nullable=False),
    sa.Column("user_key", sa.String(256), nullable=False),
    sa.Column("ts_ms", sa.BigInteger(), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("flag_version", sa.Integer(), nullable=True),
    sa.Column("in_experiment", sa.Boolean(), nullable=False),
    sa.Index("ix_exposures_flag_ts", "environment", "flag_key", "ts_ms"),
)

metric_events = sa.Table(
    "metric_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("environment", sa.String(128), nullable=False),
    sa.Column("metric", sa.String(128), nullable=False),
    sa.Column("user_key", sa.String(256), nullable=False),
    sa.Column("value", sa.Float(), nullable=True),
    sa.Column("ts_ms", sa.BigInteger(), nullable=False),
    sa.Index("ix_metric_events_user", "environment", "metric", "user_key", "ts_ms"),
)

# One row per (environment, flag, variant, UTC day); SDK reports are added in with an upsert.
evaluation_counts = sa.Table(
    "evaluation_counts",
    metadata,
    sa.Column("environment", sa.String(128), primary_key=True),
    sa.Column("flag_key", sa.String(128), primary_key=True),
    sa.Column("variant", sa.String(64), primary_key=True),
    sa.Column("day", sa.Integer(), primary_key=True),  # days since the epoch (UTC)
    sa.Column("count", sa.BigInteger(), nullable=False),
    sa.Column("last_ms", sa.BigInteger(), nullable=False),  # latest window end seen
    sa.Index("ix_evaluation_counts_flag", "flag_key", "day"),
)
