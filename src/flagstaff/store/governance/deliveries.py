"""The delivery log and the dispatcher's side of the outbox: claim, attempt, retry, give up.

Deliveries of one subscription go out strictly in id order, one at a time: a dispatcher first
*claims the subscription* (a lease: ``lease_owner``/``lease_until``, taken with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL and under the single writer lock on SQLite), then
sends its oldest pending delivery, records the attempt, and goes on to the next only once that
one is delivered or given up.  A failed attempt schedules the next one (the server computes the
exponential back-off with jitter) and blocks the subscription until then.  Nothing is held open
while the HTTP request runs; a dispatcher that dies mid-request loses its lease when it expires
and another sends the delivery again, so receivers see each delivery at least once and should
de-duplicate by the ``X-Flagstaff-Delivery`` id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from flagstaff.errors import Conflict, Invalid, NotFound
from flagstaff.store import audit
from flagstaff.store.db import is_postgres, now
from flagstaff.store.governance.records import AttemptRecord, DeliveryRecord
from flagstaff.store.governance.tables import webhook_attempts, webhook_deliveries, webhooks
from flagstaff.store.paging import check_limit, decode_cursor, encode_cursor
from flagstaff.store.records import Page, iso

STATUSES = ("pending", "delivered", "failed")
ERROR_MAX = 300


@dataclass(frozen=True, slots=True)
class Claimed:
    """A subscription this dispatcher holds, with what it needs to send."""

    webhook_id: int
    url: str
    secret: str
    format: str


def _record(row: sa.Row[Any]) -> DeliveryRecord:
    return DeliveryRecord(
        id=int(row.id), webhook_id=int(row.webhook_id), event=row.event, audit_id=row.audit_id,
        payload=dict(row.payload), status=row.status, attempts=int(row.attempts),
        created_at=row.created_at, next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at, delivered_at=row.delivered_at,
        response_code=row.response_code, latency_ms=row.latency_ms, last_error=row.last_error,
        redelivery_of=row.redelivery_of,
    )


def get(conn: sa.Connection, *, webhook_id: int, delivery_id: int) -> DeliveryRecord:
    row = conn.execute(
        sa.select(webhook_deliveries).where(
            webhook_deliveries.c.id == delivery_id, webhook_deliveries.c.webhook_id == webhook_id
        )
    ).first()
    if row is None:
        raise NotFound(
            f"webhook {webhook_id} has no delivery {delivery_id}", details={"id": delivery_id}
        )
    return _record(row)


def attempts(conn: sa.Connection, *, delivery_id: int) -> list[AttemptRecord]:
    rows = conn.execute(
        sa.select(webhook_attempts)
        .where(webhook_attempts.c.delivery_id == delivery_id)
        .order_by(webhook_attempts.c.id)
    )
    return [
        AttemptRecord(
            id=int(r.id), attempted_at=r.attempted_at, response_code=r.response_code,
            latency_ms=int(r.latency_ms), error=r.error,
        )
        for r in rows
    ]


def list_page(
    conn: sa.Connection, *, webhook_id: int, status: str | None, limit: int, cursor: str | None
) -> Page[DeliveryRecord]:
    """A subscription's deliveries, newest first."""
    limit = check_limit(limit)
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}", details={"field": "status"})
    query = (
        sa.select(webhook_deliveries)
        .where(webhook_deliveries.c.webhook_id == webhook_id)
        .order_by(webhook_deliveries.c.id.desc())
        .limit(limit + 1)
    )
    if status is not None:
        query = query.where(webhook_deliveries.c.status == status)
    if cursor is not None:
        query = query.where(webhook_deliveries.c.id < decode_cursor(cursor, expected=int))
    rows = conn.execute(query).all()
    items = [_record(row) for row in rows[:limit]]
    return Page(
        items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None
    )


def enqueue_ping(conn: sa.Connection, *, webhook_id: int, actor: str) -> DeliveryRecord:
    """A ``ping`` delivery to check a receiver (queued behind what is pending)."""
    moment = now()
    payload: dict[str, Any] = {
        "event": "ping", "audit_id": None, "created_at": iso(moment), "actor": actor,
        "target": {"kind": "webhook", "key": str(webhook_id)}, "flag": None,
        "environment": None, "version": None, "diff": [], "context": None,
    }
    result = conn.execute(
        webhook_deliveries.insert().values(
            webhook_id=webhook_id, event="ping", audit_id=None, payload=payload,
            status="pending", attempts=0, created_at=moment, next_attempt_at=moment,
        )
    )
    return get(conn, webhook_id=webhook_id, delivery_id=int(result.inserted_primary_key[0]))  # type: ignore[index]


def redeliver(
    conn: sa.Connection, *, webhook_id: int, delivery_id: int, actor: str
) -> DeliveryRecord:
    """Queue the same payload again, as a new delivery at the end of the subscription's queue."""
    original = get(conn, webhook_id=webhook_id, delivery_id=delivery_id)
    if original.status == "pending":
        raise Conflict(
            f"delivery {delivery_id} is still pending (next attempt "
            f"{original.next_attempt_at.isoformat()}); it needs no redelivery",
            code="invalid_transition", details={"status": original.status},
        )
    moment = now()
    result = conn.execute(
        webhook_deliveries.insert().values(
            webhook_id=webhook_id, event=original.event, audit_id=original.audit_id,
            payload=original.payload, status="pending", attempts=0, created_at=moment,
            next_attempt_at=moment, redelivery_of=original.id,
        )
    )
    copy = get(conn, webhook_id=webhook_id, delivery_id=int(result.inserted_primary_key[0]))  # type: ignore[index]
    audit.record(
        conn, actor=actor, action="redelivered", target_kind="webhook", target_key=str(webhook_id),
        before=None, after={"delivery": copy.id, "redelivery_of": original.id,
                            "event": original.event},
        diff=[], context={"delivery": copy.id, "redelivery_of": original.id},
    )
    return copy


def has_work(conn: sa.Connection, *, at: datetime) -> bool:
    """Whether some subscription has a due delivery and no live lease (a cheap read)."""
    query = (
        sa.select(webhooks.c.id)
        .where(
            webhooks.c.active.is_(True),
            sa.or_(webhooks.c.lease_until.is_(None), webhooks.c.lease_until < at),
            sa.or_(webhooks.c.blocked_until.is_(None), webhooks.c.blocked_until <= at),
            sa.exists().where(
                webhook_deliveries.c.webhook_id == webhooks.c.id,
                webhook_deliveries.c.status == "pending",
            ),
        )
        .limit(1)
    )
    return conn.execute(query).first() is not None


def claim(
    conn: sa.Connection, *, owner: str, at: datetime, lease: timedelta, limit: int
) -> list[Claimed]:
    """Lease up to ``limit`` subscriptions that have pending deliveries to ``owner``."""
    query = (
        sa.select(webhooks.c.id, webhooks.c.url, webhooks.c.secret, webhooks.c.format)
        .where(
            webhooks.c.active.is_(True),
            sa.or_(webhooks.c.lease_until.is_(None), webhooks.c.lease_until < at),
            sa.or_(webhooks.c.blocked_until.is_(None), webhooks.c.blocked_until <= at),
            sa.exists().where(
                webhook_deliveries.c.webhook_id == webhooks.c.id,
                webhook_deliveries.c.status == "pending",
            ),
        )
        .order_by(webhooks.c.id)
        .limit(limit)
    )
    if is_postgres(conn):
        query = query.with_for_update(skip_locked=True, of=webhooks)
    rows = conn.execute(query).all()
    if rows:
        conn.execute(
            webhooks.update()
            .where(webhooks.c.id.in_([r.id for r in rows]))
            .values(lease_owner=owner, lease_until=at + lease, blocked_until=None)
        )
    return [Claimed(int(r.id), r.url, r.secret, r.format) for r in rows]


def head(conn: sa.Connection, *, webhook_id: int) -> DeliveryRecord | None:
    """The subscription's oldest pending delivery: the only one that may be sent."""
    row = conn.execute(
        sa.select(webhook_deliveries)
        .where(
            webhook_deliveries.c.webhook_id == webhook_id,
            webhook_deliveries.c.status == "pending",
        )
        .order_by(webhook_deliveries.c.id)
        .limit(1)
    ).first()
    return None if row is None else _record(row)


def renew(conn: sa.Connection, *, webhook_id: int, owner: str, until: datetime) -> bool:
    """Extend the lease; False when it was lost (expired and taken by another dispatcher)."""
    result = conn.execute(
        webhooks.update()
        .where(webhooks.c.id == webhook_id, webhooks.c.lease_owner == owner)
        .values(lease_until=until)
    )
    return bool(result.rowcount)


def release(
    conn: sa.Connection, *, webhook_id: int, owner: str, blocked_until: datetime | None
) -> None:
    conn.execute(
        webhooks.update()
        .where(webhooks.c.id == webhook_id, webhooks.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None, blocked_until=blocked_until)
    )


def release_all(conn: sa.Connection, *, owner: str) -> None:
    """A stopping dispatcher hands back its leases (blocked-until times stay)."""
    conn.execute(
        webhooks.update()
        .where(webhooks.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


def record_attempt(
    conn: sa.Connection,
    *,
    delivery: DeliveryRecord,
    at: datetime,
    response_code: int | None,
    latency_ms: int,
    error: str | None,
    next_attempt_at: datetime | None,
) -> DeliveryRecord:
    """Log one attempt.  Delivered when ``error`` is None; otherwise retried at
    ``next_attempt_at``, or given up (``failed``) when that is None."""
    error = None if error is None else error[:ERROR_MAX]
    conn.execute(
        webhook_attempts.insert().values(
            delivery_id=delivery.id, attempted_at=at, response_code=response_code,
            latency_ms=latency_ms, error=error,
        )
    )
    values: dict[str, Any] = {
        "attempts": delivery.attempts + 1, "last_attempt_at": at,
        "response_code": response_code, "latency_ms": latency_ms, "last_error": error,
    }
    if error is None:
        values.update(status="delivered", delivered_at=at)
    elif next_attempt_at is None:
        values.update(status="failed")
    else:
        values.update(next_attempt_at=next_attempt_at)
    conn.execute(
        webhook_deliveries.update()
        .where(webhook_deliveries.c.id == delivery.id, webhook_deliveries.c.status == "pending")
        .values(**values)
    )
    return get(conn, webhook_id=delivery.webhook_id, delivery_id=delivery.id)


def prune(conn: sa.Connection, *, before: datetime) -> int:
    """Forget finished deliveries created before ``before`` (the log's retention)."""
    result = conn.execute(
        webhook_deliveries.delete().where(
            webhook_deliveries.c.status != "pending", webhook_deliveries.c.created_at < before
        )
    )
    return int(result.rowcount or 0)
