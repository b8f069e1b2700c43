"""Planning and executing ``apply``: what must change on the server to match a flag file.

Both sides are compared as the engine's normalised canonical definitions (server-managed fields
dropped), so a file exported from a server, or applied once already, plans no change.  Updates
carry ``If-Match`` with the version that was read, so a concurrent edit fails with 412 instead
of being overwritten.  Nothing is ever deleted: flags on the server that the file does not
mention are reported and left alone.  Approval policies and webhook subscriptions are planned
in :mod:`flagstaff.cli.sync_governance`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from flagstaff.cli.client import ApiClient, path
from flagstaff.cli.diff import diff
from flagstaff.cli.plan import Action, Plan
from flagstaff.cli.sync_governance import execute_governance, plan_governance
from flagstaff.engine import (
    DefinitionError,
    flag_references,
    segment_references,
    validate_flag,
    validate_segment,
)
from flagstaff.engine.reassignment import keep_variation_order, reassignments
from flagstaff.flagfile import SERVER_MANAGED, FlagFile


def normalise(definition: Mapping[str, Any], *, segment: bool = False) -> dict[str, Any]:
    bare = {k: v for k, v in definition.items() if k not in SERVER_MANAGED}
    try:
        clean = validate_segment(bare) if segment else validate_flag(bare)
    except DefinitionError:
        return bare  # compare as stored; the server is the judge of what it holds
    return {k: v for k, v in clean.items() if k not in SERVER_MANAGED}


def make_plan(client: ApiClient, file: FlagFile, *, environment: str | None = None) -> Plan:
    actions: list[Action] = []
    wanted_envs = [environment] if environment else _environments(file)
    existing_envs = {e["key"] for e in client.items("/environments")}
    actions += [
        Action("environment", e, "create", {"key": e})
        for e in wanted_envs
        if e not in existing_envs
    ]

    segments = {s["key"]: s for s in client.items("/segments")}
    for wanted in _dependencies_first(file.segments, segment_references):
        current = segments.get(wanted["key"])
        if current is None:
            actions.append(Action("segment", wanted["key"], "create", wanted))
            continue
        changes = diff(normalise(current, segment=True), wanted)
        if changes:
            actions.append(
                Action("segment", wanted["key"], "update", wanted, _version(current), changes)
            )

    active = {f["key"]: f for f in client.items("/flags", state="active")}
    archived = {f["key"]: f for f in client.items("/flags", state="archived")}
    for wanted in _dependencies_first(file.flags, lambda f: flag_references(f)[0]):
        key = wanted["key"]
        current = active.get(key) or archived.get(key)
        if current is None:
            body = _scoped(wanted, None, environment)
            actions.append(Action("flag", key, "create", body, changes=[]))
            continue
        old = normalise(current)
        # The server keeps the stored order of a rollout listed in another order (it would
        # move users for nothing), so the preview does the same.
        body = keep_variation_order(old, _scoped(wanted, old, environment))
        changes = diff(old, body)
        if changes:
            changes += [r.to_change() for r in reassignments(old, body)]
        if key in archived:
            restore = {"path": "state", "op": "replace", "old": "archived", "new": "active"}
            actions.append(
                Action("flag", key, "restore", body, _version(current), [restore, *changes])
            )
        elif changes:
            actions.append(
                Action("flag", key, "update", body, _version(current), changes, _warnings(old, body))
            )
    governance = plan_governance(client, file, environment=environment)
    flags_from = next((i for i, a in enumerate(actions) if a.kind == "flag"), len(actions))
    actions[flags_from:flags_from] = governance.before_flags
    actions += governance.after_flags
    in_file = {f["key"] for f in file.flags}
    return Plan(
        actions=actions, unmanaged=sorted(k for k in active if k not in in_file),
        unmanaged_webhooks=governance.unmanaged_webhooks,
    )


def _warnings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The parts of an update that undo an operator's deliberate state on the server."""
    found = []
    new_envs = new.get("environments") or {}
    for env, config in (old.get("environments") or {}).items():
        wanted = new_envs.get(env) or {}
        if not config.get("enabled") and wanted.get("enabled"):
            found.append(f"turns {env} ON: it is off on the server (killed?); this reverts that")
        experiment = config.get("experiment") or {}
        if experiment.get("status") in ("running", "paused") and wanted.get("experiment") != experiment:
            found.append(
                f"changes the {experiment['status']} experiment in {env}: its users would "
                "move between arms and its data mix"
            )
    return found


def execute(client: ApiClient, plan: Plan, *, step: Callable[[Action], None] | None = None) -> None:
    for action in plan.actions:
        _apply(client, action)
        if step:
            step(action)


def _apply(client: ApiClient, action: Action) -> None:
    if execute_governance(client, action):
        return
    if action.kind == "environment":
        client.send("POST", "/environments", action.body)
    elif action.kind == "segment" and action.op == "create":
        client.send("POST", "/segments", action.body)
    elif action.kind == "segment":
        client.send("PUT", path("segments", action.key), action.body, if_match=action.version)
    elif action.op == "create":
        client.send("POST", "/flags", action.body)
    else:
        version = action.version
        if action.op == "restore":
            restored = client.send("POST", path("flags", action.key, "restore"), if_match=version)
            version = _version(restored) if isinstance(restored, dict) else None
        if action.op == "update" or len(action.changes) > 1:
            client.send("PUT", path("flags", action.key), action.body, if_match=version)


def _scoped(
    wanted: dict[str, Any], current: dict[str, Any] | None, environment: str | None
) -> dict[str, Any]:
    """With ``--env`` only that environment's configuration comes from the file."""
    if environment is None:
        return wanted
    body = copy.deepcopy(wanted)
    envs = dict(current.get("environments", {})) if current else {}
    envs.pop(environment, None)
    if environment in wanted.get("environments", {}):
        envs[environment] = wanted["environments"][environment]
    body["environments"] = envs
    return normalise(body)


def _dependencies_first(
    definitions: list[dict[str, Any]], references: Callable[[dict[str, Any]], set[str]]
) -> list[dict[str, Any]]:
    """File order, except that a definition comes after the ones it references (the server
    refuses references to objects that do not exist yet)."""
    by_key = {d["key"]: d for d in definitions}
    ordered: list[dict[str, Any]] = []
    placed: set[str] = set()

    def place(definition: dict[str, Any], visiting: frozenset[str]) -> None:
        key = definition["key"]
        if key in placed or key in visiting:
            return  # a cycle is the server's to refuse, with its message
        for ref in sorted(references(definition)):
            if ref in by_key:
                place(by_key[ref], visiting | {key})
        placed.add(key)
        ordered.append(definition)

    for definition in definitions:
        place(definition, frozenset())
    return ordered


def _environments(file: FlagFile) -> list[str]:
    result = list(file.environments)
    for flag in file.flags:
        result += [e for e in flag.get("environments", {}) if e not in result]
    result += [e for e in file.policies or {} if e not in result]
    return result


def _version(definition: Mapping[str, Any]) -> int | None:
    version = definition.get("version")
    return version if isinstance(version, int) else None
