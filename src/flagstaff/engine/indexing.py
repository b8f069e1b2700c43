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
# What a rule serves: its static detail (a fixed variant) or a split.  Kept as a detail until
# a closure is really needed, so that merged rules cost no closure each (10,000 flags of 10
# rules would otherwise allocate 300,000 more objects for the garbage collector to walk).
Outcome = EvaluationDetail | Serve


def as_serve(outcome: Outcome) -> Serve:
    if isinstance(outcome, EvaluationDetail):
        detail = outcome
        return lambda ctx: detail
    return outcome


def _membership_attribute(rule: Mapping[str, Any]) -> str | None:
    conditions = rule["conditions"]
    if len(conditions) != 1:
        return None
    c = conditions[0]
    if c["operator"] not in ("in", "equals") or c.get("negate"):
        return None
    for value in c["values"]:
        if not isinstance(value, str):
            return None
    attribute: str = c["attribute"]
    return attribute


def _first(position: dict[str, int], v: Any) -> int | None:
    """The earliest rule holding ``v`` (a string, or any element of a list)."""
    if v.__class__ is str:
        return position.get(v)
    if isinstance(v, str):
        return position.get(str(v))
    if isinstance(v, list | tuple):  # any element matches; the earliest rule wins
        hits = [position[e] for e in v if isinstance(e, str) and e in position]
        return min(hits) if hits else None
    return None


def _group(
    attribute: str, rules: Sequence[Mapping[str, Any]], outcomes: Sequence[Outcome]
) -> tuple[Match, Serve]:
    position: dict[str, int] = {}
    for i, rule in enumerate(rules):
        for value in rule["conditions"][0]["values"]:
            position.setdefault(value, i)  # an earlier rule keeps the value
    served = tuple(outcomes)
    # Few captured variables and module-level helpers: every closure and cell is one more
    # object per flag for the garbage collector to walk in a 10,000-flag snapshot.
    if "." not in attribute and attribute not in ("key", "targeting_key"):
        name = attribute

        # Defaults instead of closure cells: fewer objects per flag for the cyclic GC (see
        # compiler._split). Callers pass only ``ctx``.
        def match_top(
            ctx: Context, name: str = name, position: dict[str, int] = position
        ) -> bool:
            v = ctx.get(name)
            if v.__class__ is str:
                return v in position
            return v is not None and _first(position, v) is not None

        def serve_top(
            ctx: Context, name: str = name, position: dict[str, int] = position,
            served: tuple[Outcome, ...] = served,
        ) -> EvaluationDetail:
            outcome = served[_first(position, ctx.get(name))]  # type: ignore[index]
            if outcome.__class__ is EvaluationDetail:
                return outcome
            return outcome(ctx)  # type: ignore[operator]

        return match_top, serve_top

    get = make_getter(attribute)

    def match(ctx: Context) -> bool:
        v = get(ctx)
        if v.__class__ is str:
            return v in position
        return v is not None and _first(position, v) is not None

    def serve(ctx: Context) -> EvaluationDetail:
        outcome = served[_first(position, get(ctx))]  # type: ignore[index]
        if outcome.__class__ is EvaluationDetail:
            return outcome
        return outcome(ctx)  # type: ignore[operator]

    return match, serve


def group_membership_rules(
    rules: Sequence[Mapping[str, Any]],
    outcomes: Sequence[Outcome],
    compile_match: Callable[[Mapping[str, Any]], Match],
) -> tuple[tuple[Match, Serve], ...]:
    """(match, serve) pairs in order, runs of membership rules merged into one pair.

    ``compile_match`` is called only for rules left on their own, so the conditions of merged
    rules are never compiled into closures that would be thrown away.
    """
    out: list[tuple[Match, Serve]] = []
    attributes = [_membership_attribute(rule) for rule in rules]
    i = 0
    n = len(rules)
    while i < n:
        attribute = attributes[i]
        j = i + 1
        if attribute is not None:
            while j < n and attributes[j] == attribute:
                j += 1
        if j - i >= 2:
            assert attribute is not None
            out.append(_group(attribute, rules[i:j], outcomes[i:j]))
        else:
            out.append((compile_match(rules[i]), as_serve(outcomes[i])))
            j = i + 1
        i = j
    return tuple(out)
