"""The ``Store`` methods of governed change (a mixin of :class:`flagstaff.store.Store`).

Like the rest of the facade, each method is one transaction with keyword-only arguments.  The
background workers' methods (``run_due_schedule``, the ``*_webhook_lease`` family) are the
same: whichever process calls them, the database decides who gets a schedule or a
subscription, so several processes and replicas may run the workers at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from flagstaff.errors import PreconditionFailed
from flagstaff.store import environments, shared_reads
from flagstaff.store.db import read_tx, write_tx
from flagstaff.store.governance import (
    change_requests,
    deliveries,
    policies,
    schedules,
    triggers,
    webhooks,
)
from flagstaff.store.governance.deliveries import Claimed
from flagstaff.store.governance.policies import Policy
from flagstaff.store.governance.records import (
    AttemptRecord,
    ChangeRequestRecord,
    DeliveryRecord,
    ScheduleRecord,
    TriggerRecord,
    WebhookRecord,
)
from flagstaff.store.records import FlagRecord, Page


class GovernanceStoreMixin:
    engine: sa.Engine

    # -- approval policies -----------------------------------------------------------------

    def get_policy(self, *, environment: str) -> Policy:
        with read_tx(self.engine) as conn:
            environments.get_or_404(conn, key=environment)
            return policies.get(conn, environment=environment)

    def list_policies(self) -> list[Policy]:
        """Every environment's policy (``off`` where none was set)."""
        with read_tx(self.engine) as conn:
            stored = {p.environment: p for p in policies.list_all(conn)}
            return [
                stored.get(env.key) or policies.off(env.key)
                for env in environments.list_all(conn)
            ]

    def put_policy(self, *, environment: str, body: Any, actor: str) -> Policy:
        with write_tx(self.engine) as conn:
            environments.get_or_404(conn, key=environment)
            return policies.put(conn, environment=environment, body=body, actor=actor)

    # -- scheduled changes -----------------------------------------------------------------

    def create_schedule(
        self, *, flag: str, environment: str, at: Any, action: Any, body: dict[str, Any],
        description: Any = None, actor: str,
    ) -> ScheduleRecord:
        with write_tx(self.engine) as conn:
            return schedules.create(
                conn, flag=flag, environment=environment, at=at, action=action, body=body,
                description=description, actor=actor,
            )

    def get_schedule(self, *, schedule_id: int) -> ScheduleRecord:
        with read_tx(self.engine) as conn:
            return schedules.get(conn, schedule_id=schedule_id)

    def list_schedules(
        self, *, status: str | None = None, flag: str | None = None,
        environment: str | None = None, limit: int = 50, cursor: str | None = None,
    ) -> Page[ScheduleRecord]:
        with read_tx(self.engine) as conn:
            return schedules.list_page(
                conn, status=status, flag=flag, environment=environment, limit=limit,
                cursor=cursor,
            )

    def update_schedule(
        self, *, schedule_id: int, body: dict[str, Any], actor: str
    ) -> ScheduleRecord:
        with write_tx(self.engine) as conn:
            return schedules.update(conn, schedule_id=schedule_id, body=body, actor=actor)

    def cancel_schedule(self, *, schedule_id: int, actor: str) -> ScheduleRecord:
        with write_tx(self.engine) as conn:
            record = schedules.cancel(conn, schedule_id=schedule_id, actor=actor)
            if record.change_request_id is not None:
                change_requests.unschedule(
                    conn, change_request_id=record.change_request_id, actor=actor
                )
            return record

    def next_schedule_due(self) -> datetime | None:
        with read_tx(self.engine) as conn:
            return schedules.next_due(conn)

    def run_due_schedule(self, *, at: datetime) -> ScheduleRecord | None:
        """Claim and execute the oldest schedule due at ``at``; None when none is due (or every
        due one is being run by another process right now)."""
        done = self.run_due_schedules(at=at, limit=1)
        return done[0] if done else None

    def run_due_schedules(
        self, *, at: datetime, limit: int = schedules.BATCH
    ) -> list[ScheduleRecord]:
        """Claim up to ``limit`` schedules due at ``at`` and execute them in one transaction
        (one claim and one commit for a burst due at the same instant); empty when none is
        due or every due one is being run by another process right now."""
        with write_tx(self.engine) as conn, shared_reads.shared(conn):
            hooks = change_requests.ScheduleHooks()
            claimed = schedules.claim_due(conn, at=at, limit=limit)
            return schedules.execute_batch(conn, claimed, at=at, hooks=hooks)

    # -- change requests -------------------------------------------------------------------

    def create_change_request(
        self, *, flag: str, environment: str, patch: Any = None, config: Any = None,
        description: Any = None, base_version: int | None = None, actor: str, token_id: str,
    ) -> ChangeRequestRecord:
        with write_tx(self.engine) as conn:
            return change_requests.create(
                conn, flag=flag, environment=environment, patch=patch, config=config,
                description=description, base_version=base_version, actor=actor,
                token_id=token_id,
            )

    def get_change_request(self, *, change_request_id: int) -> ChangeRequestRecord:
        with read_tx(self.engine) as conn:
            return change_requests.get(conn, change_request_id=change_request_id)

    def list_change_requests(
        self, *, status: str | None = None, flag: str | None = None,
        environment: str | None = None, limit: int = 50, cursor: str | None = None,
    ) -> Page[ChangeRequestRecord]:
        with read_tx(self.engine) as conn:
            return change_requests.list_page(
                conn, status=status, flag=flag, environment=environment, limit=limit,
                cursor=cursor,
            )

    def review_change_request(
        self, *, change_request_id: int, verdict: str, comment: Any = None, actor: str,
        token_id: str, role: str,
    ) -> ChangeRequestRecord:
        with write_tx(self.engine) as conn:
            return change_requests.review(
                conn, change_request_id=change_request_id, verdict=verdict, comment=comment,
                actor=actor, token_id=token_id, role=role,
            )

    def cancel_change_request(
        self, *, change_request_id: int, actor: str, token_id: str, role: str
    ) -> ChangeRequestRecord:
        with write_tx(self.engine) as conn:
            return change_requests.cancel(
                conn, change_request_id=change_request_id, actor=actor, token_id=token_id,
                role=role,
            )

    def apply_change_request(
        self, *, change_request_id: int, actor: str, at: Any = None
    ) -> ChangeRequestRecord:
        """Apply an approved change request now (``at`` None) or schedule it.  A flag that moved
        from the base version marks the request ``conflict`` and raises PreconditionFailed."""
        if at is not None:
            with write_tx(self.engine) as conn:
                return change_requests.schedule(
                    conn, change_request_id=change_request_id, at=at, actor=actor
                )
        try:
            with write_tx(self.engine) as conn:
                change_requests.apply_locked(conn, change_request_id=change_request_id, actor=actor)
                return change_requests.get(conn, change_request_id=change_request_id)
        except PreconditionFailed as exc:
            with write_tx(self.engine) as conn:
                change_requests.record_failure(
                    conn, change_request_id=change_request_id, error=exc, actor=actor
                )
            raise

    # -- webhooks --------------------------------------------------------------------------

    def create_webhook(self, *, body: Any, actor: str) -> tuple[WebhookRecord, str]:
        with write_tx(self.engine) as conn:
            return webhooks.create(conn, body=body, actor=actor)

    def list_webhooks(self) -> list[WebhookRecord]:
        with read_tx(self.engine) as conn:
            return webhooks.list_all(conn)

    def get_webhook(self, *, webhook_id: int) -> WebhookRecord:
        with read_tx(self.engine) as conn:
            return webhooks.get(conn, webhook_id=webhook_id)

    def update_webhook(self, *, webhook_id: int, body: Any, actor: str) -> WebhookRecord:
        with write_tx(self.engine) as conn:
            return webhooks.update(conn, webhook_id=webhook_id, body=body, actor=actor)

    def rotate_webhook_secret(self, *, webhook_id: int, actor: str) -> tuple[WebhookRecord, str]:
        with write_tx(self.engine) as conn:
            return webhooks.rotate_secret(conn, webhook_id=webhook_id, actor=actor)

    def delete_webhook(self, *, webhook_id: int, actor: str) -> None:
        with write_tx(self.engine) as conn:
            webhooks.delete(conn, webhook_id=webhook_id, actor=actor)

    def list_deliveries(
        self, *, webhook_id: int, status: str | None = None, limit: int = 50,
        cursor: str | None = None,
    ) -> Page[DeliveryRecord]:
        with read_tx(self.engine) as conn:
            webhooks.get(conn, webhook_id=webhook_id)
            return deliveries.list_page(
                conn, webhook_id=webhook_id, status=status, limit=limit, cursor=cursor
            )

    def get_delivery(
        self, *, webhook_id: int, delivery_id: int
    ) -> tuple[DeliveryRecord, list[AttemptRecord]]:
        with read_tx(self.engine) as conn:
            record = deliveries.get(conn, webhook_id=webhook_id, delivery_id=delivery_id)
            return record, deliveries.attempts(conn, delivery_id=delivery_id)

    def redeliver(self, *, webhook_id: int, delivery_id: int, actor: str) -> DeliveryRecord:
        with write_tx(self.engine) as conn:
            return deliveries.redeliver(
                conn, webhook_id=webhook_id, delivery_id=delivery_id, actor=actor
            )

    def ping_webhook(self, *, webhook_id: int, actor: str) -> DeliveryRecord:
        with write_tx(self.engine, serialise=False) as conn:
            webhooks.get(conn, webhook_id=webhook_id)
            return deliveries.enqueue_ping(conn, webhook_id=webhook_id, actor=actor)

    # The dispatcher's bookkeeping writes no audit record or change event, so on PostgreSQL it
    # skips the writer lock; the row locks and the lease keep dispatchers apart.

    def webhooks_have_work(self, *, at: datetime) -> bool:
        with read_tx(self.engine) as conn:
            return deliveries.has_work(conn, at=at)

    def claim_webhooks(
        self, *, owner: str, at: datetime, lease: timedelta, limit: int = 10
    ) -> list[Claimed]:
        with write_tx(self.engine, serialise=False) as conn:
            return deliveries.claim(conn, owner=owner, at=at, lease=lease, limit=limit)

    def delivery_head(self, *, webhook_id: int) -> DeliveryRecord | None:
        with read_tx(self.engine) as conn:
            return deliveries.head(conn, webhook_id=webhook_id)

    def renew_webhook_lease(self, *, webhook_id: int, owner: str, until: datetime) -> bool:
        with write_tx(self.engine, serialise=False) as conn:
            return deliveries.renew(conn, webhook_id=webhook_id, owner=owner, until=until)

    def release_webhook(
        self, *, webhook_id: int, owner: str, blocked_until: datetime | None = None
    ) -> None:
        with write_tx(self.engine, serialise=False) as conn:
            deliveries.release(
                conn, webhook_id=webhook_id, owner=owner, blocked_until=blocked_until
            )

    def release_webhook_leases(self, *, owner: str) -> None:
        with write_tx(self.engine, serialise=False) as conn:
            deliveries.release_all(conn, owner=owner)

    def record_delivery_attempt(
        self, *, delivery: DeliveryRecord, at: datetime, response_code: int | None,
        latency_ms: int, error: str | None, next_attempt_at: datetime | None,
    ) -> DeliveryRecord:
        with write_tx(self.engine, serialise=False) as conn:
            return deliveries.record_attempt(
                conn, delivery=delivery, at=at, response_code=response_code,
                latency_ms=latency_ms, error=error, next_attempt_at=next_attempt_at,
            )

    def prune_deliveries(self, *, before: datetime) -> int:
        with write_tx(self.engine, serialise=False) as conn:
            return deliveries.prune(conn, before=before)

    # -- incoming triggers -----------------------------------------------------------------

    def create_trigger(
        self, *, flag: str, environment: str, name: Any = None, actor: str
    ) -> tuple[TriggerRecord, str]:
        with write_tx(self.engine) as conn:
            return triggers.create(
                conn, flag=flag, environment=environment, name=name, actor=actor
            )

    def list_triggers(self, *, flag: str | None = None) -> list[TriggerRecord]:
        with read_tx(self.engine) as conn:
            return triggers.list_for(conn, flag=flag)

    def revoke_trigger(self, *, trigger_id: str, actor: str) -> TriggerRecord:
        with write_tx(self.engine) as conn:
            return triggers.revoke(conn, trigger_id=trigger_id, actor=actor)

    def fire_trigger(self, *, secret: str) -> tuple[TriggerRecord, FlagRecord]:
        with write_tx(self.engine) as conn:
            return triggers.fire(conn, secret=secret)
