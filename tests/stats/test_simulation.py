"""Simulated experiments: error rates and coverage of the fixed-horizon and sequential methods.

Each test simulates 1,000 experiments at once with NumPy (fixed seeds) and runs them through
the same vectorised core the results API uses. Counts of false positives or of covering
intervals are compared with the 99.9 % band of Binomial(1000, rate), so a correct method fails a
test about once in a thousand seeds, and a wrong one (e.g. alpha doubled) fails nearly always.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from flagstaff.stats import ConversionCounts, conversion_results
from flagstaff.stats.compare import compare_conversions, compare_means

SIMULATIONS = 1_000
ALPHA = 0.05
DAYS = 30


def _band(rate: float) -> tuple[float, float]:
    low, high = sps.binom.ppf([0.0005, 0.9995], SIMULATIONS, rate)
    return float(low), float(high)


def _daily_conversions(
    rng: np.random.Generator, users_per_day: int, rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative users and converters after each day, shape (SIMULATIONS, DAYS)."""
    users = np.cumsum(np.full((SIMULATIONS, DAYS), users_per_day), axis=1)
    conversions = np.cumsum(rng.binomial(users_per_day, rate, size=(SIMULATIONS, DAYS)), axis=1)
    return users, conversions


def _daily_moments(
    rng: np.random.Generator, users_per_day: int, scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative n, mean, variance of a skewed (lognormal, e.g. revenue) metric per day."""
    values = scale * rng.lognormal(0.0, 1.0, size=(SIMULATIONS, DAYS, users_per_day))
    n = np.cumsum(np.full((SIMULATIONS, DAYS), users_per_day), axis=1).astype(float)
    total = np.cumsum(values.sum(axis=2), axis=1)
    squares = np.cumsum((values**2).sum(axis=2), axis=1)
    mean = total / n
    return n, mean, (squares - total * mean) / (n - 1)


def test_fixed_horizon_aa_false_positive_rate_is_alpha() -> None:
    rng = np.random.default_rng(20240601)
    n = 4_000
    x_t, x_c = rng.binomial(n, 0.1, SIMULATIONS), rng.binomial(n, 0.1, SIMULATIONS)
    p_values = compare_conversions(x_t, n, x_c, n, alpha=ALPHA).p_value
    false_positives = int((p_values < ALPHA).sum())
    low, high = _band(ALPHA)
    assert low <= false_positives <= high
    # The p-values of a calibrated test are uniform under H0.
    assert sps.kstest(p_values, "uniform").pvalue > 0.001


def test_fixed_horizon_aa_false_positive_rate_for_a_skewed_numeric_metric() -> None:
    rng = np.random.default_rng(99)
    values = rng.lognormal(0.0, 1.0, size=(2, SIMULATIONS, 3_000))
    n = values.shape[2]
    mean, variance = values.mean(axis=2), values.var(axis=2, ddof=1)
    result = compare_means(n, mean[0], variance[0], n, mean[1], variance[1])
    low, high = _band(ALPHA)
    assert low <= int((result.p_value < ALPHA).sum()) <= high


def test_daily_peeking_inflates_fixed_horizon_but_not_sequential_conversions() -> None:
    rng = np.random.default_rng(31)
    users, conv_t = _daily_conversions(rng, 400, 0.1)
    _, conv_c = _daily_conversions(rng, 400, 0.1)

    naive = compare_conversions(conv_t, users, conv_c, users, alpha=ALPHA).p_value
    always_valid = compare_conversions(
        conv_t, users, conv_c, users, alpha=ALPHA, sequential=True
    ).p_value
    naive_fp = int((naive < ALPHA).any(axis=1).sum())
    sequential_fp = int((always_valid < ALPHA).any(axis=1).sum())

    _, high = _band(ALPHA)
    # Stopping at the first daily "significant" result: well above alpha with the naive test...
    assert naive_fp > high
    # ...and within alpha with the always-valid p-values, though they were looked at 30 times.
    assert sequential_fp <= high
    assert sequential_fp < naive_fp / 2


def test_daily_peeking_with_sequential_numeric_metric_keeps_alpha() -> None:
    rng = np.random.default_rng(5)
    n, mean, variance = _daily_moments(rng, 100, 2.0)
    n2, mean2, variance2 = _daily_moments(rng, 100, 2.0)
    naive = compare_means(n, mean, variance, n2, mean2, variance2).p_value
    always_valid = compare_means(n, mean, variance, n2, mean2, variance2, sequential=True).p_value
    _, high = _band(ALPHA)
    assert int((naive < ALPHA).any(axis=1).sum()) > high
    assert int((always_valid < ALPHA).any(axis=1).sum()) <= high


def test_planted_conversion_lift_is_detected_and_covered() -> None:
    rng = np.random.default_rng(42)
    n, p_c, p_t = 20_000, 0.10, 0.11
    x_t, x_c = rng.binomial(n, p_t, SIMULATIONS), rng.binomial(n, p_c, SIMULATIONS)
    result = compare_conversions(x_t, n, x_c, n, alpha=ALPHA)

    # Power from the normal approximation for this design (about 0.9).
    se = np.sqrt(p_t * (1 - p_t) / n + p_c * (1 - p_c) / n)
    power = float(sps.norm.sf(sps.norm.ppf(1 - ALPHA / 2) - (p_t - p_c) / se))
    low, _ = _band(power)
    assert int((result.p_value < ALPHA).sum()) >= low

    low, high = _band(1 - ALPHA)
    covered = (result.lower <= p_t - p_c) & (p_t - p_c <= result.upper)
    assert low <= int(covered.sum()) <= high
    relative_covered = (result.relative_lower <= p_t / p_c - 1) & (
        p_t / p_c - 1 <= result.relative_upper
    )
    assert low <= int(relative_covered.sum()) <= high


def test_planted_numeric_lift_is_covered_by_both_intervals() -> None:
    rng = np.random.default_rng(8)
    n, mean, variance = _daily_moments(rng, 150, 1.0)
    n2, mean2, variance2 = _daily_moments(rng, 150, 1.05)  # +5 % on every value
    true_mean = np.exp(0.5)  # lognormal(0, 1)
    last = (slice(None), -1)
    result = compare_means(
        n2[last], mean2[last], variance2[last], n[last], mean[last], variance[last]
    )
    low, high = _band(1 - ALPHA)
    absolute = 0.05 * true_mean
    assert low <= int(((result.lower <= absolute) & (absolute <= result.upper)).sum()) <= high
    relative = (result.relative_lower <= 0.05) & (result.relative_upper >= 0.05)
    assert low <= int(relative.sum()) <= high


def test_confidence_sequence_covers_the_true_lift_at_every_look() -> None:
    rng = np.random.default_rng(77)
    users, conv_t = _daily_conversions(rng, 1_000, 0.12)
    _, conv_c = _daily_conversions(rng, 1_000, 0.10)
    result = compare_conversions(conv_t, users, conv_c, users, alpha=ALPHA, sequential=True)
    true_lift = 0.02
    covered_always = ((result.lower <= true_lift) & (true_lift <= result.upper)).all(axis=1)
    relative_always = ((result.relative_lower <= 0.2) & (result.relative_upper >= 0.2)).all(axis=1)
    low, _ = _band(1 - ALPHA)
    assert int(covered_always.sum()) >= low
    assert int(relative_always.sum()) >= low
    # And the effect is found: by day 30 (30,000 users per arm) nearly every run has stopped.
    detected = (result.p_value < ALPHA).any(axis=1)
    assert detected.mean() > 0.9


@pytest.mark.parametrize("sequential", [False, True])
def test_public_api_gives_the_simulated_core_results(sequential: bool) -> None:
    rng = np.random.default_rng(3)
    x_c, x_b, x_d = rng.binomial(5_000, 0.2, 3)
    core = compare_conversions([x_b, x_d], 5_000, x_c, 5_000, sequential=sequential)
    api = conversion_results(
        ConversionCounts("c", 5_000, int(x_c)),
        [ConversionCounts("b", 5_000, int(x_b)), ConversionCounts("d", 5_000, int(x_d))],
        sequential=sequential,
    )
    for i, comparison in enumerate(api.comparisons):
        assert comparison.p_value == core.p_value[i]
        assert comparison.absolute_ci is not None
        assert (comparison.absolute_ci.lower, comparison.absolute_ci.upper) == (
            core.lower[i],
            core.upper[i],
        )
