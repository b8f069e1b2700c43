"""Compilation of validated conditions into small closures ``match(context) -> bool``.

Each operator becomes a *predicate* over one attribute value returning ``True`` (matches),
``False`` (comparable, does not match) or ``None`` (wrong type: not comparable).  Positive
operators match on ``True``; their ``not_*`` twins match on ``False``, so a wrong type never
matches either of them.  A list-valued attribute is compared element by element: ``True`` if
any element gives ``True``, else ``False`` if any gives ``False``, else ``None``.
A missing (or null) attribute never matches, whatever ``negate`` says; only ``exists`` looks
at presence.  ``negate`` inverts the result for a present attribute.  The ``now_*`` operators
read no attribute: they compare the time given by the snapshot's clock.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from typing import Any

from flagstaff.engine.instants import (
    merge_windows,
    operand_instant,
    operand_window,
    parse_instant,
    zone,
)
from flagstaff.engine.networks import networks_pred
from flagstaff.engine.texts import text_pred
from flagstaff.engine.values import is_number
from flagstaff.engine.versions import compile_range, in_range, parse_version

Context = Mapping[str, Any]
Match = Callable[[Context], bool]
Pred = Callable[[Any], "bool | None"]
SegmentLookup = Callable[[str], "Match | None"]
Clock = Callable[[], float]

NEGATIVE = {
    "not_equals": "equals", "not_in": "in", "not_contains": "contains", "not_in_cidr": "in_cidr",
}
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


def _folded_members(strs: frozenset[str]) -> Pred:
    """String membership after case folding.  Folding never shortens a string, so a value
    longer than the longest folded operand cannot match and is not folded at all."""
    longest = max(len(s) for s in strs)
    return lambda v: (len(v) <= longest and v.casefold() in strs) if isinstance(v, str) else None


def _scalar_pred(values: list[Any], ignore_case: bool = False) -> Pred:
    # Three sets so that True never equals 1 and "1" never equals 1 (one pass over the values).
    str_list: list[str] = []
    bool_list: list[bool] = []
    num_list: list[Any] = []
    for value in values:
        if isinstance(value, str):
            str_list.append(value.casefold() if ignore_case else value)
        elif isinstance(value, bool):
            bool_list.append(value)
        elif is_number(value):
            num_list.append(value)
    strs = frozenset(str_list)
    if strs and not bool_list and not num_list:
        # Only strings (the common case): anything but a string is incomparable.
        if ignore_case:
            return _folded_members(strs)
        return lambda v: (v in strs) if isinstance(v, str) else None
    bools = frozenset(bool_list)
    nums = frozenset(num_list)
    folded = _folded_members(strs) if ignore_case and strs else None

    def pred(v: Any) -> bool | None:
        if isinstance(v, str):
            if folded is not None:
                return folded(v)
            return v in strs if strs else None
        if isinstance(v, bool):
            return v in bools if bools else None
        if is_number(v):
            return v in nums if nums else None
        return None

    return pred


def _ordered_pred(op: str, values: list[Any], lenient: bool) -> Pred:
    """gt/gte/lt/lte, before/after, semver_*: several values are ORed, i.e. min or max bound."""
    if op in ("gt", "gte", "lt", "lte"):
        parse: Callable[[Any], Any] = lambda v: v if is_number(v) else None  # noqa: E731
        bounds = values
    elif op in ("before", "after"):
        parse = parse_instant
        bounds = [parse_instant(v) for v in values]
    else:
        def parse(v: Any) -> Any:
            return parse_version(v, lenient=lenient)

        bounds = [parse(v) for v in values]
        if op == "semver_eq":
            versions = frozenset(bounds)

            def eq(v: Any) -> bool | None:
                parsed = parse(v)
                return None if parsed is None else parsed in versions

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


def _range_pred(values: list[str], lenient: bool) -> Pred:
    """semver_range: the version satisfies any of the ranges (npm semantics, see versions)."""
    alternatives = tuple(a for value in values for a in compile_range(value))

    def pred(v: Any) -> bool | None:
        key = parse_version(v, lenient=lenient)
        return None if key is None else in_range(key, alternatives)

    return pred


def _time_match(condition: Mapping[str, Any], clock: Clock) -> Match:
    """now_before / now_after / now_between: operands are epoch seconds from here on."""
    op: str = condition["operator"]
    tz = zone(condition["timezone"]) if condition.get("timezone") else None
    values = condition["values"]
    negate: bool = condition.get("negate", False)
    if op == "now_between":  # [start, end): the window opens at start, closes at end
        starts, ends = merge_windows([operand_window(v, tz) for v in values])

        def inside(ctx: Context) -> bool:
            now = clock()
            i = bisect_right(starts, now) - 1
            return (i >= 0 and now < ends[i]) is not negate

        return inside
    instants = [operand_instant(v, tz) for v in values]
    if op == "now_after":  # from the earliest instant on (inclusive)
        start = min(instants)
        return lambda ctx: (clock() >= start) is not negate
    end = max(instants)  # now_before: until the latest instant (exclusive)
    return lambda ctx: (clock() < end) is not negate


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


def compile_condition(
    condition: Mapping[str, Any], segments: SegmentLookup, clock: Clock
) -> Match:
    """A closure for one validated condition (see the module docstring for the semantics)."""
    op: str = condition["operator"]
    values: list[Any] = condition["values"]
    negate: bool = condition.get("negate", False)
    ignore_case: bool = condition.get("ignore_case", False)

    if op == "segment_match":
        found = [segments(k) for k in values]
        members = tuple(m for m in found if m is not None)  # a missing segment matches no one
        if negate:
            return lambda ctx: not any(m(ctx) for m in members)
        return lambda ctx: any(m(ctx) for m in members)
    if op.startswith("now_"):
        return _time_match(condition, clock)

    get = make_getter(condition["attribute"])
    if op == "exists":
        if negate:
            return lambda ctx: get(ctx) is None
        return lambda ctx: get(ctx) is not None

    base = NEGATIVE.get(op, op)
    if base == "in" and not values:
        # An empty list: `in` matches no one, `not_in` every present value (nothing to equal).
        if op == "in":
            return lambda ctx: negate and get(ctx) is not None
        return lambda ctx: not negate and get(ctx) is not None
    if base == op and not negate and not ignore_case and base in ("equals", "in"):
        for value in values:
            if value.__class__ is not str:
                break
        else:  # the hot shape, compiled without the general predicate
            return _string_membership(condition["attribute"], frozenset(values), get)
    pred: Pred
    if base in ("equals", "in"):
        pred = _scalar_pred(values, ignore_case)
    elif base in ("contains", "starts_with", "ends_with", "regex"):
        pred = text_pred(base, values, ignore_case)
    elif base == "in_cidr":
        pred = networks_pred(values)
    elif base == "semver_range":
        pred = _range_pred(values, condition.get("lenient", False))
    else:
        pred = _ordered_pred(base, values, condition.get("lenient", False))
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
