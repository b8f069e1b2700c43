"""Tables of governed change (created by migration ``0005_governance``).

Ids are database integers (change requests and schedules are named by people: "change 12"),
except trigger ids, which are random like token ids.  Secrets of triggers are stored as SHA-256
digests; webhook signing secrets must be stored as given, since every delivery is signed with
them (they are never returned after creation, nor written to the audit log).
"""

from __future__ import annotations

import sqlalchemy as sa

from flagstaff.store.schema import BigId, Json, UTCDateTime, metadata

approval_policies = sa.Table(
    "approval_policies",
    metadata,
    sa.Column("environment", sa.String(128), primary_key=True),
    sa.Column("required_approvals", sa.Integer(), nullable=False),
    sa.Column("author_may_approve", sa.Boolean(), nullable=False),
    sa.Column("approver_role", sa.String(16), nullable=False),
    sa.Column("kill_requires_review", sa.Boolean(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)

change_requests = sa.Table(
    "change_requests",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("flag_key", sa.String(128), nullable=False),
    sa.Column("environment", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    # What the author sent (a merge patch or a whole configuration), and what it makes of the
    # base: the proposed environment configuration, normalised by the engine.
    sa.Column("patch", Json, nullable=False),
    sa.Column("base_version", sa.Integer(), nullable=False),
    sa.Column("base_config", Json, nullable=False),
    sa.Column("proposed_config", Json, nullable=False),
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("author_token", sa.String(40), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("schedule_id", sa.BigInteger(), nullable=True),
    sa.Column("applied_version", sa.Integer(), nullable=True),
    sa.Column("applied_audit_id", sa.BigInteger(), nullable=True),
    sa.Column("error", Json, nullable=True),
    sa.Index("ix_change_requests_status", "status", "id"),
    sa.Index("ix_change_requests_flag", "flag_key", "id"),
    sqlite_autoincrement=True,
)

change_request_reviews = sa.Table(
    "change_request_reviews",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "change_request_id", sa.BigInteger(),
        sa.ForeignKey("change_requests.id", ondelete="CASCADE"), nullable=False,
    ),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("token_id", sa.String(40), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),  # approved | rejected | commented
    sa.Column("comment", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_change_request_reviews_cr", "change_request_id", "id"),
    sqlite_autoincrement=True,
)

schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("flag_key", sa.String(128), nullable=False),
    sa.Column("environment", sa.String(128), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # enable | disable | rollout | patch
    sa.Column("params", Json, nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | applied | failed | cancelled
    sa.Column("base_version", sa.Integer(), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("change_request_id", sa.BigInteger(), nullable=True),
    sa.Column("executed_at", UTCDateTime(), nullable=True),
    sa.Column("late_ms", sa.BigInteger(), nullable=True),
    sa.Column("result_version", sa.Integer(), nullable=True),
    sa.Column("audit_id", sa.BigInteger(), nullable=True),
    sa.Column("error", Json, nullable=True),
    sa.Index("ix_schedules_due", "status", "due_at"),
    sa.Index("ix_schedules_flag", "flag_key", "id"),
    sqlite_autoincrement=True,
)

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("format", sa.String(16), nullable=False),  # json | slack
    sa.Column("events", Json, nullable=False),
    sa.Column("flags", Json, nullable=False),
    sa.Column("environments", Json, nullable=False),
    sa.Column("tags", Json, nullable=False),
    sa.Column("active", sa.Boolean(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # The dispatcher that holds the subscription (one at a time keeps deliveries in order) ...
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    # ... and, while its oldest pending delivery waits for a retry, until when it waits.
    sa.Column("blocked_until", UTCDateTime(), nullable=True),
    sqlite_autoincrement=True,
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "webhook_id", sa.BigInteger(), sa.ForeignKey("webhooks.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("audit_id", sa.BigInteger(), nullable=True),
    sa.Column("payload", Json, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | delivered | failed
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("delivered_at", UTCDateTime(), nullable=True),
    sa.Column("response_code", sa.Integer(), nullable=True),
    sa.Column("latency_ms", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.String(300), nullable=True),
    sa.Column("redelivery_of", sa.BigInteger(), nullable=True),
    sa.Index("ix_webhook_deliveries_queue", "webhook_id", "status", "id"),
    sa.Index("ix_webhook_deliveries_pending", "status", "next_attempt_at"),
    sqlite_autoincrement=True,
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "delivery_id", sa.BigInteger(),
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False,
    ),
    sa.Column("attempted_at", UTCDateTime(), nullable=False),
    sa.Column("response_code", sa.Integer(), nullable=True),
    sa.Column("latency_ms", sa.Integer(), nullable=False),
    sa.Column("error", sa.String(300), nullable=True),
    sa.Index("ix_webhook_attempts_delivery", "delivery_id", "id"),
    sqlite_autoincrement=True,
)

flag_triggers = sa.Table(
    "flag_triggers",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("flag_key", sa.String(128), nullable=False),
    sa.Column("environment", sa.String(128), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("last_fired_at", UTCDateTime(), nullable=True),
    sa.Column("fire_count", sa.Integer(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Index("ix_flag_triggers_flag", "flag_key", "environment"),
)
