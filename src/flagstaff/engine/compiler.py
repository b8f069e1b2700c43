"""Compilation of one validated, environment-resolved flag or segment into closures.

A compiled flag is ``evaluate(context, depth, table) -> EvaluationDetail``.  Every outcome that
does not depend on the context (disabled, a target hit, a fixed rule or fallthrough variant) is
an :class:`EvaluationDetail` built here once and returned as-is.  Prerequisites are looked up
in ``table`` at evaluation time, so a change to one flag never recompiles another; segments
are captured directly, so changing a segment recompiles the flags that use it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from typing import Any

import mmh3

from flagstaff.engine.bucketing import BUCKETS, range_ends
from flagstaff.engine.indexing import group_membership_rules
from flagstaff.engine.operators import (
    Context,
    Match,
    SegmentLookup,
    compile_condition,
    make_getter,
    targeting_key,
)
from flagstaff.engine.types import EvaluationDetail, FlagType, Reason

MAX_PREREQUISITE_DEPTH = 32

Serve = Callable[[Context], EvaluationDetail]
FlagFn = Callable[[Context, int, "Table"], EvaluationDetail]
Table = Mapping[str, tuple[FlagType, FlagFn]]


class PrerequisiteDepthExceeded(Exception):
    """Prerequisites nest deeper than MAX_PREREQUISITE_DEPTH (only a corrupted store does this)."""


def _all(conditions: list[Match]) -> Match:
    if not conditions:
        return lambda ctx: True
    if len(conditions) == 1:
        return conditions[0]
    if len(conditions) == 2:
        first, second = conditions
        return lambda ctx: first(ctx) and second(ctx)
    items = tuple(conditions)

    def match_all(ctx: Context) -> bool:
        # An explicit loop: a generator inside all() costs more on this hot path.
        for condition in items:  # noqa: SIM110
            if not condition(ctx):
                return False
        return True

    return match_all


def compile_rule_match(rule: Mapping[str, Any], segments: SegmentLookup) -> Match:
    return _all([compile_condition(c, segments) for c in rule["conditions"]])


def compile_segment(segment: Mapping[str, Any], segments: SegmentLookup) -> Match:
    """``in_segment(context)``: excluded -> no, included -> yes, else any rule matches."""
    excluded = frozenset(segment["excluded"])
    included = frozenset(segment["included"])
    rules = tuple(compile_rule_match(r, segments) for r in segment["rules"])

    def in_segment(ctx: Context) -> bool:
        tk = targeting_key(ctx)
        if tk.__class__ is str:
            if tk in excluded:
                return False
            if tk in included:
                return True
        for rule in rules:  # noqa: SIM110 - a loop is cheaper than any() over a generator
            if rule(ctx):
                return True
        return False

    return in_segment


def _serve(
    serve: Mapping[str, Any],
    flag: Mapping[str, Any],
    detail: Callable[[str], EvaluationDetail],
    off_detail: EvaluationDetail,
) -> Serve:
    """A fixed variant or a percentage split; ``detail(variant)`` builds the static outcomes."""
    if "variant" in serve:
        fixed = detail(serve["variant"])
        return lambda ctx: fixed
    rollout = serve["rollout"]
    variations = rollout["variations"]
    ends = tuple(range_ends([round(v["weight"] * 1000) for v in variations]))
    details = tuple(detail(v["variant"]) for v in variations)
    prefix = f"{rollout.get('salt') or flag.get('salt') or flag['key']}."
    get = make_getter(rollout.get("bucket_by") or "key")
    hash_ = mmh3.hash

    def split(ctx: Context) -> EvaluationDetail:
        value = get(ctx)
        if value.__class__ is not str:
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            elif not isinstance(value, str):
                # No bucketing value: the off variant, deterministically (docs/evaluation.md).
                return off_detail
        return details[bisect_right(ends, (hash_(prefix + value, 0, False) * BUCKETS) >> 32)]

    return split


def compile_flag(flag: Mapping[str, Any], segments: SegmentLookup) -> tuple[FlagType, FlagFn]:
    """Compile a validated resolved flag (contract §3)."""
    key: str = flag["key"]
    version: int = flag.get("version", 1)
    variants: Mapping[str, Any] = flag["variants"]
    off: str = flag["off_variant"]
    flag_type = FlagType(flag["type"])

    def make(variant: str, reason: Reason, **extra: Any) -> EvaluationDetail:
        return EvaluationDetail(
            variants[variant], variant, reason, flag_key=key, version=version, **extra
        )

    if not flag["enabled"]:
        disabled = make(off, Reason.DISABLED)
        return flag_type, lambda ctx, depth, table: disabled

    prerequisites = tuple(
        (p["flag"], p["variant"], make(off, Reason.PREREQUISITE_FAILED, prerequisite_key=p["flag"]))
        for p in flag["prerequisites"]
    )
    targets: dict[str, EvaluationDetail] = {}
    for target in flag["targets"]:
        hit = make(target["variant"], Reason.TARGET_MATCH)
        for value in target["values"]:
            targets.setdefault(value, hit)  # a key listed under two variants: the first wins
    compiled_rules: list[tuple[Mapping[str, Any], Match, Serve]] = []
    for index, rule in enumerate(flag["rules"]):
        rule_reason = {"rule_id": rule["id"], "rule_index": index}
        compiled_rules.append((
            rule,
            compile_rule_match(rule, segments),
            _serve(
                rule["serve"],
                flag,
                lambda v, extra=rule_reason: make(v, Reason.RULE_MATCH, **extra),  # type: ignore[misc]
                make(off, Reason.RULE_MATCH, **rule_reason),
            ),
        ))
    rules = group_membership_rules(compiled_rules)
    fallthrough_raw = flag["fallthrough"]
    fallthrough: Serve
    if fallthrough_raw is None:
        default = make(off, Reason.DEFAULT)
        fallthrough = lambda ctx: default  # noqa: E731
        static: EvaluationDetail | None = default
    else:
        reason = Reason.FALLTHROUGH if "variant" in fallthrough_raw else Reason.SPLIT
        fallthrough = _serve(
            fallthrough_raw, flag, lambda v: make(v, reason), make(off, reason)
        )
        static = make(fallthrough_raw["variant"], reason) if "variant" in fallthrough_raw else None

    if not prerequisites and not targets and not rules:
        if static is not None:
            return flag_type, lambda ctx, depth, table: static
        return flag_type, lambda ctx, depth, table: fallthrough(ctx)
    return flag_type, _evaluator(prerequisites, targets, tuple(rules), fallthrough)


def _evaluator(
    prerequisites: tuple[tuple[str, str, EvaluationDetail], ...],
    targets: dict[str, EvaluationDetail],
    rules: tuple[tuple[Match, Serve], ...],
    fallthrough: Serve,
) -> FlagFn:
    def evaluate(ctx: Context, depth: int, table: Table) -> EvaluationDetail:
        if prerequisites:
            if depth >= MAX_PREREQUISITE_DEPTH:
                raise PrerequisiteDepthExceeded
            for pre_key, pre_variant, failed in prerequisites:
                entry = table.get(pre_key)
                if entry is None:
                    return failed
                got = entry[1](ctx, depth + 1, table)
                # An off prerequisite fails even when its off variant is the one required.
                if got.variant != pre_variant or got.reason is Reason.DISABLED:
                    return failed
        if targets:
            # targeting_key() inlined: this is the W3 hot path.
            tk = ctx.get("targeting_key")
            if tk is None:
                tk = ctx.get("targetingKey")
                if tk is None:
                    tk = ctx.get("key")
            if tk.__class__ is str:
                hit = targets.get(tk)
                if hit is not None:
                    return hit
        for match, serve in rules:
            if match(ctx):
                return serve(ctx)
        return fallthrough(ctx)

    return evaluate
