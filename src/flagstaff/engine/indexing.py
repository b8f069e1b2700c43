"""Turning runs of ``attribute in [strings]`` rules into one dictionary lookup.

Flags often hold many consecutive rules of the shape "one condition, ``in``/``equals`` a few
strings, same attribute" (country lists, tenant allow-lists).  Checking them one by one costs a
closure call each; a run of two or more becomes one ``{value: position}`` map, and the earliest
rule still wins, so the answers are exactly those of checking the rules in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flagstaff.engine.operators import Context, Match, make_getter
from flagstaff.engine.types import EvaluationDetail

Serve = Callable[[Context], EvaluationDetail]


def _membership_attribute(rule: Mapping[str, Any]) -> str | None:
    conditions = rule["conditions"]
    if len(conditions) != 1:
        return None
    c = conditions[0]
    if c["operator"] not in ("in", "equals") or c.get("negate"):
        return None
    if not all(isinstance(v, str) for v in c["values"]):
        return None
    attribute: str = c["attribute"]
    return attribute


def _group(attribute: str, members: Sequence[tuple[Mapping[str, Any], Serve]]) -> tuple[Match, Serve]:
    position: dict[str, int] = {}
    for i, (rule, _) in enumerate(members):
        for value in rule["conditions"][0]["values"]:
            position.setdefault(value, i)  # an earlier rule keeps the value
    serves = tuple(serve for _, serve in members)
    get = make_getter(attribute)

    def first(v: Any) -> int | None:
        if v.__class__ is str:
            return position.get(v)
        if isinstance(v, str):
            return position.get(str(v))
        if isinstance(v, list | tuple):  # any element matches; the earliest rule wins
            hits = [position[e] for e in v if isinstance(e, str) and e in position]
            return min(hits) if hits else None
        return None

    def match(ctx: Context) -> bool:
        v = get(ctx)
        if v.__class__ is str:
            return v in position
        return v is not None and first(v) is not None

    def serve(ctx: Context) -> EvaluationDetail:
        index = first(get(ctx))
        assert index is not None  # only called after match() said yes
        return serves[index](ctx)

    return match, serve


def group_membership_rules(
    rules: Sequence[tuple[Mapping[str, Any], Match, Serve]],
) -> tuple[tuple[Match, Serve], ...]:
    """(match, serve) pairs in order, runs of membership rules merged into one pair."""
    out: list[tuple[Match, Serve]] = []
    i = 0
    while i < len(rules):
        attribute = _membership_attribute(rules[i][0])
        j = i + 1
        if attribute is not None:
            while j < len(rules) and _membership_attribute(rules[j][0]) == attribute:
                j += 1
        if j - i >= 2:
            assert attribute is not None
            out.append(_group(attribute, [(r, serve) for r, _, serve in rules[i:j]]))
        else:
            out.append((rules[i][1], rules[i][2]))
            j = i + 1
        i = j
    return tuple(out)
