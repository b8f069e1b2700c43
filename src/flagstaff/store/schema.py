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
    # The change event the write produced (null for writes SDKs never see, such as tokens, and
    # for records older than the column): what the fleet view measures a change's reach by.
    sa.Column("event_id", sa.BigInteger(), nullable=True),
    # How the write came about, when not by a plain request: the change request, schedule or
    # trigger behind it, or that it bypassed review (migration 0005_governance).
    sa.Column("context", Json, nullable=True),
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

# -- exposures, metric events, evaluation counts (migration 0002) ----------------------
# Event timestamps are integer epoch milliseconds: hour/day buckets are then plain integer
# division on both backends, and bulk inserts skip per-row datetime conversion.

# A batch id is idempotent per (kind, environment): the same id sent to /track after /exposures,
# or by keys of two environments, names two different batches (migration 0006).
ingest_batches = sa.Table(
    "ingest_batches",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("environment", sa.String(128), primary_key=True),
    sa.Column("batch_id", sa.String(128), primary_key=True),
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

# -- experiment runs (migration 0007_experiment_runs) --------------------------------------------
# One row per start of an experiment: results read the exposures of one run only (its time span
# and the flag versions from its start, which carry its salt).

experiment_runs = sa.Table(
    "experiment_runs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("environment", sa.String(128), nullable=False),
    sa.Column("flag_key", sa.String(128), nullable=False),
    sa.Column("number", sa.Integer(), nullable=False),
    sa.Column("salt", sa.String(128), nullable=False),
    sa.Column("config", Json, nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("started_ms", sa.BigInteger(), nullable=False),
    sa.Column("start_version", sa.Integer(), nullable=False),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    sa.Column("ended_ms", sa.BigInteger(), nullable=True),
    sa.Column("end_version", sa.Integer(), nullable=True),
    sa.UniqueConstraint("environment", "flag_key", "number", name="uq_experiment_runs_number"),
)

# -- browser access (migration 0003_client_access) ---------------------------------------------

installation = sa.Table(
    "installation",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("signing_key", sa.String(128), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

environment_client_access = sa.Table(
    "environment_client_access",
    metadata,
    sa.Column(
        "environment", sa.String(128), sa.ForeignKey("environments.key", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("allowed_origins", Json, nullable=False),
    sa.Column("secure_mode", sa.Boolean(), nullable=False),
    sa.Column("secure_mode_secret", sa.String(128), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# -- the fleet view: what each SDK instance and relay last reported (migration 0004_fleet) -----------
# One row per (SDK key, instance): a report can only ever touch rows of the key that sent it.
# Times are epoch milliseconds, so the staleness thresholds are plain integer comparisons.

fleet_instances = sa.Table(
    "fleet_instances",
    metadata,
    sa.Column("token_id", sa.String(40), primary_key=True),
    sa.Column("instance", sa.String(64), primary_key=True),
    sa.Column("environment", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # sdk | relay
    sa.Column("version", sa.BigInteger(), nullable=True),  # applied change-event id
    sa.Column("version_since_ms", sa.BigInteger(), nullable=False),
    sa.Column("first_seen_ms", sa.BigInteger(), nullable=False),
    sa.Column("last_seen_ms", sa.BigInteger(), nullable=False),
    sa.Column("sdk", sa.String(64), nullable=True),
    sa.Column("host", sa.String(255), nullable=True),
    sa.Column("pid", sa.Integer(), nullable=True),
    sa.Column("via", sa.String(64), nullable=True),
    sa.Index("ix_fleet_instances_environment", "environment", "kind", "version"),
    sa.Index("ix_fleet_instances_last_seen", "last_seen_ms"),
)

# -- code references: what `flagstaff scan --report` found per repository (migration 0008) -------
# A report replaces its repository's rows; keys are plain strings (no foreign key to flags), so
# a reference to a flag that is deleted or not created yet is kept as found.

code_repositories = sa.Table(
    "code_repositories",
    metadata,
    sa.Column("repository", sa.String(200), primary_key=True),
    sa.Column("scanned_at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("revision", sa.String(100), nullable=True),
    sa.Column("reference_count", sa.Integer(), nullable=False),
    sa.Column("flag_count", sa.Integer(), nullable=False),
)

code_references = sa.Table(
    "code_references",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "repository", sa.String(200),
        sa.ForeignKey("code_repositories.repository", ondelete="CASCADE"), nullable=False,
    ),
    sa.Column("flag_key", sa.String(128), nullable=False),
    sa.Column("file", sa.String(1000), nullable=False),
    sa.Column("line", sa.Integer(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Index("ix_code_references_flag", "flag_key", "repository"),
    sa.Index("ix_code_references_repository", "repository"),
)
