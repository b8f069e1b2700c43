"""What ``apply`` will do: one action per object to create or change, in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flagstaff.cli.diff import Change


@dataclass
class Action:
    kind: str  # environment | segment | flag | policy | webhook
    key: str
    op: str  # create | update | restore
    body: dict[str, Any] = field(default_factory=dict)
    version: int | None = None
    changes: list[Change] = field(default_factory=list)
    # What the change does that an operator did on purpose on the server: turning on an
    # environment that is off (an incident kill, perhaps), changing a running experiment.
    warnings: list[str] = field(default_factory=list)
    # Where an update goes when the key is not the path (a webhook is known by its URL).
    target: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "key": self.key, "op": self.op, "changes": self.changes,
            "warnings": self.warnings,
        }


@dataclass
class Plan:
    actions: list[Action]
    unmanaged: list[str]  # server flags the file does not mention
    # Server subscriptions the file does not name (None: the file does not manage webhooks).
    unmanaged_webhooks: list[str] | None = None
