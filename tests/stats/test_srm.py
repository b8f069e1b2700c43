"""Sample ratio mismatch: chi-square against SciPy, planted mismatches, and the 5 pp share rule."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats as sps

from flagstaff.errors import Invalid
from flagstaff.stats import srm_check


def test_chi_square_matches_scipy_for_uneven_allocations() -> None:
    observed = {"control": 5_210, "b": 2_480, "c": 2_310}
    result = srm_check(observed, {"control": 50, "b": 25, "c": 25})
    reference = sps.chisquare([5_210, 2_480, 2_310], f_exp=[5_000, 2_500, 2_500])
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    assert (result.total, result.df) == (10_000, 2)
    assert result.mismatch is bool(reference.pvalue < 0.001)
    # Weights may be given on any scale.
    same = srm_check(observed, {"control": 0.5, "b": 0.25, "c": 0.25})
    assert same.p_value == pytest.approx(result.p_value, rel=1e-12)


def test_planted_mismatch_is_flagged_and_a_correct_split_is_not() -> None:
    rng = np.random.default_rng(11)
    # 1 % of treatment users lost (a classic redirect bug): 50.25 / 49.75 instead of 50 / 50.
    broken = rng.multinomial(400_000, [0.5025, 0.4975])
    flagged = srm_check({"a": int(broken[0]), "b": int(broken[1])}, {"a": 50, "b": 50})
    assert flagged.mismatch and flagged.p_value is not None and flagged.p_value < 0.001
    # The absolute share rule cannot see a 0.25 pp deviation: that is why both are reported.
    assert not flagged.share_deviation

    draws = rng.multinomial(400_000, [0.5, 0.3, 0.2], size=2_000)
    alarms = sum(
        srm_check({"a": int(a), "b": int(b), "c": int(c)}, {"a": 5, "b": 3, "c": 2}).mismatch
        for a, b, c in draws
    )
    # A correct split raises the alarm at the 0.1 % rate: at most a handful out of 2,000.
    assert alarms <= sps.binom.ppf(0.999, 2_000, 0.001)


def test_share_rule_is_absolute_percentage_points_and_reported_separately() -> None:
    # 44 / 56 of 100 users: 6 pp off, but 100 users is no evidence of a broken split.
    small = srm_check({"a": 44, "b": 56}, {"a": 50, "b": 50})
    assert small.share_deviation and not small.mismatch
    a = small.variants[0]
    assert (a.observed_share, a.expected_share) == (0.44, 0.5)
    assert a.deviation == pytest.approx(-0.06) and a.relative_deviation == pytest.approx(-0.12)
    assert a.exceeds_tolerance

    # A 10 % arm at 14 %: 40 % off relatively but 4 pp absolutely, so the rule does not fire.
    relative_only = srm_check({"a": 86, "b": 14}, {"a": 90, "b": 10})
    assert not relative_only.share_deviation
    assert relative_only.variants[1].relative_deviation == pytest.approx(0.4)


def test_users_in_an_unallocated_variant_are_a_mismatch() -> None:
    result = srm_check({"a": 500, "b": 500, "ghost": 3}, {"a": 50, "b": 50})
    assert result.mismatch and result.p_value == 0.0
    assert [v.variant for v in result.variants] == ["a", "b", "ghost"]
    assert result.variants[2].expected_share == 0.0
    assert result.variants[2].relative_deviation is None
    encoded = json.dumps(result.to_dict(), allow_nan=False)  # infinite statistic -> null
    assert json.loads(encoded)["statistic"] is None


def test_nothing_to_test_without_users_or_with_one_allocated_variant() -> None:
    empty = srm_check({}, {"a": 50, "b": 50})
    assert (empty.p_value, empty.mismatch, empty.share_deviation) == (None, False, False)
    assert all(v.observed_share is None for v in empty.variants)
    single = srm_check({"a": 10}, {"a": 100, "b": 0})
    assert single.p_value is None and not single.mismatch


@pytest.mark.parametrize(
    ("observed", "weights", "field"),
    [
        ({"a": -1}, {"a": 1, "b": 1}, "observed_counts.a"),
        ({"a": 1.5}, {"a": 1, "b": 1}, "observed_counts.a"),
        ({"a": 1}, {"a": -1, "b": 1}, "allocation_weights.a"),
        ({"a": 1}, {"a": float("nan"), "b": 1}, "allocation_weights.a"),
        ({"a": 1}, {"a": 0, "b": 0}, "allocation_weights"),
    ],
)
def test_bad_input_is_refused_naming_the_field(observed: dict, weights: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(Invalid) as caught:
        srm_check(observed, weights)
    assert caught.value.details["field"] == field
