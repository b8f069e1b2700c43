"""Vectorised treatment-versus-control comparisons (the numeric core behind the results API).

Every function takes NumPy arrays (one entry per comparison, broadcast against each other) and
returns a :class:`Comparison` of arrays, with NaN where a quantity is undefined (too few users,
a zero control rate, ...). The public API calls these with one entry per treatment; the
simulation tests call them with one entry per simulated experiment, so both exercise the same
code.

Conversions (fixed horizon): the p-value is the two-proportion z-test with the *pooled* standard
error (the variance under H0: p_t = p_c, as ``statsmodels.stats.proportion.proportions_ztest``);
the interval on the difference is the Wald interval with the *unpooled* standard error (under
no assumption about the difference). Numeric metrics: Welch's t-test and a Welch-Satterthwaite
t interval. Relative lift ``mean_t / mean_c - 1``: a delta-method interval on the log ratio,
``log(m_t / m_c) +- q * sqrt(Var_t / (n_t m_t^2) + Var_c / (n_c m_c^2))``, exponentiated, so it
never crosses -100 % and is asymmetric like the ratio itself; defined when both means are > 0.
Sequential mode replaces all of this by the mSPRT (:mod:`flagstaff.stats.sequential`) on the
same estimates and plug-in variances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

from flagstaff.stats.sequential import mixing_variance, msprt

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Comparison:
    """Per-comparison arrays; NaN marks an undefined value."""

    estimate: FloatArray  # treatment - control
    lower: FloatArray
    upper: FloatArray
    p_value: FloatArray
    statistic: FloatArray  # z (conversions) or Welch t; NaN in sequential mode
    df: FloatArray  # Welch-Satterthwaite degrees of freedom; NaN for z and sequential
    relative: FloatArray  # treatment / control - 1
    relative_lower: FloatArray
    relative_upper: FloatArray


def _f(value: ArrayLike) -> FloatArray:
    return np.asarray(value, dtype=np.float64)


def _satterthwaite(
    part_t: FloatArray, n_t: FloatArray, part_c: FloatArray, n_c: FloatArray
) -> FloatArray:
    return (part_t + part_c) ** 2 / (part_t**2 / (n_t - 1) + part_c**2 / (n_c - 1))


def _log_ratio_interval(
    log_ratio: FloatArray, half_width: FloatArray, ok: NDArray[np.bool_]
) -> tuple[FloatArray, FloatArray]:
    # Masked-out entries may hold inf or NaN; their arithmetic must not warn.
    with np.errstate(invalid="ignore", over="ignore"):
        lower = np.where(ok, np.expm1(log_ratio - half_width), np.nan)
        upper = np.where(ok, np.expm1(log_ratio + half_width), np.nan)
    return lower, upper


def compare_conversions(
    conversions_t: ArrayLike,
    users_t: ArrayLike,
    conversions_c: ArrayLike,
    users_c: ArrayLike,
    *,
    alpha: float = 0.05,
    sequential: bool = False,
    tuning_n: float = 5000.0,
) -> Comparison:
    """Compare conversion rates of treatments (``_t``) against control (``_c``)."""
    x_t, n_t, x_c, n_c = np.broadcast_arrays(
        _f(conversions_t), _f(users_t), _f(conversions_c), _f(users_c)
    )
    valid = (n_t > 0) & (n_c > 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p_t, p_c = x_t / n_t, x_c / n_c
        diff = p_t - p_c
        unit_t, unit_c = p_t * (1 - p_t), p_c * (1 - p_c)
        variance = unit_t / n_t + unit_c / n_c
        # d log(p) / dp = 1 / p, so the per-user variance of log(p_hat) is (1 - p) / p.
        rel_ok = valid & (x_t > 0) & (x_c > 0)
        log_ratio = np.log(p_t / p_c)
        log_unit_t, log_unit_c = (1 - p_t) / p_t, (1 - p_c) / p_c
        log_variance = log_unit_t / n_t + log_unit_c / n_c
        relative = np.where(valid & (x_c > 0), p_t / p_c - 1, np.nan)

        if sequential:
            tau2 = mixing_variance((unit_t + unit_c) / tuning_n, alpha)
            p_value, half = msprt(diff, variance, tau2, alpha)
            log_tau2 = mixing_variance((log_unit_t + log_unit_c) / tuning_n, alpha)
            _, log_half = msprt(log_ratio, log_variance, log_tau2, alpha)
            statistic = np.full_like(diff, np.nan)
        else:
            pooled = (x_t + x_c) / (n_t + n_c)
            se0 = np.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
            # se0 == 0 means both arms are all-0 or all-1: the difference is exactly 0.
            statistic = np.where(se0 > 0, diff / se0, 0.0)
            p_value = 2 * sps.norm.sf(np.abs(statistic))
            q = float(sps.norm.ppf(1 - alpha / 2))
            half = q * np.sqrt(variance)
            log_half = q * np.sqrt(log_variance)

    rel_lower, rel_upper = _log_ratio_interval(log_ratio, log_half, rel_ok)
    nan = np.full_like(diff, np.nan)
    return Comparison(
        estimate=np.where(valid, diff, nan),
        lower=np.where(valid, diff - half, nan),
        upper=np.where(valid, diff + half, nan),
        p_value=np.where(valid, p_value, nan),
        statistic=np.where(valid, statistic, nan),
        df=nan,
        relative=relative,
        relative_lower=rel_lower,
        relative_upper=rel_upper,
    )


def compare_means(
    users_t: ArrayLike,
    mean_t: ArrayLike,
    variance_t: ArrayLike,
    users_c: ArrayLike,
    mean_c: ArrayLike,
    variance_c: ArrayLike,
    *,
    alpha: float = 0.05,
    sequential: bool = False,
    tuning_n: float = 5000.0,
) -> Comparison:
    """Compare means of treatments against control; variances use the n - 1 denominator."""
    n_t, m_t, v_t, n_c, m_c, v_c = np.broadcast_arrays(
        _f(users_t), _f(mean_t), _f(variance_t), _f(users_c), _f(mean_c), _f(variance_c)
    )
    valid = (n_t >= 2) & (n_c >= 2)
    nan = np.full(n_t.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        diff = m_t - m_c
        part_t, part_c = v_t / n_t, v_c / n_c
        variance = part_t + part_c
        rel_ok = valid & (m_t > 0) & (m_c > 0)
        log_ratio = np.log(m_t / m_c)
        log_part_t, log_part_c = part_t / m_t**2, part_c / m_c**2
        log_variance = log_part_t + log_part_c
        relative = np.where(valid & (m_c > 0), m_t / m_c - 1, np.nan)

        if sequential:
            tau2 = mixing_variance((v_t + v_c) / tuning_n, alpha)
            p_value, half = msprt(diff, variance, tau2, alpha)
            log_tau2 = mixing_variance((v_t / m_t**2 + v_c / m_c**2) / tuning_n, alpha)
            _, log_half = msprt(log_ratio, log_variance, log_tau2, alpha)
            statistic, df = nan, nan
        else:
            live = valid & (variance > 0)
            statistic, p_value = nan.copy(), np.where(diff == 0, 1.0, 0.0)
            if live.any():
                t, p = sps.ttest_ind_from_stats(
                    m_t[live],
                    np.sqrt(v_t[live]),
                    n_t[live],
                    m_c[live],
                    np.sqrt(v_c[live]),
                    n_c[live],
                    equal_var=False,
                )
                statistic[live], p_value[live] = t, p
            df = np.where(live, _satterthwaite(part_t, n_t, part_c, n_c), np.nan)
            half = np.where(live, sps.t.ppf(1 - alpha / 2, df) * np.sqrt(variance), 0.0)
            log_df = _satterthwaite(log_part_t, n_t, log_part_c, n_c)
            log_half = sps.t.ppf(1 - alpha / 2, log_df) * np.sqrt(log_variance)
            log_half = np.where(rel_ok & (log_variance > 0), log_half, 0.0)

    rel_lower, rel_upper = _log_ratio_interval(log_ratio, log_half, rel_ok)
    return Comparison(
        estimate=np.where(valid, diff, nan),
        lower=np.where(valid, diff - half, nan),
        upper=np.where(valid, diff + half, nan),
        p_value=np.where(valid, p_value, nan),
        statistic=np.where(valid, statistic, nan),
        df=np.where(valid, df, nan),
        relative=relative,
        relative_lower=rel_lower,
        relative_upper=rel_upper,
    )


def holm(p_values: ArrayLike) -> FloatArray:
    """Holm step-down adjusted p-values (NaN entries are left out of the family and stay NaN)."""
    p = _f(p_values)
    adjusted = np.full_like(p, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    m = present.size
    if m == 0:
        return adjusted
    order = present[np.argsort(p[present], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    # Step-down: an adjusted p-value is never below the one of a smaller raw p-value.
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


__all__ = ["Comparison", "compare_conversions", "compare_means", "holm"]
