"""Structural diffs of definitions, and their readable rendering.

The same ``{"path", "op", "old", "new"}`` change records as the server's audit log (contract
§6), so ``apply`` previews and ``flags audit`` print alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from flagstaff.engine.reassignment import describe

Change = dict[str, Any]


def diff(old: Any, new: Any, path: str = "") -> list[Change]:
    """Changes turning ``old`` into ``new``; lists of equal length are compared item by item."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        changes: list[Change] = []
        for key in old:
            if key not in new:
                changes.append(
                    {"path": _join(path, key), "op": "remove", "old": old[key], "new": None}
                )
        for key in new:
            if key not in old:
                changes.append(
                    {"path": _join(path, key), "op": "add", "old": None, "new": new[key]}
                )
            else:
                changes.extend(diff(old[key], new[key], _join(path, key)))
        return changes
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        changes = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            changes.extend(diff(a, b, f"{path}[{i}]"))
        return changes
    if _same(old, new):
        return []
    return [{"path": path, "op": "replace", "old": old, "new": new}]


def _same(a: Any, b: Any) -> bool:
    # 1 == True in Python; a flag file distinguishes them.
    return (type(a) is type(b) and a == b) or (_number(a) and _number(b) and a == b)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else str(key)


def render(changes: Iterable[Mapping[str, Any]], *, indent: str = "    ") -> list[str]:
    """Rich-markup lines: ``~ path: old -> new``, ``+ path: new``, ``- path: old``."""
    lines = []
    for change in changes:
        op, where = change.get("op"), change.get("path") or "(whole value)"
        if op == "reassign":
            lines.append(f"{indent}[bold magenta]! {where}: {describe(change)}[/]")
        elif op == "add":
            lines.append(f"{indent}[green]+ {where}: {_show(change.get('new'))}[/]")
        elif op == "remove":
            lines.append(f"{indent}[red]- {where}: {_show(change.get('old'))}[/]")
        else:
            old, new = _show(change.get("old")), _show(change.get("new"))
            lines.append(f"{indent}[yellow]~ {where}: {old} -> {new}[/]")
    return lines


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    text = text if len(text) <= 120 else text[:117] + "..."
    return text.replace("[", r"\[")
