"""Reference bookkeeping and checks: prerequisites, segment matches, environments, cycles.

The ``object_refs`` table mirrors the references inside every stored definition, so deleting
a segment, archiving a prerequisite or detecting a cycle needs no scan of all definitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import sqlalchemy as sa

from flagstaff.engine import find_cycle
from flagstaff.errors import Invalid
from flagstaff.store import shared_reads
from flagstaff.store.schema import environments, flags, object_refs, segments


def _conditions(rules: Any, path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for r, rule in enumerate(rules if isinstance(rules, list) else []):
        conditions = rule.get("conditions", []) if isinstance(rule, Mapping) else []
        for c, condition in enumerate(conditions if isinstance(conditions, list) else []):
            if isinstance(condition, Mapping):
                yield f"{path}rules[{r}].conditions[{c}]", condition


def segment_paths(rules: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, segment key) for each ``segment_match`` value under ``rules``."""
    for path, condition in _conditions(rules, prefix):
        if condition.get("operator") == "segment_match":
            for index, value in enumerate(condition.get("values") or []):
                yield f"{path}.values[{index}]", str(value)


def prerequisite_paths(definition: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for env, config in (definition.get("environments") or {}).items():
        for index, prerequisite in enumerate(config.get("prerequisites") or []):
            yield f"environments.{env}.prerequisites[{index}].flag", str(prerequisite["flag"])


def flag_segment_paths(definition: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for env, config in (definition.get("environments") or {}).items():
        yield from segment_paths(config.get("rules"), f"environments.{env}.")


def _path_of(paths: Iterable[tuple[str, str]], key: str, fallback: str) -> str:
    return next((path for path, target in paths if target == key), fallback)


def check_flag_references(
    conn: sa.Connection,
    definition: Mapping[str, Any],
    *,
    prerequisites: set[str],
    segment_keys: set[str],
) -> None:
    """Refuse unknown environments, missing or archived prerequisites, missing segments, cycles."""
    key = str(definition["key"])
    env_keys = set(definition.get("environments") or {})
    if env_keys:
        known = _known_environments(conn, env_keys)
        for env in sorted(env_keys - known):
            raise Invalid(
                f"environment '{env}' does not exist", details={"field": f"environments.{env}"}
            )
    if prerequisites:
        rows = conn.execute(
            sa.select(flags.c.key, flags.c.state).where(flags.c.key.in_(prerequisites))
        )
        states = {str(row.key): str(row.state) for row in rows}
        states.setdefault(key, "active")
        for missing in sorted(prerequisites):
            path = _path_of(prerequisite_paths(definition), missing, "environments")
            if missing not in states:
                raise Invalid(
                    f"prerequisite flag '{missing}' does not exist", details={"field": path}
                )
            if states[missing] != "active":
                raise Invalid(f"prerequisite flag '{missing}' is archived", details={"field": path})
        graph = edges(conn, kind="flag", target_kind="flag")
        graph[key] = set(prerequisites)
        _refuse_cycle(graph, key, list(prerequisite_paths(definition)), fallback="environments")
    _check_segments_exist(conn, segment_keys, flag_segment_paths(definition))


def _known_environments(conn: sa.Connection, keys: set[str]) -> set[str]:
    if shared_reads.active(conn):
        every = shared_reads.memo(
            conn, "environment_keys",
            lambda: set(conn.execute(sa.select(environments.c.key)).scalars()),
        )
        return keys & every
    query = sa.select(environments.c.key).where(environments.c.key.in_(keys))
    return set(conn.execute(query).scalars())


def check_segment_references(
    conn: sa.Connection, definition: Mapping[str, Any], *, segment_keys: set[str]
) -> None:
    key = str(definition["key"])
    paths = list(segment_paths(definition.get("rules")))
    _check_segments_exist(conn, segment_keys - {key}, paths)
    graph = edges(conn, kind="segment", target_kind="segment")
    graph[key] = set(segment_keys)
    _refuse_cycle(graph, key, paths, fallback="rules")


def _check_segments_exist(
    conn: sa.Connection, keys: set[str], paths: Iterable[tuple[str, str]]
) -> None:
    if not keys:
        return
    known = set(conn.execute(sa.select(segments.c.key).where(segments.c.key.in_(keys))).scalars())
    path_list = list(paths)
    for missing in sorted(keys - known):
        raise Invalid(
            f"segment '{missing}' does not exist",
            details={"field": _path_of(path_list, missing, "rules")},
        )


def _refuse_cycle(
    graph: Mapping[str, Iterable[str]],
    start: str,
    paths: list[tuple[str, str]],
    *,
    fallback: str,
) -> None:
    cycle = find_cycle(graph, start)
    if cycle:
        # Name the reference in this definition that starts the cycle.
        first_step = cycle[cycle.index(start) + 1] if start in cycle[:-1] else None
        field = _path_of(paths, first_step, fallback) if first_step else fallback
        raise Invalid(
            f"reference cycle: {' -> '.join(cycle)}", details={"field": field, "cycle": cycle}
        )


def edges(conn: sa.Connection, *, kind: str, target_kind: str) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    rows = conn.execute(
        sa.select(object_refs.c.source_key, object_refs.c.target_key).where(
            object_refs.c.source_kind == kind, object_refs.c.target_kind == target_kind
        )
    )
    for source, target in rows:
        graph.setdefault(source, set()).add(target)
    return graph


def replace_refs(
    conn: sa.Connection, *, kind: str, key: str, targets: Iterable[tuple[str, str]]
) -> None:
    """Make the stored references of (kind, key) exactly ``targets`` [(target_kind, key)]."""
    conn.execute(
        object_refs.delete().where(
            object_refs.c.source_kind == kind, object_refs.c.source_key == key
        )
    )
    rows = [
        {"source_kind": kind, "source_key": key, "target_kind": tk, "target_key": tkey}
        for tk, tkey in sorted(set(targets))
    ]
    if rows:
        conn.execute(object_refs.insert(), rows)


def referrers(conn: sa.Connection, *, target_kind: str, target_key: str) -> list[tuple[str, str]]:
    """(source kind, source key) of everything that references the target, sorted."""
    rows = conn.execute(
        sa.select(object_refs.c.source_kind, object_refs.c.source_key)
        .where(object_refs.c.target_kind == target_kind, object_refs.c.target_key == target_key)
        .order_by(object_refs.c.source_kind, object_refs.c.source_key)
    )
    return [(str(kind), str(key)) for kind, key in rows]
