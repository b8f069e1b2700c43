"""Which users a rollout change moves: the share from the bucket ranges, checked against what
the compiled flag actually serves, and the invariant that a rewrite keeping variants, weights,
order, salt and ``bucket_by`` moves nobody."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagstaff.engine import compile_snapshot, validate_flag
from flagstaff.engine.bucketing import BUCKETS, range_ends, variation_index
from flagstaff.engine.reassignment import (
    describe,
    keep_variation_order,
    moved_buckets,
    reassignments,
)
from tests.builders import cond, flag, rollout, snapshot

CONTEXTS = [{"targeting_key": f"user-{i}", "tenant": {"id": f"t-{i % 97}"}} for i in range(10_000)]


def _served(definition: dict[str, Any], env: str = "production") -> list[Any]:
    snap = compile_snapshot(snapshot([definition], environment=env))
    return [snap.evaluate(definition["key"], ctx).variant for ctx in CONTEXTS]


def _moved(before: dict[str, Any], after: dict[str, Any]) -> int:
    return sum(a != b for a, b in zip(_served(before), _served(after), strict=True))


def _brute_force(old: list[tuple[str, int]], new: list[tuple[str, int]]) -> int:
    """Every bucket, one at a time, through the engine's own range lookup."""
    old_ends, new_ends = range_ends([w for _, w in old]), range_ends([w for _, w in new])
    return sum(
        old[variation_index(old_ends, b)][0] != new[variation_index(new_ends, b)][0]
        for b in range(BUCKETS)
    )


def _rolled(**weights: float) -> dict[str, Any]:
    return flag("rolled").env("production", lambda e: e.on().fallthrough_rollout(**weights)).build()


def test_reordering_ten_ninety_moves_a_fifth_of_users_exactly() -> None:
    before = _rolled(true=10, false=90)
    after = _rolled(false=90, true=10)
    [change] = reassignments(before, after)
    assert change.path == "environments.production.fallthrough"
    assert (change.share, change.exact, change.causes) == (0.2, True, ("order",))
    assert describe(change.to_change()) == "moves 20 % of its users to another variant (order)"
    # What the compiled flags serve agrees: about a fifth of 10,000 fixed users flip.
    assert 1_900 < _moved(before, after) < 2_100


def test_growing_a_rollout_moves_only_the_added_range() -> None:
    [change] = reassignments(_rolled(true=10, false=90), _rolled(true=25, false=75))
    assert (change.share, change.exact, change.causes) == (0.15, True, ("weights",))


def test_salt_change_reports_the_expected_share_and_is_not_exact() -> None:
    before = _rolled(true=50, false=50)
    after = copy.deepcopy(before)
    after["salt"] = "another"
    [change] = reassignments(before, after)
    assert (change.share, change.exact, change.causes) == (0.5, False, ("salt",))
    assert "about 50 %" in describe(change.to_change())
    assert 4_800 < _moved(before, after) < 5_200


def test_bucket_by_and_fixed_variant_changes() -> None:
    before = _rolled(true=30, false=70)
    by_tenant = copy.deepcopy(before)
    by_tenant["environments"]["production"]["fallthrough"]["rollout"]["bucket_by"] = "tenant.id"
    [change] = reassignments(before, by_tenant)
    assert change.causes == ("bucket_by",) and not change.exact
    assert abs(change.share - (1 - 0.3 * 0.3 - 0.7 * 0.7)) < 1e-9
    fixed = flag("rolled").env("production", lambda e: e.on().fallthrough("true")).build()
    [change] = reassignments(before, fixed)
    assert (change.share, change.exact, change.causes) == (0.7, True, ("serve",))


def test_rule_rollouts_are_matched_by_rule_id_and_unrelated_edits_move_nobody() -> None:
    def build(serve: dict[str, Any], description: str) -> dict[str, Any]:
        return flag("ruled").description(description).env(
            "production",
            lambda e: e.on().rule("other", cond("country", "in", "FR"), serve="true")
            .rule("de", cond("country", "in", "DE"), serve=serve).fallthrough("false"),
        ).build()

    before = build(rollout(true=40, false=60), "a")
    assert reassignments(before, build(rollout(true=40, false=60), "b")) == []
    moved = build(rollout(false=60, true=40), "b")
    # The rule moved to another index: the path is where it is now.
    moved["environments"]["production"]["rules"].reverse()
    [change] = reassignments(before, moved)
    assert change.path == "environments.production.rules[0].serve"
    assert change.share == 0.8


def test_keep_variation_order_undoes_a_pure_reorder_only() -> None:
    before = _rolled(true=10, false=90)
    reordered = _rolled(false=90, true=10)
    kept = keep_variation_order(before, reordered)
    assert kept == before and reordered != before  # the argument is not modified
    reweighted = _rolled(false=80, true=20)
    assert keep_variation_order(before, reweighted) == reweighted


weights = st.lists(st.integers(min_value=0, max_value=100), min_size=1, max_size=4).map(
    lambda ws: [*ws[:-1], 100 - sum(ws[:-1])] if sum(ws[:-1]) <= 100 else [100]
)


@settings(max_examples=60, deadline=None)
@given(old=weights, new=weights, shuffle=st.randoms(use_true_random=False))
def test_moved_buckets_equals_counting_every_bucket(old: list[int], new: list[int], shuffle: Any) -> None:
    names = ["a", "b", "c", "d"]
    shuffle.shuffle(names)
    old_v = [(f"v{i}", w * 1000) for i, w in enumerate(old)]
    new_v = [(names[i], w * 1000) for i, w in enumerate(new)]
    as_variations = lambda vs: [{"variant": v, "weight": w / 1000} for v, w in vs]  # noqa: E731
    assert moved_buckets(as_variations(old_v), as_variations(new_v)) == _brute_force(old_v, new_v)


# --- the invariant: rewrites that keep variants, weights, order, salt and bucket_by ---------

unrelated_edits = st.lists(
    st.sampled_from(["name", "description", "tags", "owner", "rule", "target", "other-env", "keys"]),
    min_size=1, max_size=5,
)


def _rewrite(definition: dict[str, Any], edits: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(definition)
    prod = out["environments"]["production"]
    for edit in edits:
        if edit == "name":
            out["name"] = out["name"] + " (renamed)"
        elif edit == "description":
            out["description"] += " more words"
        elif edit == "tags":
            out["tags"] = [*out.get("tags", []), f"t{len(out.get('tags', []))}"]
        elif edit == "owner":
            out["owner"] = "team-x"
        elif edit == "rule":
            # A rule that matches none of the contexts below.
            prod["rules"].append({"conditions": [cond("country", "in", "ZZ")], "serve": {"variant": "b"}})
        elif edit == "target":
            prod["targets"].append({"variant": "a", "values": ["nobody-has-this-key"]}) if not any(
                t["variant"] == "a" for t in prod["targets"]) else None
        elif edit == "other-env":
            out["environments"]["staging"] = {"enabled": True, "fallthrough": {"variant": "b"}}
        elif edit == "keys":
            # The same definition written with its keys in another order (as a JSON body may be).
            out = dict(reversed(list(out.items())))
            prod = out["environments"]["production"]
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    split=weights, salt=st.none() | st.sampled_from(["s1", "другая"]),
    bucket_by=st.sampled_from([None, "tenant.id", ["user.id", "targeting_key"]]), edits=unrelated_edits,
)
def test_rewrites_that_keep_the_rollout_keep_every_bucket(
    split: list[int], salt: str | None, bucket_by: Any, edits: list[str]
) -> None:
    variants = {"a": "A", "b": "B", "c": "C", "d": "D"}
    serve = {"rollout": {"variations": [{"variant": k, "weight": w} for k, w in zip(variants, split, strict=False)]}}
    if bucket_by is not None:
        serve["rollout"]["bucket_by"] = bucket_by
    before = flag("kept").string(variants, off="a").salt(salt).env(
        "production", lambda e: e.on().fallthrough(serve)).build()
    after = validate_flag(_rewrite(before, edits))
    assert reassignments(validate_flag(before), after) == []
    snap_before = compile_snapshot(snapshot([before]))
    snap_after = compile_snapshot(snapshot([after]))
    for ctx in CONTEXTS[:2_000]:
        assert snap_before.evaluate("kept", ctx).variant == snap_after.evaluate("kept", ctx).variant
