"""The mSPRT: closed forms against numerical integration, duality, and the choice of tau^2."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize
from scipy import stats as sps

from flagstaff.stats import ConversionCounts, NumericMoments, conversion_results, numeric_results
from flagstaff.stats.sequential import mixing_variance, msprt, optimal_variance_ratio


def _mixture_likelihood_ratio(estimate: float, variance: float, tau2: float) -> float:
    # The definition, integrated numerically: the N(0, tau2)-mixed likelihood over the H0 one.
    sd = math.sqrt(variance)

    def integrand(theta: float) -> float:
        return float(sps.norm.pdf(estimate, theta, sd) * sps.norm.pdf(theta, 0.0, math.sqrt(tau2)))

    reach = abs(estimate) + 40 * math.sqrt(max(variance, tau2))
    mixed, _ = integrate.quad(integrand, -reach, reach, points=[0.0, estimate], limit=200)
    return float(mixed) / float(sps.norm.pdf(estimate, 0.0, sd))


@pytest.mark.parametrize(
    ("estimate", "variance", "tau2"),
    [(0.01, 1e-5, 8e-5), (-0.3, 0.01, 0.02), (0.0, 2.0, 0.5), (1.5, 0.4, 3.0)],
)
def test_p_value_is_the_inverse_mixture_likelihood_ratio(
    estimate: float, variance: float, tau2: float
) -> None:
    p_value, _ = msprt(np.array([estimate]), np.array([variance]), np.array([tau2]), 0.05)
    expected = min(1.0, 1.0 / _mixture_likelihood_ratio(estimate, variance, tau2))
    assert float(p_value[0]) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.01])
def test_confidence_sequence_is_the_set_of_unrejected_effects(alpha: float) -> None:
    estimate, variance, tau2 = 0.02, 4e-5, 3e-4
    _, half = msprt(np.array([estimate]), np.array([variance]), np.array([tau2]), alpha)
    edge = float(half[0])
    # Testing H0: theta = theta0 is testing 0 on the shifted estimate.
    for shift, rejected in ((edge * 0.999, False), (edge * 1.001, True)):
        for theta0 in (estimate - shift, estimate + shift):
            p, _ = msprt(
                np.array([estimate - theta0]), np.array([variance]), np.array([tau2]), alpha
            )
            assert bool(p[0] < alpha) is rejected


def test_tau2_minimises_the_width_at_the_tuning_size() -> None:
    for alpha in (0.05, 0.01, 0.2):
        level = 2 * math.log(1 / alpha)
        best = optimize.minimize_scalar(
            lambda r, lv=level: (1 + r) / r * (math.log1p(r) + lv),
            bounds=(1e-3, 1e3),
            method="bounded",
        )
        assert optimal_variance_ratio(alpha) == pytest.approx(best.x, rel=1e-4)
    assert mixing_variance(np.array([2.0]), 0.05)[0] == pytest.approx(
        2.0 * optimal_variance_ratio(0.05)
    )


def test_sequential_interval_is_tightest_relative_to_fixed_at_tuning_n() -> None:
    ratios = {}
    for n in (500, 2000, 5000, 12_000, 40_000):
        control, treatment = (
            ConversionCounts("c", n, n // 10),
            ConversionCounts("b", n, n // 10 + n // 100),
        )
        seq = conversion_results(control, [treatment], sequential=True, tuning_n=5000).comparison(
            "b"
        )
        fixed = conversion_results(control, [treatment]).comparison("b")
        assert seq.absolute_ci is not None and fixed.absolute_ci is not None
        # Always valid costs width: the sequence is wider than the fixed-horizon interval.
        assert seq.absolute_ci.lower < fixed.absolute_ci.lower
        assert seq.absolute_ci.upper > fixed.absolute_ci.upper
        assert seq.p_value is not None and fixed.p_value is not None and seq.p_value > fixed.p_value
        ratios[n] = (seq.absolute_ci.upper - seq.absolute_ci.lower) / (
            fixed.absolute_ci.upper - fixed.absolute_ci.lower
        )
    assert min(ratios, key=ratios.__getitem__) == 5000


def test_sequential_results_are_labelled_and_agree_with_their_interval() -> None:
    control = NumericMoments.from_mean_variance("control", users=20_000, mean=10.0, variance=64.0)
    treatments = [
        NumericMoments.from_mean_variance("b", users=20_000, mean=10.4, variance=64.0),
        NumericMoments.from_mean_variance("c", users=20_000, mean=10.05, variance=64.0),
    ]
    results = numeric_results(control, treatments, sequential=True, correction="none")
    assert (results.method, results.test, results.tuning_n) == ("sequential", "msprt", 5000.0)
    for comparison in results.comparisons:
        assert comparison.statistic is None and comparison.df is None
        assert comparison.absolute_ci is not None and comparison.p_value is not None
        assert comparison.significant is (0.0 not in comparison.absolute_ci)
    assert results.comparison("b").significant and not results.comparison("c").significant


def test_zero_variance_takes_the_limit_of_the_formulas() -> None:
    p, half = msprt(np.array([0.0, 0.5]), np.array([0.0, 0.0]), np.array([0.0, 0.0]), 0.05)
    assert list(p) == [1.0, 0.0] and list(half) == [0.0, 0.0]
