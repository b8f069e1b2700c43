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
from flagstaff.engine.types import EvaluationDetail, Reason, static_detail

Serve = Callable[[Context], EvaluationDetail]
# A fixed-variant rule's detail, not yet built: (value, variant, rule_id, rule_index, flag_key,
# version).  A 10,000-flag snapshot of 10-rule flags would otherwise keep 100,000 details alive
# for the cyclic GC to walk, most of them for rules that never match; a tuple of plain values
# is untracked by the GC.  The detail is built on the rule's first match and then kept.
PendingDetail = tuple[Any, str, str, int, str, int]
# What a rule serves: its static detail (built or pending) or a split.  Kept as data until a
# closure is really needed, so that merged rules cost no closure each.
Outcome = EvaluationDetail | PendingDetail | Serve
FlagFn = Callable[[Context, int, Any], EvaluationDetail]


def build_detail(pending: PendingDetail) -> EvaluationDetail:
    value, variant, rule_id, rule_index, flag_key, version = pending
    return static_detail(value, variant, Reason.RULE_MATCH, rule_id, rule_index, None, flag_key, version)


def as_serve(outcome: Outcome) -> Serve:
    if isinstance(outcome, tuple):
        outcome = build_detail(outcome)
    if isinstance(outcome, EvaluationDetail):
        detail = outcome
        return lambda ctx: detail
    return outcome


def _resolve(served: list[Outcome], index: int, ctx: Context) -> EvaluationDetail:
    """The outcome at ``index`` when it is not a built detail (the caller checked that)."""
    outcome = served[index]
    if isinstance(outcome, tuple):
        # Two threads may both build it: equal details, and the list store is atomic.
        detail = build_detail(outcome)
        served[index] = detail
        return detail
    if isinstance(outcome, EvaluationDetail):  # built by another thread meanwhile
        return outcome
    return outcome(ctx)


_MEMBERSHIP = frozenset({"in", "equals"})


def _membership_attribute(rule: Mapping[str, Any]) -> str | None:
    conditions = rule["conditions"]
    if len(conditions) != 1:
        return None
    c = conditions[0]
    if c["operator"] not in _MEMBERSHIP or c.get("negate") or c.get("ignore_case"):
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


def _positions(rules: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    position: dict[str, int] = {}
    for i, rule in enumerate(rules):
        for value in rule["conditions"][0]["values"]:
            position.setdefault(value, i)  # an earlier rule keeps the value
    return position


def _top_level(attribute: str) -> bool:
    return "." not in attribute and attribute not in ("key", "targeting_key")


def _group(
    attribute: str, rules: Sequence[Mapping[str, Any]], outcomes: Sequence[Outcome]
) -> tuple[Match, Serve]:
    position = _positions(rules)
    served = list(outcomes)
    # Few captured variables and module-level helpers: every closure and cell is one more
    # object per flag for the garbage collector to walk in a 10,000-flag snapshot.
    if _top_level(attribute):
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
            served: list[Outcome] = served,
        ) -> EvaluationDetail:
            index: int = _first(position, ctx.get(name))  # type: ignore[assignment]
            outcome = served[index]
            if outcome.__class__ is EvaluationDetail:
                return outcome
            return _resolve(served, index, ctx)

        return match_top, serve_top

    get = make_getter(attribute)

    def match(ctx: Context) -> bool:
        v = get(ctx)
        if v.__class__ is str:
            return v in position
        return v is not None and _first(position, v) is not None

    def serve(ctx: Context) -> EvaluationDetail:
        index: int = _first(position, get(ctx))  # type: ignore[assignment]
        outcome = served[index]
        if outcome.__class__ is EvaluationDetail:
            return outcome
        return _resolve(served, index, ctx)

    return match, serve


def one_group_flag(
    rules: Sequence[Mapping[str, Any]], outcomes: Sequence[Outcome], fallthrough: Serve
) -> FlagFn | None:
    """The whole flag as one closure when its rules are a single run on a top-level attribute
    (no targets or prerequisites), else ``None``: the common "country list, then a rollout"
    shape costs one call less per evaluation and two closures less per flag."""
    if len(rules) < 2:
        return None
    attribute = _membership_attribute(rules[0])
    if attribute is None or not _top_level(attribute):
        return None
    # _membership_attribute and _positions in one pass: this runs for every flag on load.
    position: dict[str, int] = {}
    for i, rule in enumerate(rules):
        conditions = rule["conditions"]
        if len(conditions) != 1:
            return None
        c = conditions[0]
        if (
            c.get("attribute") != attribute or c["operator"] not in _MEMBERSHIP or c.get("negate")
            or c.get("ignore_case")
        ):
            return None
        for value in c["values"]:
            if not isinstance(value, str):
                return None
            position.setdefault(value, i)
    served = list(outcomes)

    def group_then_fallthrough(  # defaults instead of cells: see compiler._split
        ctx: Context, depth: int, table: Any, name: str = attribute,
        position: dict[str, int] = position, served: list[Outcome] = served,
        fallthrough: Serve = fallthrough,
    ) -> EvaluationDetail:
        v = ctx.get(name)
        if v.__class__ is str:
            index = position.get(v)
        elif v is None:
            return fallthrough(ctx)
        else:
            index = _first(position, v)
        if index is None:
            return fallthrough(ctx)
        outcome = served[index]
        if outcome.__class__ is EvaluationDetail:
            return outcome
        return _resolve(served, index, ctx)

    return group_then_fallthrough


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
