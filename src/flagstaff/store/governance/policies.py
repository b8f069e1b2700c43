"""Approval policies per environment, and the guard every flag write passes.

A policy says how many approvals a change to an environment's configuration needs (0: off,
the default), whether the author may approve their own change, which role approves, and
whether turning a flag off (the incident kill) needs review too (by default it does not).

:func:`guard` runs inside every flag write (:func:`flagstaff.store.flag_writes.write`), after
the new definition is known and before anything is written: a write that changes the
configuration of an environment under a policy is refused with ``review_required`` unless it
is an approved change request's (``Review``) or an incident kill while the exception stands.
What let it through goes into the audit record's ``context``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from flagstaff.errors import Conflict, Invalid
from flagstaff.store import audit, shared_reads
from flagstaff.store.db import now
from flagstaff.store.governance.tables import approval_policies
from flagstaff.store.records import iso

APPROVER_ROLES = ("editor", "admin")
MAX_APPROVALS = 10
# An environment a flag does not configure serves as this (contract §1: missing = disabled).
DEFAULT_CONFIG: dict[str, Any] = {
    "enabled": False, "prerequisites": [], "targets": [], "rules": [], "fallthrough": None,
}


@dataclass(frozen=True, slots=True)
class Policy:
    environment: str
    required_approvals: int
    author_may_approve: bool
    approver_role: str
    kill_requires_review: bool
    updated_at: datetime | None = None
    updated_by: str | None = None

    @property
    def active(self) -> bool:
        return self.required_approvals > 0

    def describe(self) -> str:
        approvals = f"{self.required_approvals} approval{'s' if self.required_approvals > 1 else ''}"
        author = "" if self.author_may_approve else ", not by the author"
        return f"{approvals} by {'an admin' if self.approver_role == 'admin' else 'an editor or admin'}{author}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "required_approvals": self.required_approvals,
            "author_may_approve": self.author_may_approve,
            "approver_role": self.approver_role,
            "kill_requires_review": self.kill_requires_review,
            "updated_at": iso(self.updated_at) if self.updated_at else None,
            "updated_by": self.updated_by,
        }


def off(environment: str) -> Policy:
    return Policy(environment, 0, False, "editor", False)


@dataclass(frozen=True, slots=True)
class Review:
    """What allows a write past the guard: the protected environments an approved change
    request may change (or an environment being deleted), and what the audit should say."""

    environments: frozenset[str]
    context: dict[str, Any] = field(default_factory=dict)


def _policy(row: sa.Row[Any]) -> Policy:
    return Policy(
        environment=row.environment,
        required_approvals=int(row.required_approvals),
        author_may_approve=bool(row.author_may_approve),
        approver_role=row.approver_role,
        kill_requires_review=bool(row.kill_requires_review),
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def get(conn: sa.Connection, *, environment: str) -> Policy:
    """The environment's policy (``off`` when none was ever set)."""
    row = conn.execute(
        sa.select(approval_policies).where(approval_policies.c.environment == environment)
    ).first()
    return off(environment) if row is None else _policy(row)


def active_for(conn: sa.Connection, environments: Iterable[str]) -> dict[str, Policy]:
    wanted = sorted(set(environments))
    if not wanted:
        return {}
    if shared_reads.active(conn):
        every = shared_reads.memo(conn, "active_policies", lambda: _active(conn))
        return {env: every[env] for env in wanted if env in every}
    rows = conn.execute(
        sa.select(approval_policies).where(
            approval_policies.c.environment.in_(wanted),
            approval_policies.c.required_approvals > 0,
        )
    )
    return {row.environment: _policy(row) for row in rows}


def _active(conn: sa.Connection) -> dict[str, Policy]:
    rows = conn.execute(
        sa.select(approval_policies).where(approval_policies.c.required_approvals > 0)
    )
    return {row.environment: _policy(row) for row in rows}


def list_all(conn: sa.Connection) -> list[Policy]:
    rows = conn.execute(sa.select(approval_policies).order_by(approval_policies.c.environment))
    return [_policy(row) for row in rows]


def _bool(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise Invalid(f"{name} must be true or false", details={"field": name})
    return value


def check(environment: str, body: Any, current: Policy) -> Policy:
    """A policy from a request body (fields left out keep their current value)."""
    if not isinstance(body, Mapping):
        raise Invalid("a policy must be a JSON object", details={"field": ""})
    known = {"required_approvals", "author_may_approve", "approver_role", "kill_requires_review"}
    unknown = sorted(set(body) - known - {"environment", "updated_at", "updated_by"})
    if unknown:
        raise Invalid(
            f"unknown policy field {unknown[0]!r} (fields: {', '.join(sorted(known))})",
            details={"field": unknown[0]},
        )
    approvals = body.get("required_approvals", current.required_approvals)
    if isinstance(approvals, bool) or not isinstance(approvals, int) or not (
        0 <= approvals <= MAX_APPROVALS
    ):
        raise Invalid(
            f"required_approvals must be an integer from 0 (off) to {MAX_APPROVALS}",
            details={"field": "required_approvals"},
        )
    role = body.get("approver_role", current.approver_role)
    if role not in APPROVER_ROLES:
        raise Invalid(
            f"approver_role must be one of {', '.join(APPROVER_ROLES)}",
            details={"field": "approver_role"},
        )
    return Policy(
        environment=environment,
        required_approvals=approvals,
        author_may_approve=_bool(body, "author_may_approve", current.author_may_approve),
        approver_role=role,
        kill_requires_review=_bool(body, "kill_requires_review", current.kill_requires_review),
    )


def put(conn: sa.Connection, *, environment: str, body: Any, actor: str) -> Policy:
    current = get(conn, environment=environment)
    wanted = check(environment, body, current)
    before = current.to_dict() if current.updated_at else None
    moment = now()
    values = {
        "required_approvals": wanted.required_approvals,
        "author_may_approve": wanted.author_may_approve,
        "approver_role": wanted.approver_role,
        "kill_requires_review": wanted.kill_requires_review,
        "updated_at": moment,
        "updated_by": actor,
    }
    if before is None:
        conn.execute(approval_policies.insert().values(environment=environment, **values))
    else:
        conn.execute(
            approval_policies.update()
            .where(approval_policies.c.environment == environment)
            .values(**values)
        )
    updated = get(conn, environment=environment)
    shown = {k: v for k, v in updated.to_dict().items() if k not in ("updated_at", "updated_by")}
    old = {k: v for k, v in current.to_dict().items() if k not in ("updated_at", "updated_by")}
    if not audit.same_json(shown, old) or before is None:
        audit.record(
            conn, actor=actor, action="policy_updated", target_kind="environment",
            target_key=environment, environment=environment, before=before,
            after=updated.to_dict(), diff=audit.structural_diff(old, shown),
        )
    return updated


def drop(conn: sa.Connection, *, environment: str) -> None:
    conn.execute(
        approval_policies.delete().where(approval_policies.c.environment == environment)
    )


def config_of(definition: Mapping[str, Any] | None, environment: str) -> dict[str, Any]:
    """The environment's configuration with defaults filled in (missing = disabled)."""
    configs = (definition or {}).get("environments") or {}
    return {**DEFAULT_CONFIG, **(configs.get(environment) or {})}


def changed_environments(
    before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> list[str]:
    names = set((before or {}).get("environments") or {}) | set(after.get("environments") or {})
    return sorted(
        env for env in names
        if not audit.same_json(config_of(before, env), config_of(after, env))
    )


def is_turn_off(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True when the only change is ``enabled`` going from true to false (a kill)."""
    if not (old.get("enabled") is True and new.get("enabled") is False):
        return False
    rest = {k: v for k, v in old.items() if k != "enabled"}
    return audit.same_json(rest, {k: v for k, v in new.items() if k != "enabled"})


def review_required(policy: Policy, *, key: str, reason: str = "") -> Conflict:
    return Conflict(
        f"environment '{policy.environment}' requires review: changes to its configuration need "
        f"{policy.describe()}{reason}. Propose a change request instead (POST /change-requests, "
        f"or: flagstaff changes propose {key} --env {policy.environment} ...)",
        code="review_required",
        details={"environment": policy.environment, "flag": key, "policy": policy.to_dict()},
    )


def guard(
    conn: sa.Connection,
    *,
    key: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
    review: Review | None,
) -> dict[str, Any]:
    """Refuse a write that changes protected configuration without review; returns the audit
    context of the write (what allowed it)."""
    context = dict(review.context) if review is not None else {}
    changed = changed_environments(before, after)
    if not changed:
        return context
    allowed = review.environments if review is not None else frozenset()
    for environment, policy in active_for(conn, changed).items():
        if environment in allowed:
            continue
        if is_turn_off(config_of(before, environment), config_of(after, environment)):
            if policy.kill_requires_review:
                raise review_required(
                    policy, key=key,
                    reason=" (the incident exception is off here: kills need review too)",
                )
            context.setdefault("bypassed_review", []).append(environment)
            continue
        raise review_required(policy, key=key)
    return context
