"""Experiments: the ``experiment`` block of a flag environment and its status machine.

The block lives in the flag definition (contract §9) so that every change to it is an ordinary
versioned flag write: validated by the engine, audited, and streamed to SDKs, which then start
or stop assigning users.  Allowed transitions: draft→running, running→paused, paused→running,
running|paused→completed.

Each start opens a run (:mod:`flagstaff.store.experiment_runs`) and completion closes it, so a
completed experiment set up again on the same flag does not mix its data with the last one's.

Once an experiment has started its configuration is frozen: changing variations, allocation or
salt would move users between arms and mix their data.  ``PUT`` is accepted while there is no
experiment, while it is a draft, or after it completed (which begins a new draft).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from flagstaff.errors import Conflict, Invalid, NotFound
from flagstaff.store import experiment_runs, flag_writes, flags
from flagstaff.store.records import FlagRecord

STATUSES = ("draft", "running", "paused", "completed")
# action -> (statuses it may start from, status it leads to, audit action)
ACTIONS: Mapping[str, tuple[tuple[str, ...], str, str]] = {
    "start": (("draft",), "running", "experiment_started"),
    "pause": (("running",), "paused", "experiment_paused"),
    "resume": (("paused",), "running", "experiment_resumed"),
    "complete": (("running", "paused"), "completed", "experiment_completed"),
}
_EDITABLE = ("draft", "completed")


@dataclass(frozen=True, slots=True)
class ExperimentView:
    """One environment's experiment of one flag, with the flag's version."""

    flag_key: str
    environment: str
    flag_version: int
    flag_kind: str
    experiment: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.flag_key,
            "environment": self.environment,
            "flag_version": self.flag_version,
            "flag_kind": self.flag_kind,
            **self.experiment,
        }


def _view(record: FlagRecord, environment: str) -> ExperimentView | None:
    config = (record.definition.get("environments") or {}).get(environment) or {}
    block = config.get("experiment")
    if not isinstance(block, dict):
        return None
    return ExperimentView(
        flag_key=record.key,
        environment=environment,
        flag_version=record.version,
        flag_kind=str(record.definition.get("kind", "release")),
        experiment=dict(block),
    )


def environments_with_experiment(record: FlagRecord) -> list[str]:
    configs = record.definition.get("environments") or {}
    return sorted(
        env for env, config in configs.items() if isinstance((config or {}).get("experiment"), dict)
    )


def resolve_environment(record: FlagRecord, environment: str | None) -> str:
    """The requested environment, or the flag's only experiment environment when omitted."""
    if environment:
        return environment
    found = environments_with_experiment(record)
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFound(
            f"flag '{record.key}' has no experiment in any environment; set one up first",
            details={"key": record.key},
        )
    raise Invalid(
        f"flag '{record.key}' has experiments in several environments ({', '.join(found)}); "
        "name the environment",
        details={"field": "environment"},
    )


def get(conn: sa.Connection, *, key: str, environment: str | None) -> ExperimentView:
    record = flag_writes.get_or_404(conn, key=key)
    env = resolve_environment(record, environment)
    view = _view(record, env)
    if view is None:
        raise NotFound(
            f"flag '{key}' has no experiment in environment '{env}'",
            details={"key": key, "environment": env},
        )
    return view


def list_all(conn: sa.Connection, *, status: str | None = None) -> list[ExperimentView]:
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}", details={"field": "status"})
    found = []
    for record in flags.all_active(conn):
        for env in environments_with_experiment(record):
            view = _view(record, env)
            if view is not None and (status is None or view.experiment.get("status") == status):
                found.append(view)
    return found


def _with_block(
    current: FlagRecord, environment: str, block: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    definition = flags.pure(current.definition)
    definition.setdefault("environments", {}).setdefault(environment, {})["experiment"] = block
    return flag_writes.normalise(definition, key=current.key), current.state


def put(
    conn: sa.Connection,
    *,
    key: str,
    environment: str,
    experiment: Any,
    actor: str,
    if_match: int | None,
) -> ExperimentView:
    """Set the experiment block of one environment (a new or draft experiment only)."""
    if not isinstance(experiment, Mapping):
        raise Invalid("an experiment must be a JSON object", details={"field": ""})
    current = flag_writes.get_or_404(conn, key=key)
    existing = _view(current, environment)
    status = "draft" if existing is None else existing.experiment.get("status", "draft")
    if status not in _EDITABLE:
        raise Conflict(
            f"the experiment of '{key}' in '{environment}' is {status}; its configuration is "
            "frozen once started (complete it, then set up a new one)",
            code="invalid_transition",
            details={"from": status, "environment": environment},
        )
    block = dict(experiment)
    requested = block.pop("status", "draft")
    if requested != "draft":
        raise Invalid(
            "a new or changed experiment starts as a draft; use POST /experiments/{key}/start",
            details={"field": "status"},
        )
    block["status"] = "draft"
    record = flag_writes.write(
        conn, key=key, actor=actor, if_match=if_match, action="experiment_updated",
        change=lambda cur: _with_block(cur, environment, block), environment=environment,
    )
    view = _view(record, environment)
    assert view is not None
    return view


def _refuse_if_off(conn: sa.Connection, *, key: str, environment: str, action: str) -> None:
    """A flag that is off serves its off variant (DISABLED) to everyone, so an experiment
    started on it would say "running" while nobody is assigned: refused, naming the fix."""
    record = flag_writes.get_or_404(conn, key=key)
    config = (record.definition.get("environments") or {}).get(environment) or {}
    if not config.get("enabled"):
        raise Conflict(
            f"cannot {action} the experiment: flag '{key}' is off in '{environment}', so every "
            "evaluation serves its off variant and nobody would be in the experiment; turn it on "
            f"first (flagstaff flags toggle {key} --on --env {environment})",
            code="flag_off",
            details={"key": key, "environment": environment},
        )


def transition(
    conn: sa.Connection,
    *,
    key: str,
    environment: str | None,
    action: str,
    actor: str,
    if_match: int | None = None,
) -> ExperimentView:
    """Move the experiment along the status machine; 409 naming from/to when not allowed."""
    if action not in ACTIONS:
        raise ValueError(f"unknown experiment action {action!r}")
    sources, target, audit_action = ACTIONS[action]
    view = get(conn, key=key, environment=environment)
    status = str(view.experiment.get("status", "draft"))
    if status not in sources:
        raise Conflict(
            f"cannot {action} the experiment: {status} -> {target} is not allowed "
            f"(allowed from {' or '.join(sources)})",
            code="invalid_transition",
            details={"from": status, "to": target, "environment": view.environment},
        )
    if target == "running":
        _refuse_if_off(conn, key=key, environment=view.environment, action=action)
    block = {**view.experiment, "status": target}
    record = flag_writes.write(
        conn, key=key, actor=actor, if_match=if_match, action=audit_action,
        change=lambda cur: _with_block(cur, view.environment, block),
        environment=view.environment,
    )
    updated = _view(record, view.environment)
    assert updated is not None
    if action == "start":
        config = {k: v for k, v in updated.experiment.items() if k != "status"}
        experiment_runs.begin(
            conn, environment=view.environment, flag_key=key, config=config, version=record.version
        )
    elif action == "complete":
        experiment_runs.end(conn, environment=view.environment, flag_key=key, version=record.version)
    return updated
