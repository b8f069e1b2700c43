"""Scheduled changes: one flag, one environment, one instant; executed exactly once.

A schedule turns the flag on or off, sets a rollout's weights (the fallthrough's or a rule's;
a ramp is several schedules) or applies a JSON merge patch to the environment's
configuration.  It is checked when it is created (the change must be valid against the flag
as it is) and remembers the version it was written against.

Execution (:func:`claim_due` then :func:`execute_batch`) claims a batch of the oldest due
schedules and applies them in ONE write transaction: the claim (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, the single writer lock on SQLite), each flag write with its audit record and
change event, and each schedule's new status commit together, so whichever process claims a
schedule first runs it and no other ever can.  A schedule that fails is recorded as failed
without undoing the others (it runs in a savepoint of its own).  If the
flag was changed since the schedule was written, in a path the schedule also changes, the
schedule fails (status, audit record, webhook event) instead of overwriting that change.
Writes made by other schedules do not count: a ramp is several schedules on one rollout.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa

from flagstaff.errors import Conflict, FlagstaffError, Invalid, NotFound
from flagstaff.store import audit, environments, flag_writes, flags, shared_reads
from flagstaff.store.db import is_postgres, now
from flagstaff.store.governance import changes, policies
from flagstaff.store.governance.records import ScheduleRecord
from flagstaff.store.governance.tables import schedules
from flagstaff.store.paging import check_limit, decode_cursor, encode_cursor
from flagstaff.store.records import FlagRecord, Page

ACTIONS = ("enable", "disable", "rollout", "patch")
STATUSES = ("pending", "applied", "failed", "cancelled")
# Only an approved change request schedules this one (see change_requests.apply).
CHANGE_REQUEST = "change_request"
# A time this far in the past is a mistake (a wrong date or zone), not "now".
PAST_TOLERANCE = timedelta(minutes=5)
DESCRIPTION_MAX = 2000
# Most schedules one transaction claims and applies.  A burst due at one instant is applied
# in a few commits rather than one per schedule, while the writer lock (which every API
# write waits for) is never held for more than one batch.
BATCH = 25


def _record(row: sa.Row[Any]) -> ScheduleRecord:
    return ScheduleRecord(
        id=int(row.id), flag=row.flag_key, environment=row.environment, action=row.action,
        params=dict(row.params or {}), description=row.description, due_at=row.due_at,
        status=row.status, base_version=int(row.base_version), created_by=row.created_by,
        created_at=row.created_at, updated_at=row.updated_at,
        change_request_id=row.change_request_id, executed_at=row.executed_at,
        late_ms=row.late_ms, result_version=row.result_version, audit_id=row.audit_id,
        error=row.error,
    )


def get(conn: sa.Connection, *, schedule_id: int) -> ScheduleRecord:
    row = conn.execute(sa.select(schedules).where(schedules.c.id == schedule_id)).first()
    if row is None:
        raise NotFound(f"schedule {schedule_id} does not exist", details={"id": schedule_id})
    return _record(row)


def list_page(
    conn: sa.Connection,
    *,
    status: str | None = None,
    flag: str | None = None,
    environment: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[ScheduleRecord]:
    """Schedules by due time (then id); pending ones first when no status is given."""
    limit = check_limit(limit)
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}", details={"field": "status"})
    query = sa.select(schedules).order_by(schedules.c.due_at, schedules.c.id).limit(limit + 1)
    for column, value in (
        (schedules.c.status, status), (schedules.c.flag_key, flag),
        (schedules.c.environment, environment),
    ):
        if value is not None:
            query = query.where(column == value)
    if cursor is not None:
        position = decode_cursor(cursor, expected=list)
        if len(position) != 2 or not isinstance(position[1], int):
            raise Invalid("cursor is not valid", details={"field": "cursor"})
        due = datetime.fromisoformat(str(position[0]))
        query = query.where(
            sa.or_(
                schedules.c.due_at > due,
                sa.and_(schedules.c.due_at == due, schedules.c.id > position[1]),
            )
        )
    rows = conn.execute(query).all()
    items = [_record(row) for row in rows[:limit]]
    next_cursor = (
        encode_cursor([items[-1].due_at.isoformat(), items[-1].id]) if len(rows) > limit else None
    )
    return Page(items=items, next_cursor=next_cursor)


def _weights(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    variations = params.get("variations")
    if not isinstance(variations, list) or not variations:
        raise Invalid(
            "a rollout needs variations: [{\"variant\": ..., \"weight\": ...}, ...]",
            details={"field": "variations"},
        )
    return [dict(v) if isinstance(v, Mapping) else v for v in variations]


def check_change(action: Any, body: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of ``action`` from a request body."""
    if action not in ACTIONS:
        raise Invalid(f"action must be one of {', '.join(ACTIONS)}", details={"field": "action"})
    if action in ("enable", "disable"):
        return {}
    if action == "rollout":
        params: dict[str, Any] = {"variations": _weights(body)}
        rule = body.get("rule")
        if rule is not None:
            if not isinstance(rule, str) or not rule:
                raise Invalid("rule must be a rule id", details={"field": "rule"})
            params["rule"] = rule
        return params
    patch = body.get("patch")
    if not isinstance(patch, Mapping) or not patch:
        raise Invalid(
            "patch must be a non-empty JSON merge patch of the environment's configuration",
            details={"field": "patch"},
        )
    return {"patch": dict(patch)}


def target_config(
    current: FlagRecord, environment: str, action: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    """The environment's configuration once the change is made (not yet validated)."""
    config = changes.raw_config(current, environment)
    if action in ("enable", "disable"):
        config["enabled"] = action == "enable"
    elif action == "patch":
        config = flag_writes.merge_patch(config, params["patch"])
    else:
        rollout = {"variations": params["variations"]}
        rule_id = params.get("rule")
        if rule_id is None:
            old = (config.get("fallthrough") or {}).get("rollout") or {}
            config["fallthrough"] = {"rollout": {**old, **rollout}}
        else:
            rules = config.get("rules") or []
            match = next((r for r in rules if isinstance(r, dict) and r.get("id") == rule_id), None)
            if match is None:
                raise Invalid(
                    f"flag '{current.key}' has no rule '{rule_id}' in {environment}",
                    details={"field": "rule"},
                )
            old = (match.get("serve") or {}).get("rollout") or {}
            match["serve"] = {"rollout": {**old, **rollout}}
    return config


def touched_paths(environment: str, action: str, params: Mapping[str, Any]) -> list[str]:
    prefix = f"environments.{environment}"
    if action in ("enable", "disable"):
        return [f"{prefix}.enabled"]
    if action == "patch":
        return changes.patch_paths(prefix, params["patch"])
    # Rules are diffed by position, so any change to the rules list counts for a rule rollout.
    return [f"{prefix}.rules" if params.get("rule") else f"{prefix}.fallthrough"]


def _check_at(at: Any) -> datetime:
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise Invalid("at must be an ISO-8601 time with a timezone", details={"field": "at"})
    if at < now() - PAST_TOLERANCE:
        raise Invalid("at is in the past", details={"field": "at"})
    return at


def _check_description(description: Any) -> str:
    if description is None:
        return ""
    if not isinstance(description, str) or len(description) > DESCRIPTION_MAX:
        raise Invalid(
            f"description must be a string of at most {DESCRIPTION_MAX} characters",
            details={"field": "description"},
        )
    return description


def _dry_run(
    conn: sa.Connection, current: FlagRecord, environment: str, action: str,
    params: Mapping[str, Any],
) -> None:
    """Refuse now what would fail when due: invalid results and changes under review."""
    if current.state != "active":
        raise Conflict(f"flag '{current.key}' is archived; restore it before scheduling")
    proposed = changes.with_config(
        current, environment, target_config(current, environment, action, params)
    )
    policies.guard(
        conn, key=current.key, before=flags.pure(current.definition), after=proposed, review=None
    )


def create(
    conn: sa.Connection,
    *,
    flag: str,
    environment: str,
    at: Any,
    action: Any,
    body: Mapping[str, Any],
    description: Any,
    actor: str,
) -> ScheduleRecord:
    due = _check_at(at)
    params = check_change(action, body)
    current = flag_writes.get_or_404(conn, key=flag)
    environments.get_or_404(conn, key=environment)
    _dry_run(conn, current, environment, str(action), params)
    moment = now()
    result = conn.execute(
        schedules.insert().values(
            flag_key=flag, environment=environment, action=action, params=params,
            description=_check_description(description), due_at=due, status="pending",
            base_version=current.version, created_by=actor, created_at=moment,
            updated_at=moment,
        )
    )
    record = get(conn, schedule_id=int(result.inserted_primary_key[0]))  # type: ignore[index]
    _audit(conn, actor=actor, action="created", before=None, after=record)
    return record


def insert_for_change_request(
    conn: sa.Connection, *, change_request: Any, at: Any, actor: str
) -> ScheduleRecord:
    """The schedule that applies an approved change request at ``at``."""
    due = _check_at(at)
    moment = now()
    result = conn.execute(
        schedules.insert().values(
            flag_key=change_request.flag, environment=change_request.environment,
            action=CHANGE_REQUEST, params={}, description=change_request.description,
            due_at=due, status="pending", base_version=change_request.base_version,
            created_by=actor, created_at=moment, updated_at=moment,
            change_request_id=change_request.id,
        )
    )
    record = get(conn, schedule_id=int(result.inserted_primary_key[0]))  # type: ignore[index]
    _audit(conn, actor=actor, action="created", before=None, after=record)
    return record


def _pending(conn: sa.Connection, schedule_id: int) -> ScheduleRecord:
    record = get(conn, schedule_id=schedule_id)
    if record.status != "pending":
        raise Conflict(
            f"schedule {schedule_id} is {record.status}; only pending schedules change",
            code="invalid_transition", details={"status": record.status},
        )
    return record


def update(
    conn: sa.Connection, *, schedule_id: int, body: Mapping[str, Any], actor: str
) -> ScheduleRecord:
    """Move a pending schedule, or change what it does (then it is rebased on the flag as it is
    now, since its author has looked at the flag again)."""
    current = _pending(conn, schedule_id)
    values: dict[str, Any] = {}
    if "at" in body:
        values["due_at"] = _check_at(body["at"])
    if "description" in body:
        values["description"] = _check_description(body["description"])
    if "action" in body or any(k in body for k in ("patch", "variations", "rule")):
        if current.change_request_id is not None:
            raise Conflict(
                "this schedule applies a change request; change the request instead",
                details={"change_request": current.change_request_id},
            )
        action = body.get("action", current.action)
        merged = {**current.params, **{k: v for k, v in body.items() if k != "action"}}
        params = check_change(action, merged)
        flag = flag_writes.get_or_404(conn, key=current.flag)
        _dry_run(conn, flag, current.environment, str(action), params)
        values.update(action=action, params=params, base_version=flag.version)
    if not values:
        return current
    conn.execute(
        schedules.update().where(schedules.c.id == schedule_id).values(updated_at=now(), **values)
    )
    record = get(conn, schedule_id=schedule_id)
    _audit(conn, actor=actor, action="updated", before=current, after=record)
    return record


def cancel(conn: sa.Connection, *, schedule_id: int, actor: str) -> ScheduleRecord:
    current = _pending(conn, schedule_id)
    conn.execute(
        schedules.update()
        .where(schedules.c.id == schedule_id)
        .values(status="cancelled", updated_at=now())
    )
    record = get(conn, schedule_id=schedule_id)
    _audit(conn, actor=actor, action="cancelled", before=current, after=record)
    return record


def _audit(
    conn: sa.Connection, *, actor: str, action: str, before: ScheduleRecord | None,
    after: ScheduleRecord, context: dict[str, Any] | None = None,
) -> int:
    return audit.record(
        conn, actor=actor, action=action, target_kind="schedule", target_key=str(after.id),
        environment=after.environment, before=None if before is None else before.to_dict(),
        after=after.to_dict(), context=context,
    )


def next_due(conn: sa.Connection) -> datetime | None:
    """When the earliest pending schedule is due (a cheap read for the worker's sleep)."""
    value: datetime | None = conn.execute(
        sa.select(schedules.c.due_at)
        .where(schedules.c.status == "pending")
        .order_by(schedules.c.due_at)
        .limit(1)
    ).scalar()
    return value


def claim_due(conn: sa.Connection, *, at: datetime, limit: int = 1) -> list[ScheduleRecord]:
    """Lock up to ``limit`` of the oldest pending schedules due at ``at``, skipping any another
    replica holds.  Claiming a batch in one statement lets a burst of schedules due at the
    same instant be applied in one transaction instead of one claim and commit each."""
    query = (
        sa.select(schedules)
        .where(schedules.c.status == "pending", schedules.c.due_at <= at)
        .order_by(schedules.c.due_at, schedules.c.id)
        .limit(limit)
    )
    if is_postgres(conn):
        query = query.with_for_update(skip_locked=True)
    return [_record(row) for row in conn.execute(query)]


def late_ms(due: datetime, at: datetime) -> int:
    return max(0, math.floor((at - due).total_seconds() * 1000))


class ChangeRequestHooks(Protocol):
    """How a schedule made by an approved change request applies it (the change request module
    provides these; passing them in keeps the two modules free of an import circle)."""

    def apply(
        self, conn: sa.Connection, *, change_request_id: int, context: dict[str, Any]
    ) -> tuple[FlagRecord, int | None]: ...

    def failed(
        self, conn: sa.Connection, *, change_request_id: int, error: FlagstaffError
    ) -> None: ...


def _refuse_conflict(conn: sa.Connection, schedule: ScheduleRecord, current: FlagRecord) -> None:
    """Fail if writes since the schedule's base version changed what it changes.  A flag still
    at that version has no such writes, so the audit log is read only when it moved on."""
    if current.version == schedule.base_version:
        return
    touched = touched_paths(schedule.environment, schedule.action, schedule.params)
    since = changes.paths_changed_since(
        conn, key=schedule.flag, version=schedule.base_version, except_scheduled=True
    )
    moved = changes.overlaps(touched, since)
    if moved:
        raise Conflict(
            f"flag '{schedule.flag}' was changed after this schedule was written (version "
            f"{schedule.base_version}), in what the schedule changes: {', '.join(sorted(set(moved)))}",
            code="schedule_conflict",
            details={"base_version": schedule.base_version, "paths": sorted(set(moved))},
        )


def _apply_plain(
    conn: sa.Connection, schedule: ScheduleRecord, *, late: int
) -> tuple[FlagRecord, int | None]:
    environments.get_or_404(conn, key=schedule.environment)

    def change(current: FlagRecord) -> tuple[dict[str, Any], str]:
        _refuse_conflict(conn, schedule, current)
        config = target_config(current, schedule.environment, schedule.action, schedule.params)
        return changes.with_config(current, schedule.environment, config), current.state

    return flag_writes.write_audited(
        conn,
        key=schedule.flag,
        actor=changes.actor_label(f"scheduled by {schedule.created_by}"),
        if_match=None,
        action="toggled" if schedule.action in ("enable", "disable") else "updated",
        change=change,
        environment=schedule.environment,
        review=policies.Review(frozenset(), {"schedule": schedule.id, "late_ms": late}),
    )


def execute_batch(
    conn: sa.Connection, claimed: list[ScheduleRecord], *, at: datetime,
    hooks: ChangeRequestHooks,
) -> list[ScheduleRecord]:
    """Run claimed schedules in order; failures are recorded, not raised.

    The flags they change are read in one query.  The batch first runs inside one savepoint
    with none per schedule (two statements fewer per write); if a schedule fails, that attempt
    is rolled back and the batch runs again with a savepoint per schedule (:func:`execute`),
    so the failed one is recorded without undoing the others, exactly as it would have been.
    """
    flags.prefetch(conn, keys=[s.flag for s in claimed])
    if len(claimed) > 1:
        try:
            with conn.begin_nested():
                return [_applied(conn, s, at=at, hooks=hooks) for s in claimed]
        except FlagstaffError:
            shared_reads.forget(conn, flags.FLAG_MEMO)  # it holds rows the rollback undid
    return [execute(conn, s, at=at, hooks=hooks) for s in claimed]


def _run(
    conn: sa.Connection, schedule: ScheduleRecord, *, late: int, hooks: ChangeRequestHooks
) -> tuple[FlagRecord, int | None]:
    if schedule.change_request_id is not None:
        return hooks.apply(
            conn, change_request_id=schedule.change_request_id,
            context={"schedule": schedule.id, "late_ms": late},
        )
    return _apply_plain(conn, schedule, late=late)


def _applied(
    conn: sa.Connection, schedule: ScheduleRecord, *, at: datetime, hooks: ChangeRequestHooks
) -> ScheduleRecord:
    """Run a claimed schedule and record it applied; a failure is raised."""
    late = late_ms(schedule.due_at, at)
    record, audit_id = _run(conn, schedule, late=late, hooks=hooks)
    return _record_applied(conn, schedule, at=at, late=late, record=record, audit_id=audit_id)


def _record_applied(
    conn: sa.Connection, schedule: ScheduleRecord, *, at: datetime, late: int,
    record: FlagRecord, audit_id: int | None,
) -> ScheduleRecord:
    values: dict[str, Any] = {
        "executed_at": at.astimezone(UTC), "late_ms": late, "updated_at": now(),
        "status": "applied", "result_version": record.version, "audit_id": audit_id,
    }
    conn.execute(schedules.update().where(schedules.c.id == schedule.id).values(**values))
    # The row is now exactly the claimed one with these values: no need to read it back.
    return dataclasses.replace(schedule, **values)


def execute(
    conn: sa.Connection, schedule: ScheduleRecord, *, at: datetime, hooks: ChangeRequestHooks
) -> ScheduleRecord:
    """Run a claimed schedule; a failure is recorded (status, audit, webhook), not raised."""
    late = late_ms(schedule.due_at, at)
    values: dict[str, Any] = {
        "executed_at": at.astimezone(UTC), "late_ms": late, "updated_at": now(),
    }
    try:
        with conn.begin_nested():
            record, audit_id = _run(conn, schedule, late=late, hooks=hooks)
    except FlagstaffError as exc:
        shared_reads.forget(conn, flags.FLAG_MEMO)  # it may hold rows the rollback undid
        values.update(
            status="failed",
            error={"code": exc.code, "message": exc.message, "details": exc.details},
        )
        conn.execute(schedules.update().where(schedules.c.id == schedule.id).values(**values))
        if schedule.change_request_id is not None:
            hooks.failed(conn, change_request_id=schedule.change_request_id, error=exc)
        failed = get(conn, schedule_id=schedule.id)
        _audit(
            conn, actor="scheduler", action="failed", before=schedule, after=failed,
            context={"error": failed.error, "late_ms": late},
        )
        return failed
    return _record_applied(conn, schedule, at=at, late=late, record=record, audit_id=audit_id)
