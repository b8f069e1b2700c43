"""Change requests: a proposed change to one flag's configuration in one environment, reviewed
by others before it is applied (four eyes).

A change request carries a JSON merge patch of the environment's configuration (or a whole
configuration), the flag version it was written against (its base), the configuration it
proposes (validated by the engine when proposed) and the diff between the two.  Reviewers
comment, approve or reject; the environment's policy says how many approvals it needs, by
which role, and whether the author may approve.  Once approved it is applied now or at a set
time, only if the flag is still at its base version: otherwise it is marked ``conflict`` and
nothing is written.  Every step is an audit record (target kind ``change_request``); the
applied flag write's audit record names the change request in its ``context`` and the change
request keeps that record's id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from flagstaff.engine.reassignment import reassignments
from flagstaff.errors import (
    Conflict,
    FlagstaffError,
    Forbidden,
    Invalid,
    NotFound,
    PreconditionFailed,
)
from flagstaff.store import audit, environments, flag_writes, flags
from flagstaff.store.db import now
from flagstaff.store.governance import changes, policies, schedules
from flagstaff.store.governance.records import ChangeRequestRecord, ReviewEntry
from flagstaff.store.governance.tables import change_request_reviews, change_requests
from flagstaff.store.paging import check_limit, decode_cursor, encode_cursor
from flagstaff.store.records import FlagRecord, Page

STATUSES = ("open", "approved", "scheduled", "applied", "rejected", "cancelled", "conflict")
LIVE = ("open", "approved", "scheduled")
VERDICTS = ("approved", "rejected", "commented")
_ROLE_RANK = {"viewer": 0, "editor": 1, "admin": 2}
TEXT_MAX = 4000


def _text(value: Any, field: str, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > TEXT_MAX or (required and not value.strip()):
        need = "a non-empty string" if required else "a string"
        raise Invalid(
            f"{field} must be {need} of at most {TEXT_MAX} characters", details={"field": field}
        )
    return value


def _reviews(conn: sa.Connection, cr_id: int) -> list[ReviewEntry]:
    rows = conn.execute(
        sa.select(change_request_reviews)
        .where(change_request_reviews.c.change_request_id == cr_id)
        .order_by(change_request_reviews.c.id)
    )
    return [
        ReviewEntry(
            id=int(r.id), actor=r.actor, token_id=r.token_id, verdict=r.verdict,
            comment=r.comment, created_at=r.created_at,
        )
        for r in rows
    ]


def _reassigned(
    conn: sa.Connection, key: str, env: str, base: Any, proposed: Any
) -> list[dict[str, Any]]:
    """The users the proposal would move (the flag's salt and off variant as they are now)."""
    current = flags.get(conn, key=key)
    if current is None or not isinstance(base, dict) or not isinstance(proposed, dict):
        return []
    definition = flags.pure(current.definition)
    before = {**definition, "environments": {env: base}}
    after = {**definition, "environments": {env: proposed}}
    return [r.to_change() for r in reassignments(before, after)]


def _record(conn: sa.Connection, row: sa.Row[Any], *, with_reviews: bool = True) -> ChangeRequestRecord:
    env = row.environment
    diff = audit.structural_diff(
        {"environments": {env: row.base_config}}, {"environments": {env: row.proposed_config}}
    )
    diff.extend(_reassigned(conn, row.flag_key, env, row.base_config, row.proposed_config))
    required = policies.get(conn, environment=env).required_approvals or 1
    return ChangeRequestRecord(
        id=int(row.id), flag=row.flag_key, environment=env, status=row.status,
        description=row.description, patch=dict(row.patch or {}),
        base_version=int(row.base_version), base_config=dict(row.base_config),
        proposed_config=dict(row.proposed_config), author=row.author,
        author_token=row.author_token, created_at=row.created_at, updated_at=row.updated_at,
        schedule_id=row.schedule_id, applied_version=row.applied_version,
        applied_audit_id=row.applied_audit_id, error=row.error, diff=diff,
        reviews=_reviews(conn, int(row.id)) if with_reviews else [],
        required_approvals=required,
    )


def get(conn: sa.Connection, *, change_request_id: int) -> ChangeRequestRecord:
    row = conn.execute(
        sa.select(change_requests).where(change_requests.c.id == change_request_id)
    ).first()
    if row is None:
        raise NotFound(
            f"change request {change_request_id} does not exist",
            details={"id": change_request_id},
        )
    return _record(conn, row)


def list_page(
    conn: sa.Connection,
    *,
    status: str | None = None,
    flag: str | None = None,
    environment: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[ChangeRequestRecord]:
    """Newest first."""
    limit = check_limit(limit)
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}", details={"field": "status"})
    query = sa.select(change_requests).order_by(change_requests.c.id.desc()).limit(limit + 1)
    for column, value in (
        (change_requests.c.status, status), (change_requests.c.flag_key, flag),
        (change_requests.c.environment, environment),
    ):
        if value is not None:
            query = query.where(column == value)
    if cursor is not None:
        query = query.where(change_requests.c.id < decode_cursor(cursor, expected=int))
    rows = conn.execute(query).all()
    items = [_record(conn, row) for row in rows[:limit]]
    return Page(
        items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None
    )


def _proposed(
    current: FlagRecord, environment: str, patch: Any, config: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what the author sent, the proposed configuration normalised)."""
    if (patch is None) == (config is None):
        raise Invalid(
            "give exactly one of patch (a merge patch of the environment's configuration) "
            "or config (the whole configuration)",
            details={"field": "patch"},
        )
    sent = patch if patch is not None else config
    field = "patch" if patch is not None else "config"
    if not isinstance(sent, Mapping) or (patch is not None and not sent):
        raise Invalid(f"{field} must be a non-empty JSON object", details={"field": field})
    wanted = (
        flag_writes.merge_patch(changes.raw_config(current, environment), dict(sent))
        if patch is not None else dict(sent)
    )
    try:
        definition = changes.with_config(current, environment, wanted)
    except Invalid as exc:
        where = str(exc.details.get("field", ""))
        prefix = f"environments.{environment}."
        exc.details["field"] = field + ("." + where[len(prefix):] if where.startswith(prefix) else "")
        raise
    return {field: dict(sent)}, policies.config_of(definition, environment)


def create(
    conn: sa.Connection,
    *,
    flag: str,
    environment: str,
    patch: Any = None,
    config: Any = None,
    description: Any = None,
    base_version: int | None = None,
    actor: str,
    token_id: str,
) -> ChangeRequestRecord:
    current = flag_writes.get_or_404(conn, key=flag)
    environments.get_or_404(conn, key=environment)
    if current.state != "active":
        raise Conflict(f"flag '{flag}' is archived; restore it before proposing changes")
    flag_writes.check_if_match(current, base_version)
    sent, proposed = _proposed(current, environment, patch, config)
    base = policies.config_of(flags.pure(current.definition), environment)
    if audit.same_json(base, proposed):
        raise Invalid(
            f"the change request changes nothing: {environment} is already configured so",
            details={"field": next(iter(sent))},
        )
    moment = now()
    result = conn.execute(
        change_requests.insert().values(
            flag_key=flag, environment=environment, status="open",
            description=_text(description, "description"), patch=sent,
            base_version=current.version, base_config=base, proposed_config=proposed,
            author=actor, author_token=token_id, created_at=moment, updated_at=moment,
        )
    )
    record = get(conn, change_request_id=int(result.inserted_primary_key[0]))  # type: ignore[index]
    _audit(conn, actor=actor, action="created", before=None, after=record,
           diff=record.diff)
    return record


def _audit(
    conn: sa.Connection, *, actor: str, action: str, before: ChangeRequestRecord | None,
    after: ChangeRequestRecord, diff: list[dict[str, Any]] | None = None,
    context: dict[str, Any] | None = None,
) -> int:
    old = None if before is None else before.summary()
    return audit.record(
        conn, actor=actor, action=action, target_kind="change_request", target_key=str(after.id),
        environment=after.environment, before=old, after=after.summary(),
        diff=diff if diff is not None else audit.structural_diff(old or {}, after.summary()),
        context=context,
    )


def _set(conn: sa.Connection, cr_id: int, **values: Any) -> ChangeRequestRecord:
    conn.execute(
        change_requests.update().where(change_requests.c.id == cr_id).values(updated_at=now(), **values)
    )
    return get(conn, change_request_id=cr_id)


def _live(record: ChangeRequestRecord, doing: str) -> None:
    if record.status not in LIVE:
        raise Conflict(
            f"change request {record.id} is {record.status}; it cannot be {doing}",
            code="invalid_transition", details={"status": record.status},
        )


def review(
    conn: sa.Connection,
    *,
    change_request_id: int,
    verdict: str,
    comment: Any,
    actor: str,
    token_id: str,
    role: str,
) -> ChangeRequestRecord:
    """Comment on, approve or reject a change request (as the environment's policy allows)."""
    if verdict not in VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r}")
    current = get(conn, change_request_id=change_request_id)
    text = _text(comment, "comment", required=verdict != "approved")
    _live(current, {"approved": "approved", "rejected": "rejected", "commented": "commented on"}[verdict])
    if verdict != "commented":
        policy = policies.get(conn, environment=current.environment)
        if _ROLE_RANK.get(role, -1) < _ROLE_RANK[policy.approver_role]:
            raise Forbidden(
                f"in {current.environment} only the {policy.approver_role} role (or higher) "
                f"approves or rejects changes (you are {role})",
                details={"policy": policy.to_dict()},
            )
        if verdict == "approved" and token_id == current.author_token and not policy.author_may_approve:
            raise Forbidden(
                f"the author of a change may not approve it in {current.environment} "
                "(policy: author_may_approve is off); ask a reviewer",
                details={"policy": policy.to_dict()},
            )
        if verdict == "approved" and any(
            r.token_id == token_id and r.verdict == "approved" for r in current.reviews
        ):
            raise Conflict(
                f"you already approved change request {current.id}", code="already_approved"
            )
    conn.execute(
        change_request_reviews.insert().values(
            change_request_id=current.id, actor=actor, token_id=token_id, verdict=verdict,
            comment=text, created_at=now(),
        )
    )
    status = current.status
    if verdict == "rejected":
        status = "rejected"
        _cancel_schedule(conn, current, actor=actor)
    elif verdict == "approved" and status == "open":
        approvals = len({r.token_id for r in current.reviews if r.verdict == "approved"}) + 1
        if approvals >= current.required_approvals:
            status = "approved"
    updated = _set(conn, current.id, status=status)
    _audit(conn, actor=actor, action=verdict, before=current, after=updated,
           context={"comment": text} if text else None)
    return updated


def _cancel_schedule(conn: sa.Connection, record: ChangeRequestRecord, *, actor: str) -> None:
    if record.status == "scheduled" and record.schedule_id is not None:
        schedules.cancel(conn, schedule_id=record.schedule_id, actor=actor)


def cancel(
    conn: sa.Connection, *, change_request_id: int, actor: str, token_id: str, role: str
) -> ChangeRequestRecord:
    """Withdraw a change request (its author, or an admin)."""
    current = get(conn, change_request_id=change_request_id)
    _live(current, "cancelled")
    if token_id != current.author_token and role != "admin":
        raise Forbidden("only the author of a change request or an admin may cancel it")
    _cancel_schedule(conn, current, actor=actor)
    updated = _set(conn, current.id, status="cancelled")
    _audit(conn, actor=actor, action="cancelled", before=current, after=updated)
    return updated


def _ready(record: ChangeRequestRecord, *, scheduled_ok: bool) -> None:
    allowed = ("approved", "scheduled") if scheduled_ok else ("approved",)
    if record.status not in allowed:
        if record.status == "open":
            raise Conflict(
                f"change request {record.id} has {len(record.approvers)} of "
                f"{record.required_approvals} approval(s) it needs; it cannot be applied yet",
                code="not_approved",
                details={"approvals": len(record.approvers), "required": record.required_approvals},
            )
        _live(record, "applied")
        raise Conflict(
            f"change request {record.id} is already scheduled (schedule {record.schedule_id}); "
            "cancel the schedule to apply it now",
            code="invalid_transition", details={"status": record.status},
        )


def apply_locked(
    conn: sa.Connection,
    *,
    change_request_id: int,
    actor: str,
    context: dict[str, Any] | None = None,
    scheduled: bool = False,
) -> tuple[FlagRecord, int | None]:
    """Write the approved change if the flag is still at the base version; otherwise raise
    ``PreconditionFailed`` (the caller records the conflict in a transaction of its own)."""
    current = get(conn, change_request_id=change_request_id)
    _ready(current, scheduled_ok=scheduled)
    flag = flag_writes.get_or_404(conn, key=current.flag)
    if flag.version != current.base_version:
        moved = changes.paths_changed_since(conn, key=current.flag, version=current.base_version)
        raise PreconditionFailed(
            f"flag '{current.flag}' moved from version {current.base_version} (the change "
            f"request's base) to {flag.version}; nothing was applied. Review the new state and "
            "propose the change again.",
            details={
                "change_request": current.id, "base_version": current.base_version,
                "current_version": flag.version, "changed_paths": sorted(set(moved)),
            },
        )
    link = {"change_request": current.id, "approved_by": current.approvers, **(context or {})}
    record, audit_id = flag_writes.write_audited(
        conn,
        key=current.flag,
        actor=changes.actor_label(f"{actor} via change request #{current.id}"),
        if_match=current.base_version,
        action="updated",
        change=lambda flag_now: (
            changes.with_config(flag_now, current.environment, current.proposed_config),
            flag_now.state,
        ),
        environment=current.environment,
        review=policies.Review(frozenset({current.environment}), link),
    )
    updated = _set(
        conn, current.id, status="applied", applied_version=record.version,
        applied_audit_id=audit_id,
    )
    _audit(
        conn, actor=actor, action="applied", before=current, after=updated,
        context={"audit_id": audit_id, "version": record.version, **(context or {})},
    )
    return record, audit_id


def record_failure(
    conn: sa.Connection, *, change_request_id: int, error: FlagstaffError, actor: str
) -> ChangeRequestRecord:
    """Mark a change request whose application failed (``conflict`` when its base moved)."""
    current = get(conn, change_request_id=change_request_id)
    status = "conflict" if isinstance(error, PreconditionFailed) else current.status
    if status == current.status and current.status == "scheduled":
        status = "approved"  # the schedule is gone; it may be applied again
    updated = _set(
        conn, current.id, status=status, schedule_id=None if status != "scheduled" else current.schedule_id,
        error={"code": error.code, "message": error.message, "details": error.details},
    )
    _audit(conn, actor=actor, action="failed", before=current, after=updated,
           context={"error": updated.error})
    return updated


def schedule(
    conn: sa.Connection, *, change_request_id: int, at: Any, actor: str
) -> ChangeRequestRecord:
    """Apply an approved change request at ``at`` (a schedule that checks the base version)."""
    current = get(conn, change_request_id=change_request_id)
    _ready(current, scheduled_ok=False)
    planned = schedules.insert_for_change_request(conn, change_request=current, at=at, actor=actor)
    updated = _set(conn, current.id, status="scheduled", schedule_id=planned.id)
    _audit(conn, actor=actor, action="scheduled", before=current, after=updated,
           context={"schedule": planned.id, "at": planned.to_dict()["at"]})
    return updated


def unschedule(conn: sa.Connection, *, change_request_id: int, actor: str) -> None:
    """The schedule of a change request was cancelled: it is approved (not applied) again."""
    current = get(conn, change_request_id=change_request_id)
    if current.status == "scheduled":
        updated = _set(conn, current.id, status="approved", schedule_id=None)
        _audit(conn, actor=actor, action="unscheduled", before=current, after=updated)


class ScheduleHooks:
    """How the scheduler applies a change request it was asked to (see schedules.execute)."""

    def apply(
        self, conn: sa.Connection, *, change_request_id: int, context: dict[str, Any]
    ) -> tuple[FlagRecord, int | None]:
        return apply_locked(
            conn, change_request_id=change_request_id, actor="scheduler", context=context,
            scheduled=True,
        )

    def failed(self, conn: sa.Connection, *, change_request_id: int, error: FlagstaffError) -> None:
        record_failure(conn, change_request_id=change_request_id, error=error, actor="scheduler")
