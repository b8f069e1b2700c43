"""References between definitions (prerequisites, segment_match), cycle detection, resolution.

The store refuses writes whose references are missing or cyclic using these functions; the
snapshot compiler uses them to know what to recompile when one object changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flagstaff.engine.checks import BOOLEAN_VARIANTS


def _condition_segments(rules: Iterable[Mapping[str, Any]]) -> set[str]:
    found: set[str] = set()
    for rule in rules:
        for condition in rule.get("conditions", ()):
            if condition.get("operator") == "segment_match":
                values = condition.get("values")
                if values is None and "value" in condition:
                    value = condition["value"]
                    values = value if isinstance(value, list) else [value]
                found.update(v for v in values or () if isinstance(v, str))
    return found


def flag_references(definition: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """(prerequisite flag keys, segment keys) named anywhere in the flag, across environments.

    Accepts a canonical definition or an environment-resolved flag.
    """
    envs: Iterable[Mapping[str, Any]]
    if "environments" in definition:
        envs = definition.get("environments", {}).values()
    else:
        envs = [definition]
    flags: set[str] = set()
    segments: set[str] = set()
    for env in envs:
        flags.update(p["flag"] for p in env.get("prerequisites", ()) if isinstance(p.get("flag"), str))
        segments |= _condition_segments(env.get("rules", ()))
    return flags, segments


def segment_references(definition: Mapping[str, Any]) -> set[str]:
    """Segment keys named by the segment's own ``segment_match`` conditions."""
    return _condition_segments(definition.get("rules", ()))


def find_cycle(graph: Mapping[str, Iterable[str]], start: str) -> list[str] | None:
    """A cycle reachable from ``start`` as ``["a", "b", "a"]``, or ``None``.

    Iterative depth-first search, so a long chain cannot hit the recursion limit.
    """
    path: list[str] = [start]
    on_path = {start}
    done: set[str] = set()
    stack = [iter(sorted(graph.get(start, ())))]
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            finished = path.pop()
            on_path.discard(finished)
            done.add(finished)
            continue
        if nxt in on_path:
            return [*path[path.index(nxt):], nxt]
        if nxt in done:
            continue
        path.append(nxt)
        on_path.add(nxt)
        stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def resolve_flag(definition: Mapping[str, Any], environment: str) -> dict[str, Any]:
    """The flag as seen by one environment (contract §3); a missing environment is disabled.

    Accepts any definition ``validate_flag`` accepts, normalised or not: a boolean flag's
    defaults (its two variants, ``off_variant`` "false") are filled in here because the
    snapshot validates a resolved flag on its own, without the definition's defaults.
    """
    env = definition.get("environments", {}).get(environment) or {}
    flag_type = definition.get("type", "boolean")
    variants = definition.get("variants")
    off_variant = definition.get("off_variant")
    if flag_type == "boolean":
        if variants is None:
            variants = dict(BOOLEAN_VARIANTS)
        if off_variant is None:
            off_variant = "false"
    resolved = {
        "key": definition["key"],
        "type": flag_type,
        "kind": definition.get("kind", "release"),
        "version": definition.get("version", 1),
        "state": definition.get("state", "active"),
        "variants": {} if variants is None else variants,
        "off_variant": off_variant,
        "salt": definition.get("salt"),
        "client_side": definition.get("client_side", False),
        "enabled": env.get("enabled", False),
        "prerequisites": env.get("prerequisites", []),
        "targets": env.get("targets", []),
        "rules": env.get("rules", []),
        "fallthrough": env.get("fallthrough"),
    }
    # Only present when configured, so snapshots of flags without experiments are unchanged.
    if env.get("experiment") is not None:
        resolved["experiment"] = env["experiment"]
    return resolved
