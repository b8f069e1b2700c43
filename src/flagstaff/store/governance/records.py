"""Typed records of governed change, as the store returns them."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flagstaff.store.records import iso


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    id: int
    flag: str
    environment: str
    action: str
    params: dict[str, Any]
    description: str
    due_at: datetime
    status: str
    base_version: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    change_request_id: int | None
    executed_at: datetime | None
    late_ms: int | None
    result_version: int | None
    audit_id: int | None
    error: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "flag": self.flag,
            "environment": self.environment,
            "action": self.action,
            "params": copy.deepcopy(self.params),
            "description": self.description,
            "at": iso(self.due_at),
            "status": self.status,
            "base_version": self.base_version,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "change_request": self.change_request_id,
            "executed_at": _iso(self.executed_at),
            "late_ms": self.late_ms,
            "result_version": self.result_version,
            "audit_id": self.audit_id,
            "error": copy.deepcopy(self.error),
        }


@dataclass(frozen=True, slots=True)
class ReviewEntry:
    id: int
    actor: str
    token_id: str
    verdict: str
    comment: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "actor": self.actor, "verdict": self.verdict,
            "comment": self.comment, "created_at": iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class ChangeRequestRecord:
    id: int
    flag: str
    environment: str
    status: str
    description: str
    patch: dict[str, Any]
    base_version: int
    base_config: dict[str, Any]
    proposed_config: dict[str, Any]
    author: str
    author_token: str
    created_at: datetime
    updated_at: datetime
    schedule_id: int | None
    applied_version: int | None
    applied_audit_id: int | None
    error: dict[str, Any] | None
    diff: list[dict[str, Any]]
    reviews: list[ReviewEntry] = field(default_factory=list)
    required_approvals: int = 1

    @property
    def approvers(self) -> list[str]:
        return [r.actor for r in self.reviews if r.verdict == "approved"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "flag": self.flag,
            "environment": self.environment,
            "status": self.status,
            "description": self.description,
            "patch": copy.deepcopy(self.patch),
            "base_version": self.base_version,
            "base_config": copy.deepcopy(self.base_config),
            "proposed_config": copy.deepcopy(self.proposed_config),
            "diff": copy.deepcopy(self.diff),
            "author": self.author,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "approvals": len(self.approvers),
            "required_approvals": self.required_approvals,
            "reviews": [r.to_dict() for r in self.reviews],
            "schedule": self.schedule_id,
            "applied_version": self.applied_version,
            "applied_audit_id": self.applied_audit_id,
            "error": copy.deepcopy(self.error),
        }

    def summary(self) -> dict[str, Any]:
        """What the audit log keeps of a change request at each step."""
        return {
            "id": self.id, "flag": self.flag, "environment": self.environment,
            "status": self.status, "description": self.description,
            "base_version": self.base_version, "approvals": len(self.approvers),
            "applied_version": self.applied_version,
        }


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    """A subscription as it may be shown: never its secret."""

    id: int
    url: str
    description: str
    format: str
    events: list[str]
    flags: list[str]
    environments: list[str]
    tags: list[str]
    active: bool
    created_at: datetime
    created_by: str
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "url": self.url, "description": self.description,
            "format": self.format, "events": list(self.events), "flags": list(self.flags),
            "environments": list(self.environments), "tags": list(self.tags),
            "active": self.active, "created_at": iso(self.created_at),
            "created_by": self.created_by, "updated_at": iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: int
    webhook_id: int
    event: str
    audit_id: int | None
    payload: dict[str, Any]
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    response_code: int | None
    latency_ms: int | None
    last_error: str | None
    redelivery_of: int | None

    def to_dict(self, *, with_payload: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "webhook": self.webhook_id, "event": self.event,
            "audit_id": self.audit_id, "status": self.status, "attempts": self.attempts,
            "created_at": iso(self.created_at),
            "next_attempt_at": iso(self.next_attempt_at) if self.status == "pending" else None,
            "last_attempt_at": _iso(self.last_attempt_at),
            "delivered_at": _iso(self.delivered_at), "response_code": self.response_code,
            "latency_ms": self.latency_ms, "last_error": self.last_error,
            "redelivery_of": self.redelivery_of,
        }
        if with_payload:
            out["payload"] = copy.deepcopy(self.payload)
        return out


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    id: int
    attempted_at: datetime
    response_code: int | None
    latency_ms: int
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempted_at": iso(self.attempted_at), "response_code": self.response_code,
            "latency_ms": self.latency_ms, "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class TriggerRecord:
    """An incoming trigger as it may be shown: never its secret."""

    id: str
    flag: str
    environment: str
    name: str
    created_at: datetime
    created_by: str
    last_fired_at: datetime | None
    fire_count: int
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "flag": self.flag, "environment": self.environment,
            "name": self.name, "created_at": iso(self.created_at),
            "created_by": self.created_by, "last_fired_at": _iso(self.last_fired_at),
            "fire_count": self.fire_count, "revoked_at": _iso(self.revoked_at),
        }
