"""Typed records returned by the store.

Records are immutable snapshots of a row at read time.  ``definition`` dictionaries are private
copies, so callers may serialise or mutate them without affecting the store.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with a ``Z`` suffix, the contract's timestamp format."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class FlagRecord:
    """A flag: ``definition`` is the full canonical definition including server fields."""

    key: str
    version: int
    state: str
    created_at: datetime
    updated_at: datetime
    definition: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.definition)


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    """A segment: ``definition`` is the canonical segment without server fields."""

    key: str
    version: int
    created_at: datetime
    updated_at: datetime
    definition: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        out = copy.deepcopy(self.definition)
        out.update(
            version=self.version, created_at=iso(self.created_at), updated_at=iso(self.updated_at)
        )
        return out


@dataclass(frozen=True, slots=True)
class EnvironmentRecord:
    key: str
    name: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "created_at": iso(self.created_at)}


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token as it may be shown: never the secret, never its hash."""

    id: str
    name: str
    kind: str
    role: str | None
    environment: str | None
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "role": self.role,
            "environment": self.environment,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "last_used_at": iso(self.last_used_at) if self.last_used_at else None,
            "revoked_at": iso(self.revoked_at) if self.revoked_at else None,
        }


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    created_at: datetime
    actor: str
    action: str
    target_kind: str
    target_key: str
    environment: str | None
    before: Any
    after: Any
    diff: list[dict[str, Any]]
    event_id: int | None = None
    # What the write came from, when not a plain request (change request, schedule, trigger,
    # a review bypass); None for plain writes.
    context: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": iso(self.created_at),
            "actor": self.actor,
            "action": self.action,
            "target_kind": self.target_kind,
            "target_key": self.target_key,
            "environment": self.environment,
            "before": copy.deepcopy(self.before),
            "after": copy.deepcopy(self.after),
            "diff": copy.deepcopy(self.diff),
            "event_id": self.event_id,
            "context": copy.deepcopy(self.context),
        }


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One committed change; ``data`` is the object after the change (None on delete)."""

    id: int
    created_at: datetime
    type: str
    kind: str
    key: str
    data: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": iso(self.created_at),
            "type": self.type,
            "kind": self.kind,
            "key": self.key,
            "data": copy.deepcopy(self.data),
        }


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; pass ``next_cursor`` back to get the next one (None: last page)."""

    items: list[T] = field(default_factory=list)
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class ClientAccessRecord:
    """What browsers may do in one environment.  ``to_dict`` never includes the secret."""

    environment: str
    allowed_origins: tuple[str, ...]
    secure_mode: bool
    secure_mode_secret: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "allowed_origins": list(self.allowed_origins),
            "secure_mode": self.secure_mode,
        }


@dataclass(frozen=True, slots=True)
class InstallationRecord:
    """This database's identity: ``id`` is random per install, ``signing_key`` signs stream
    URLs.  Neither is ever shown through the API."""

    id: str
    signing_key: str
    created_at: datetime
