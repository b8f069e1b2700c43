"""Always-valid inference: the mixture sequential probability ratio test (mSPRT).

Following Johari, Pekelis & Walsh, "Always Valid Inference: Continuous Monitoring of A/B Tests"
(Operations Research, 2022), the approach used by Optimizely. For an asymptotically normal
estimate ``theta_hat`` of an effect ``theta`` with variance ``V`` and a normal mixing distribution
``theta ~ N(theta_0, tau2)``, the mixture likelihood ratio against ``H0: theta = theta_0`` is

    Lambda = sqrt(V / (V + tau2)) * exp(tau2 * (theta_hat - theta_0)^2 / (2 V (V + tau2)))

``Lambda`` is a non-negative martingale under H0, so by Ville's inequality
``P(Lambda >= 1/alpha at any time) <= alpha``: ``p = min(1, 1/Lambda)`` is an always-valid p-value
and inverting it gives the confidence sequence

    theta_hat +- sqrt(V (V + tau2) / tau2 * (log((V + tau2) / V) + 2 log(1/alpha)))

which covers ``theta`` at every look simultaneously with probability ``1 - alpha``.

Choice of ``tau2``: we tune it so the confidence sequence is narrowest when each arm has
``tuning_n`` users (the parametrisation GrowthBook exposes, after Howard et al. 2021). Writing
``r = tau2 / V``, the squared half-width is ``V^2 (1 + r) / r * (log(1 + r) + 2 log(1/alpha))``,
minimised where ``r = log(1 + r) + 2 log(1/alpha)`` (about 8.2 at alpha = 0.05); hence
``tau2 = r* * V(tuning_n)``. The test stays valid for any ``tau2``; the choice only moves power.

All functions are vectorised over NumPy arrays so simulations use the same code as the API.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq

FloatArray = NDArray[np.float64]


@cache
def optimal_variance_ratio(alpha: float) -> float:
    """The ``tau2 / V`` that minimises the confidence-sequence width at a given variance."""
    level = 2.0 * math.log(1.0 / alpha)
    # f(r) = r - log(1 + r) - level is increasing for r > 0, negative at 0, positive at the top.
    return float(brentq(lambda r: r - math.log1p(r) - level, 1e-12, 10.0 * level + 10.0))


def mixing_variance(variance_at_tuning: FloatArray, alpha: float) -> FloatArray:
    """``tau2`` for each comparison, given the estimate's variance at the tuning sample size."""
    return optimal_variance_ratio(alpha) * variance_at_tuning


def msprt(
    estimate: FloatArray, variance: FloatArray, tau2: FloatArray, alpha: float
) -> tuple[FloatArray, FloatArray]:
    """Always-valid p-values (against 0) and confidence-sequence half-widths.

    Where ``variance`` is 0 the formulas' limits are returned: half-width 0 and a p-value of 1
    when the estimate is 0, else 0. Where ``tau2`` is 0 (no variance anywhere) the same holds.
    """
    estimate, variance, tau2 = np.broadcast_arrays(
        np.asarray(estimate, dtype=np.float64),
        np.asarray(variance, dtype=np.float64),
        np.asarray(tau2, dtype=np.float64),
    )
    ok = (variance > 0) & (tau2 > 0)
    v = np.where(ok, variance, 1.0)
    t2 = np.where(ok, tau2, 1.0)
    total = v + t2
    # Work on the log scale: exp() of the quadratic term overflows for large effects.
    log_lambda = 0.5 * np.log(v / total) + t2 * estimate**2 / (2.0 * v * total)
    p_value = np.exp(-np.maximum(log_lambda, 0.0))
    half_width = np.sqrt(v * total / t2 * (np.log(total / v) + 2.0 * math.log(1.0 / alpha)))
    degenerate_p = np.where(estimate == 0, 1.0, 0.0)
    return np.where(ok, p_value, degenerate_p), np.where(ok, half_width, 0.0)
