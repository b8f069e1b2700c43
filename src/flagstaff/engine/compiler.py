"""Compilation of one validated, environment-resolved flag or segment into closures.

A compiled flag is ``evaluate(context, depth, table) -> EvaluationDetail``.  Every outcome that
does not depend on the context (disabled, a target hit, a fixed rule or fallthrough variant) is
an :class:`EvaluationDetail` built once and returned as-is: here, or for a fixed rule on its
first match (``indexing.PendingDetail``).  Prerequisites are looked up
in ``table`` at evaluation time, so a change to one flag never recompiles another; segments
are captured directly, so changing a segment recompiles the flags that use it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from typing import Any

import mmh3

from flagstaff.engine.bucketing import BUCKETS, bucket_value, range_ends
from flagstaff.engine.indexing import Outcome, group_membership_rules, one_group_flag
from flagstaff.engine.operators import (
    Clock,
    Context,
    Match,
    SegmentLookup,
    compile_condition,
    make_getter,
    targeting_key,
)
from flagstaff.engine.types import EvaluationDetail, FlagType, Reason, static_detail

MAX_PREREQUISITE_DEPTH = 32

Serve = Callable[[Context], EvaluationDetail]
FlagFn = Callable[[Context, int, "Table"], EvaluationDetail]
Table = Mapping[str, tuple[FlagType, FlagFn]]


_hash = mmh3.hash


class PrerequisiteDepthExceeded(Exception):
    """Prerequisites nest deeper than MAX_PREREQUISITE_DEPTH (only a corrupted store does this)."""


class TargetingKeyMissing(Exception):
    """A split by the targeting key met a context without one: OpenFeature's
    ``TARGETING_KEY_MISSING``.  Raised rather than returned so the hot path pays nothing;
    :meth:`Snapshot.evaluate` turns it into the caller's default."""


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


def compile_rule_match(rule: Mapping[str, Any], segments: SegmentLookup, clock: Clock) -> Match:
    return _all([compile_condition(c, segments, clock) for c in rule["conditions"]])


def compile_segment(segment: Mapping[str, Any], segments: SegmentLookup, clock: Clock) -> Match:
    """``in_segment(context)``: excluded -> no, included -> yes, else any rule matches."""
    excluded = frozenset(segment["excluded"])
    included = frozenset(segment["included"])
    rules = tuple(compile_rule_match(r, segments, clock) for r in segment["rules"])

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


def _split(
    rollout: Mapping[str, Any],
    flag: Mapping[str, Any],
    detail: Callable[[str], EvaluationDetail],
    off_detail: EvaluationDetail,
) -> Serve:
    """A percentage split; ``detail(variant)`` builds the static outcomes."""
    variations = rollout["variations"]
    ends = tuple(range_ends([round(v["weight"] * 1000) for v in variations]))
    details = tuple(detail(v["variant"]) for v in variations)
    prefix = f"{rollout.get('salt') or flag.get('salt') or flag['key']}."
    bucket_by = rollout.get("bucket_by") or "key"

    if bucket_by in ("key", "targeting_key"):

        # Captured through defaults, not closure cells: one tuple instead of a cell per name,
        # i.e. fewer objects per flag for the cyclic GC to walk in a 10,000-flag snapshot
        # (and local loads on the hot path).  Callers pass only ``ctx``.
        def split_by_key(
            ctx: Context, details: tuple[EvaluationDetail, ...] = details,
            ends: tuple[int, ...] = ends, prefix: str = prefix, off_detail: EvaluationDetail = off_detail,
        ) -> EvaluationDetail:
            # targeting_key() inlined: the W2 hot path.
            value = ctx.get("targeting_key")
            if value is None:
                value = ctx.get("targetingKey")
                if value is None:
                    value = ctx.get("key")
                    if value is None:
                        raise TargetingKeyMissing
            if value.__class__ is not str:
                value = bucket_value(value)
                if value is None:
                    return off_detail
            return details[bisect_right(ends, (_hash(prefix + value, 0, False) * BUCKETS) >> 32)]

        return split_by_key

    if isinstance(bucket_by, list):
        getters = tuple(make_getter(path) for path in bucket_by)

        def split_by_first(ctx: Context) -> EvaluationDetail:
            # The first path with a usable value (a string or an integer) buckets the context.
            for get in getters:
                value = bucket_value(get(ctx))
                if value is not None:
                    return details[bisect_right(ends, (_hash(prefix + value, 0, False) * BUCKETS) >> 32)]
            return off_detail

        return split_by_first

    get = make_getter(bucket_by)

    def split(ctx: Context) -> EvaluationDetail:
        value = get(ctx)
        if value.__class__ is not str:
            value = bucket_value(value)
            if value is None:
                return off_detail
        return details[bisect_right(ends, (_hash(prefix + value, 0, False) * BUCKETS) >> 32)]

    return split


def _experiment(
    block: Mapping[str, Any], make: Callable[..., EvaluationDetail], fallthrough: Serve
) -> Serve:
    """The fallthrough stage of a running experiment (contract §9).

    Users inside ``allocation`` (bucketed with ``"{salt}.allocation"``) get a variation bucketed
    with ``salt``, reason SPLIT and ``in_experiment``; everyone else, and contexts without a
    targeting key, get the normal fallthrough.  Both hashes use the experiment's own salt, so
    assignment is independent of the flag's rollouts and of other experiments.
    """
    salt = block["salt"]
    variations = block["variations"]
    ends = tuple(range_ends([round(v["weight"] * 1000) for v in variations]))
    details = tuple(make(v["variant"], Reason.SPLIT, in_experiment=True) for v in variations)
    allocated = round(block["allocation"] * 1000)
    allocation_prefix = f"{salt}.allocation."
    prefix = f"{salt}."

    def experiment(
        ctx: Context, details: tuple[EvaluationDetail, ...] = details, ends: tuple[int, ...] = ends,
    ) -> EvaluationDetail:
        value = targeting_key(ctx)
        if value.__class__ is not str:
            value = bucket_value(value)
            if value is None:
                return fallthrough(ctx)
        if (_hash(allocation_prefix + value, 0, False) * BUCKETS) >> 32 >= allocated:
            return fallthrough(ctx)
        return details[bisect_right(ends, (_hash(prefix + value, 0, False) * BUCKETS) >> 32)]

    return experiment


def _accepted(prerequisite: Mapping[str, Any]) -> frozenset[str] | None:
    """The variants that satisfy a prerequisite; ``None`` means "the parent must be off"."""
    if prerequisite.get("off"):
        return None
    if "variants" in prerequisite:
        return frozenset(prerequisite["variants"])
    return frozenset((prerequisite["variant"],))


def _constant(detail: EvaluationDetail) -> Serve:
    return lambda ctx: detail


_FLAG_TYPES = {t.value: t for t in FlagType}


def compile_flag(
    flag: Mapping[str, Any], segments: SegmentLookup, clock: Clock
) -> tuple[FlagType, FlagFn]:
    """Compile a validated resolved flag (contract §3); ``clock`` serves the ``now_*`` operators."""
    key: str = flag["key"]
    version: int = flag.get("version", 1)
    variants: Mapping[str, Any] = flag["variants"]
    off: str = flag["off_variant"]
    flag_type = _FLAG_TYPES[flag["type"]]

    if not flag["enabled"]:
        disabled = static_detail(variants[off], off, Reason.DISABLED, None, None, None, key, version)
        return flag_type, lambda ctx, depth, table: disabled

    def make(
        variant: str, reason: Reason, rule_id: str | None = None, rule_index: int | None = None,
        *, in_experiment: bool = False,
    ) -> EvaluationDetail:
        return static_detail(
            variants[variant], variant, reason, rule_id, rule_index, None, key, version, in_experiment
        )

    prerequisites = tuple(
        (p["flag"], _accepted(p), static_detail(
            variants[off], off, Reason.PREREQUISITE_FAILED, None, None, p["flag"], key, version
        ))
        for p in flag["prerequisites"]
    )
    targets: dict[str, EvaluationDetail] = {}
    for target in flag["targets"]:
        hit = make(target["variant"], Reason.TARGET_MATCH)
        for value in target["values"]:
            targets.setdefault(value, hit)  # a key listed under two variants: the first wins
    raw_rules: list[Mapping[str, Any]] = flag["rules"]
    outcomes: list[Outcome] = []
    rule_match = Reason.RULE_MATCH
    for index, rule in enumerate(raw_rules):
        rule_id = rule["id"]
        serve = rule["serve"]
        if "variant" in serve:
            variant = serve["variant"]
            # Pending: the detail is built on the rule's first match (see indexing).
            outcomes.append((variants[variant], variant, rule_id, index, key, version))
        else:
            outcomes.append(_split(
                serve["rollout"],
                flag,
                lambda v, i=index, r=rule_id: make(v, rule_match, r, i),  # type: ignore[misc]
                make(off, rule_match, rule_id, index),
            ))
    fallthrough_raw = flag["fallthrough"]
    fallthrough: Serve
    static: EvaluationDetail | None
    if fallthrough_raw is None:
        static = make(off, Reason.DEFAULT)
        fallthrough = _constant(static)
    elif "variant" in fallthrough_raw:
        static = make(fallthrough_raw["variant"], Reason.FALLTHROUGH)
        fallthrough = _constant(static)
    else:
        static = None
        fallthrough = _split(
            fallthrough_raw["rollout"], flag, lambda v: make(v, Reason.SPLIT), make(off, Reason.SPLIT)
        )
    experiment = flag.get("experiment")
    if experiment is not None and experiment["status"] == "running":
        # Decided here once: flags without a running experiment keep their fast closures.
        static = None
        fallthrough = _experiment(experiment, make, fallthrough)

    if not prerequisites and not targets:
        whole = one_group_flag(raw_rules, outcomes, fallthrough)
        if whole is not None:
            return flag_type, whole
    rules = group_membership_rules(
        raw_rules, outcomes, lambda rule: compile_rule_match(rule, segments, clock)
    ) if raw_rules else ()
    if not prerequisites and not targets and not rules:
        if static is not None:
            return flag_type, lambda ctx, depth, table: static
        return flag_type, lambda ctx, depth, table: fallthrough(ctx)
    if prerequisites:
        return flag_type, _evaluator(prerequisites, targets, rules, fallthrough)
    return flag_type, _evaluator_no_prerequisites(targets, rules, fallthrough, static)


def _evaluator_no_prerequisites(
    targets: dict[str, EvaluationDetail],
    rules: tuple[tuple[Match, Serve], ...],
    fallthrough: Serve,
    static: EvaluationDetail | None,
) -> FlagFn:
    """Specialised closures for the common shapes (no prerequisites): fewer steps per call."""
    if targets and not rules:
        if static is not None:
            fixed = static

            def targets_then_fixed(ctx: Context, depth: int, table: Table) -> EvaluationDetail:
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
                return fixed

            return targets_then_fixed
    elif not targets and len(rules) == 1:
        match, serve = rules[0]
        if static is not None:
            fixed = static

            def one_rule_then_fixed(ctx: Context, depth: int, table: Table) -> EvaluationDetail:
                if match(ctx):
                    return serve(ctx)
                return fixed

            return one_rule_then_fixed

        def one_rule(  # defaults instead of cells: see _split
            ctx: Context, depth: int, table: Table, match: Match = match, serve: Serve = serve,
            fallthrough: Serve = fallthrough,
        ) -> EvaluationDetail:
            if match(ctx):
                return serve(ctx)
            return fallthrough(ctx)

        return one_rule
    return _evaluator((), targets, rules, fallthrough)


def _evaluator(
    prerequisites: tuple[tuple[str, frozenset[str] | None, EvaluationDetail], ...],
    targets: dict[str, EvaluationDetail],
    rules: tuple[tuple[Match, Serve], ...],
    fallthrough: Serve,
) -> FlagFn:
    def evaluate(ctx: Context, depth: int, table: Table) -> EvaluationDetail:
        if prerequisites:
            if depth >= MAX_PREREQUISITE_DEPTH:
                raise PrerequisiteDepthExceeded
            for pre_key, accepted, failed in prerequisites:
                entry = table.get(pre_key)
                if entry is None:
                    return failed
                got = entry[1](ctx, depth + 1, table)
                if accepted is None:  # the parent must be off
                    if got.reason is not Reason.DISABLED:
                        return failed
                # An off prerequisite fails even when its off variant is the one required.
                elif got.variant not in accepted or got.reason is Reason.DISABLED:
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
