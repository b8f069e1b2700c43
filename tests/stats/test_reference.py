"""Fixed-horizon results against independently computed reference values (statsmodels, SciPy)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from flagstaff.stats import ConversionCounts, NumericMoments, conversion_results, numeric_results
from flagstaff.stats.compare import holm

# (treatment conversions, treatment users, control conversions, control users)
CONVERSION_DATASETS = [
    (1100, 10_000, 1000, 10_000),  # 10 % vs 11 %, equal arms
    (83, 1_000, 70, 1_100),  # small and unequal
    (5, 40, 12, 45),  # tiny counts, negative effect
    (4_812, 52_113, 4_690, 51_877),  # large, near-null
    (300, 300, 299, 300),  # rates near 1
]


@pytest.mark.parametrize(("x_t", "n_t", "x_c", "n_c"), CONVERSION_DATASETS)
@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_conversions_match_statsmodels(
    x_t: int, n_t: int, x_c: int, n_c: int, alpha: float
) -> None:
    result = conversion_results(
        ConversionCounts("control", n_c, x_c), [ConversionCounts("b", n_t, x_t)], alpha=alpha
    ).comparison("b")

    z, p = proportions_ztest([x_t, x_c], [n_t, n_c])  # pooled variance by default
    assert result.statistic == pytest.approx(z, rel=1e-10)
    assert result.p_value == pytest.approx(p, rel=1e-9)
    assert result.adjusted_p_value == result.p_value  # one treatment: nothing to correct
    assert result.significant is bool(p < alpha)

    low, high = confint_proportions_2indep(
        x_t, n_t, x_c, n_c, method="wald", compare="diff", alpha=alpha
    )
    assert result.absolute_lift == pytest.approx(x_t / n_t - x_c / n_c, abs=1e-15)
    assert result.absolute_ci is not None
    assert (result.absolute_ci.lower, result.absolute_ci.upper) == pytest.approx(
        (low, high), rel=1e-9
    )

    ratio_low, ratio_high = confint_proportions_2indep(
        x_t, n_t, x_c, n_c, method="log", compare="ratio", alpha=alpha
    )
    assert result.relative_lift == pytest.approx((x_t / n_t) / (x_c / n_c) - 1, rel=1e-12)
    assert result.relative_ci is not None
    assert result.relative_ci.lower == pytest.approx(ratio_low - 1, rel=1e-9, abs=1e-12)
    assert result.relative_ci.upper == pytest.approx(ratio_high - 1, rel=1e-9, abs=1e-12)


def _moments(name: str, values: np.ndarray) -> NumericMoments:
    # The same aggregates the store computes with SQL: COUNT, SUM, SUM of squares.
    return NumericMoments(name, len(values), float(values.sum()), float((values**2).sum()))


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_numeric_matches_scipy_and_statsmodels_on_raw_data(seed: int, alpha: float) -> None:
    rng = np.random.default_rng(seed)
    control = rng.lognormal(mean=2.0, sigma=0.8, size=int(rng.integers(30, 400)))
    treatment = rng.lognormal(mean=2.1, sigma=1.0, size=int(rng.integers(30, 400)))
    result = numeric_results(
        _moments("control", control), [_moments("b", treatment)], alpha=alpha
    ).comparison("b")

    reference = sps.ttest_ind(treatment, control, equal_var=False)
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-8)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-7)
    assert result.df == pytest.approx(reference.df, rel=1e-8)

    compare = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    low, high = compare.tconfint_diff(alpha=alpha, usevar="unequal")
    assert result.absolute_lift == pytest.approx(treatment.mean() - control.mean(), rel=1e-10)
    assert result.absolute_ci is not None
    assert (result.absolute_ci.lower, result.absolute_ci.upper) == pytest.approx(
        (low, high), rel=1e-8
    )
    scipy_ci = reference.confidence_interval(confidence_level=1 - alpha)
    assert (result.absolute_ci.lower, result.absolute_ci.upper) == pytest.approx(
        (scipy_ci.low, scipy_ci.high), rel=1e-8
    )
    assert result.relative_lift == pytest.approx(treatment.mean() / control.mean() - 1, rel=1e-10)


def test_numeric_relative_interval_is_the_delta_method_on_the_log_ratio() -> None:
    control = NumericMoments.from_mean_variance("control", users=500, mean=20.0, variance=100.0)
    treatment = NumericMoments.from_mean_variance("b", users=400, mean=22.0, variance=144.0)
    result = numeric_results(control, [treatment]).comparison("b")
    # Independently: Var(log mean) ~ s^2 / (n m^2); Welch-Satterthwaite df of the two terms.
    a, b = 144.0 / (400 * 22.0**2), 100.0 / (500 * 20.0**2)
    df = (a + b) ** 2 / (a**2 / 399 + b**2 / 499)
    half = sps.t.ppf(0.975, df) * np.sqrt(a + b)
    assert result.relative_ci is not None
    assert result.relative_ci.lower == pytest.approx(1.1 * np.exp(-half) - 1, rel=1e-10)
    assert result.relative_ci.upper == pytest.approx(1.1 * np.exp(half) - 1, rel=1e-10)


def test_holm_matches_statsmodels_multipletests() -> None:
    rng = np.random.default_rng(7)
    for size in (1, 2, 3, 5, 12):
        p = rng.uniform(0, 0.2, size=size)
        p[rng.integers(0, size)] = p[0]  # ties must not break the step-down order
        expected = multipletests(p, alpha=0.05, method="holm")[1]
        np.testing.assert_allclose(holm(p), expected, rtol=1e-12)


def test_holm_leaves_missing_p_values_out_of_the_family() -> None:
    adjusted = holm([0.01, np.nan, 0.04])
    np.testing.assert_allclose(adjusted[[0, 2]], multipletests([0.01, 0.04], method="holm")[1])
    assert np.isnan(adjusted[1])


def test_results_with_several_treatments_are_holm_corrected() -> None:
    control = ConversionCounts("control", 20_000, 2_000)
    treatments = [
        ConversionCounts("b", 20_000, 2_130),
        ConversionCounts("c", 20_000, 2_090),
        ConversionCounts("d", 20_000, 1_950),
    ]
    results = conversion_results(control, treatments)
    raw = [r.p_value for r in results.comparisons]
    reject, expected, _, _ = multipletests(raw, alpha=0.05, method="holm")
    assert [r.adjusted_p_value for r in results.comparisons] == pytest.approx(list(expected))
    assert [r.significant for r in results.comparisons] == list(reject)
    # The correction matters here: b alone is significant, but not after adjusting for three.
    assert raw[0] is not None and raw[0] < 0.05
    assert not results.comparison("b").significant

    uncorrected = conversion_results(control, treatments, correction="none")
    assert uncorrected.comparison("b").significant
    assert uncorrected.comparison("b").adjusted_p_value == uncorrected.comparison("b").p_value
