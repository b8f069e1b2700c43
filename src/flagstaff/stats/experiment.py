"""Experiment results for one metric: per-variant summaries and treatment-versus-control tests.

The server calls :func:`conversion_results` or :func:`numeric_results` with the aggregates the
store produced; nothing here does I/O. The maths lives in :mod:`flagstaff.stats.compare`
(vectorised over treatments), this module validates arguments, applies the Holm correction and
packs typed results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from flagstaff.errors import Invalid
from flagstaff.stats.compare import Comparison, compare_conversions, compare_means, holm
from flagstaff.stats.inputs import ConversionCounts, NumericMoments
from flagstaff.stats.results import (
    Correction,
    ExperimentResults,
    Interval,
    MetricType,
    TreatmentResult,
    VariantSummary,
)

DEFAULT_TUNING_N = 5000


def _check_options(
    control: str, treatments: Sequence[str], alpha: float, tuning_n: float, correction: str
) -> None:
    if not treatments:
        raise Invalid("at least one treatment variant is required", details={"field": "treatments"})
    names = [control, *treatments]
    if len(set(names)) != len(names):
        raise Invalid("variant names must be distinct", details={"field": "treatments"})
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise Invalid("alpha must be strictly between 0 and 1", details={"field": "alpha"})
    if (
        isinstance(tuning_n, bool)
        or not isinstance(tuning_n, int | float)
        or not (math.isfinite(tuning_n) and tuning_n > 0)
    ):
        raise Invalid("tuning_n must be a positive number", details={"field": "tuning_n"})
    if correction not in ("holm", "none"):
        raise Invalid("correction must be 'holm' or 'none'", details={"field": "correction"})


def _opt(value: np.float64) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def _interval(lower: np.float64, upper: np.float64) -> Interval | None:
    low, high = _opt(lower), _opt(upper)
    return None if low is None or high is None else Interval(low, high)


def _pack(
    *,
    metric_type: MetricType,
    test: str,
    control: str,
    names: Sequence[str],
    summaries: tuple[VariantSummary, ...],
    comparison: Comparison,
    alpha: float,
    sequential: bool,
    tuning_n: float,
    correction: Correction,
) -> ExperimentResults:
    adjusted = holm(comparison.p_value) if correction == "holm" else comparison.p_value
    results = []
    for i, name in enumerate(names):
        adjusted_p = _opt(adjusted[i])
        results.append(
            TreatmentResult(
                variant=name,
                absolute_lift=_opt(comparison.estimate[i]),
                absolute_ci=_interval(comparison.lower[i], comparison.upper[i]),
                relative_lift=_opt(comparison.relative[i]),
                relative_ci=_interval(comparison.relative_lower[i], comparison.relative_upper[i]),
                p_value=_opt(comparison.p_value[i]),
                adjusted_p_value=adjusted_p,
                significant=adjusted_p is not None and adjusted_p < alpha,
                statistic=_opt(comparison.statistic[i]),
                df=_opt(comparison.df[i]),
            )
        )
    return ExperimentResults(
        metric_type=metric_type,
        method="sequential" if sequential else "fixed",
        test=test,
        alpha=float(alpha),
        confidence_level=1.0 - float(alpha),
        correction=correction,
        tuning_n=float(tuning_n) if sequential else None,
        control=control,
        variants=summaries,
        comparisons=tuple(results),
    )


def conversion_results(
    control: ConversionCounts,
    treatments: Sequence[ConversionCounts],
    *,
    alpha: float = 0.05,
    sequential: bool = False,
    tuning_n: float = DEFAULT_TUNING_N,
    correction: Correction = "holm",
) -> ExperimentResults:
    """Conversion-rate results: pooled z-test, unpooled Wald CI, log-ratio relative CI, Holm.

    With ``sequential=True`` p-values and intervals come from the mSPRT and stay valid however
    often the results are looked at; ``tuning_n`` (users per arm) only trades early against late
    power.
    """
    names = [t.variant for t in treatments]
    _check_options(control.variant, names, alpha, tuning_n, correction)
    comparison = compare_conversions(
        [t.conversions for t in treatments],
        [t.users for t in treatments],
        control.conversions,
        control.users,
        alpha=alpha,
        sequential=sequential,
        tuning_n=tuning_n,
    )
    summaries = tuple(
        VariantSummary(variant=v.variant, users=v.users, value=v.rate, conversions=v.conversions)
        for v in (control, *treatments)
    )
    return _pack(
        metric_type="conversion",
        test="msprt" if sequential else "two-proportion z-test",
        control=control.variant,
        names=names,
        summaries=summaries,
        comparison=comparison,
        alpha=alpha,
        sequential=sequential,
        tuning_n=tuning_n,
        correction=correction,
    )


def numeric_results(
    control: NumericMoments,
    treatments: Sequence[NumericMoments],
    *,
    alpha: float = 0.05,
    sequential: bool = False,
    tuning_n: float = DEFAULT_TUNING_N,
    correction: Correction = "holm",
) -> ExperimentResults:
    """Numeric-metric results: Welch's t-test and Welch-Satterthwaite CI, log-ratio relative CI."""
    names = [t.variant for t in treatments]
    _check_options(control.variant, names, alpha, tuning_n, correction)

    def moments(v: NumericMoments) -> tuple[float, float, float]:
        # NaN for too few users: compare_means marks those comparisons as undefined.
        mean, variance = v.mean, v.variance
        return (
            float(v.users),
            math.nan if mean is None else mean,
            math.nan if variance is None else variance,
        )

    treatment_moments = np.array([moments(t) for t in treatments]).T
    n_c, m_c, v_c = moments(control)
    comparison = compare_means(
        treatment_moments[0],
        treatment_moments[1],
        treatment_moments[2],
        n_c,
        m_c,
        v_c,
        alpha=alpha,
        sequential=sequential,
        tuning_n=tuning_n,
    )
    summaries = tuple(
        VariantSummary(
            variant=v.variant,
            users=v.users,
            value=v.mean,
            std_dev=None if v.variance is None else math.sqrt(v.variance),
        )
        for v in (control, *treatments)
    )
    return _pack(
        metric_type="numeric",
        test="msprt" if sequential else "welch t-test",
        control=control.variant,
        names=names,
        summaries=summaries,
        comparison=comparison,
        alpha=alpha,
        sequential=sequential,
        tuning_n=tuning_n,
        correction=correction,
    )
