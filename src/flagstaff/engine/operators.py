"""Compilation of validated conditions into small closures ``match(context) -> bool``.

Each operator becomes a *predicate* over one attribute value returning ``True`` (matches),
``False`` (comparable, does not match) or ``None`` (wrong type: not comparable).  Positive
operators match on ``True``; their ``not_*`` twins match on ``False``, so a wrong type never
matches either of them.  A list-valued attribute is compared element by element: ``True`` if
any element gives ``True``, else ``False`` if any gives ``False``, else ``None``.
A missing (or null) attribute never matches, whatever ``negate`` says; only ``exists`` looks
at presence.  ``negate`` inverts the result for a present attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flagstaff.engine.values import compile_regex, is_number, parse_instant, parse_semver

Context = Mapping[str, Any]
Match = Callable[[Context], bool]
Pred = Callable[[Any], "bool | None"]
SegmentLookup = Callable[[str], "Match | None"]

NEGATIVE = {"not_equals": "equals", "not_in": "in", "not_contains": "contains"}
_TK_PATHS = frozenset({"key", "targeting_key"})


def targeting_key(ctx: Context) -> Any:
    """``targeting_key``, else ``targetingKey``, else ``key`` (contract §4)."""
    tk = ctx.get("targeting_key")
    if tk is None:
        tk = ctx.get("targetingKey")
        if tk is None:
            tk = ctx.get("key")
    return tk


def make_getter(attribute: str) -> Callable[[Context], Any]:
    """A getter for a dotted path, compiled to a tuple walk; ``None`` when absent."""
    if attribute in _TK_PATHS:
        return targeting_key
    parts = tuple(attribute.split("."))
    if len(parts) == 1:
        name = parts[0]
        return lambda ctx: ctx.get(name)

    def get(ctx: Context) -> Any:
        value: Any = ctx
        for part in parts:
            if value.__class__ is not dict and not isinstance(value, Mapping):
                return None
            value = value.get(part)
            if value is None:
                return None
        return value

    return get


def _scalar_pred(values: list[Any]) -> Pred:
    # Three sets so that True never equals 1 and "1" never equals 1 (one pass over the values).
    str_list: list[str] = []
    bool_list: list[bool] = []
    num_list: list[Any] = []
    for value in values:
        if isinstance(value, str):
            str_list.append(value)
        elif isinstance(value, bool):
            bool_list.append(value)
        elif is_number(value):
            num_list.append(value)
    strs = frozenset(str_list)
    if strs and not bool_list and not num_list:
        # Only strings (the common case): anything but a string is incomparable.
        return lambda v: (v in strs) if isinstance(v, str) else None
    bools = frozenset(bool_list)
    nums = frozenset(num_list)

    def pred(v: Any) -> bool | None:
        if isinstance(v, str):
            return v in strs if strs else None
        if isinstance(v, bool):
            return v in bools if bools else None
        if is_number(v):
            return v in nums if nums else None
        return None

    return pred


def _string_pred(op: str, values: list[str]) -> Pred:
    if op == "starts_with":
        prefixes = tuple(values)
        return lambda v: v.startswith(prefixes) if isinstance(v, str) else None
    if op == "ends_with":
        suffixes = tuple(values)
        return lambda v: v.endswith(suffixes) if isinstance(v, str) else None
    if op == "regex":
        regexes = tuple(compile_regex(p) for p in values)
        return lambda v: any(r.search(v) for r in regexes) if isinstance(v, str) else None
    needles = tuple(values)  # contains: substring
    return lambda v: any(n in v for n in needles) if isinstance(v, str) else None


def _ordered_pred(op: str, values: list[Any]) -> Pred:
    """gt/gte/lt/lte, before/after, semver_*: several values are ORed, i.e. min or max bound."""
    if op in ("gt", "gte", "lt", "lte"):
        parse: Callable[[Any], Any] = lambda v: v if is_number(v) else None  # noqa: E731
        bounds = values
    elif op in ("before", "after"):
        parse = parse_instant
        bounds = [parse_instant(v) for v in values]
    else:
        parse = parse_semver
        bounds = [parse_semver(v) for v in values]
        if op == "semver_eq":
            versions = tuple(bounds)

            def eq(v: Any) -> bool | None:
                parsed = parse_semver(v)
                return None if parsed is None else any(parsed == b for b in versions)

            return eq
    low, high = min(bounds), max(bounds)
    compare: Callable[[Any], bool] = {
        "gt": lambda x: x > low,
        "gte": lambda x: x >= low,
        "after": lambda x: x > low,
        "semver_gt": lambda x: x > low,
        "lt": lambda x: x < high,
        "lte": lambda x: x <= high,
        "before": lambda x: x < high,
        "semver_lt": lambda x: x < high,
    }[op]

    def pred(v: Any) -> bool | None:
        parsed = parse(v)
        return None if parsed is None else compare(parsed)

    return pred


def _over_lists(pred: Pred) -> Pred:
    def with_lists(v: Any) -> bool | None:
        if isinstance(v, list | tuple):
            result: bool | None = None
            for item in v:
                r = pred(item)
                if r is True:
                    return True
                if r is False:
                    result = False
            return result
        return pred(v)

    return with_lists


def compile_condition(condition: Mapping[str, Any], segments: SegmentLookup) -> Match:
    """A closure for one validated condition (see the module docstring for the semantics)."""
    op: str = condition["operator"]
    values: list[Any] = condition["values"]
    negate: bool = condition.get("negate", False)

    if op == "segment_match":
        found = [segments(k) for k in values]
        members = tuple(m for m in found if m is not None)  # a missing segment matches no one
        if negate:
            return lambda ctx: not any(m(ctx) for m in members)
        return lambda ctx: any(m(ctx) for m in members)

    get = make_getter(condition["attribute"])
    if op == "exists":
        if negate:
            return lambda ctx: get(ctx) is None
        return lambda ctx: get(ctx) is not None

    base = NEGATIVE.get(op, op)
    if base == op and not negate and base in ("equals", "in"):
        for value in values:
            if value.__class__ is not str:
                break
        else:  # the hot shape, compiled without the general predicate
            return _string_membership(condition["attribute"], frozenset(values), get)
    if base in ("equals", "in"):
        pred = _scalar_pred(values)
    elif base in ("contains", "starts_with", "ends_with", "regex"):
        pred = _string_pred(base, values)
    else:
        pred = _ordered_pred(base, values)
    pred = _over_lists(pred)
    want: bool = base == op  # positive operators match on True, not_* on False
    if negate:
        return lambda ctx: (v := get(ctx)) is not None and (pred(v) is want) is False
    return lambda ctx: (v := get(ctx)) is not None and pred(v) is want


def _any_member(v: Any, members: frozenset[str]) -> bool:
    """A non-``str``-class value against string operands: a ``str`` subclass, or a list of strings."""
    if isinstance(v, str):
        return v in members
    if isinstance(v, list | tuple):
        for item in v:
            if isinstance(item, str) and item in members:
                return True
    return False


def _string_membership(
    attribute: str, members: frozenset[str], get: Callable[[Context], Any]
) -> Match:
    """The hot shape ``country in ["DE", ...]``: one dict lookup and one set lookup."""
    if "." not in attribute and attribute not in _TK_PATHS:
        name = attribute

        def match_top(ctx: Context) -> bool:
            v = ctx.get(name)
            if v.__class__ is str:
                return v in members
            return v is not None and _any_member(v, members)

        return match_top

    if attribute in _TK_PATHS:

        def match_key(ctx: Context) -> bool:
            # targeting_key() inlined: `key in [10,000 keys]` is a benchmarked hot path.
            v = ctx.get("targeting_key")
            if v is None:
                v = ctx.get("targetingKey")
                if v is None:
                    v = ctx.get("key")
            if v.__class__ is str:
                return v in members
            return v is not None and _any_member(v, members)

        return match_key

    def match(ctx: Context) -> bool:
        v = get(ctx)
        if v.__class__ is str:
            return v in members
        return v is not None and _any_member(v, members)

    return match
