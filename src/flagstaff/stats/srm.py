"""Sample ratio mismatch (SRM): are exposed users split the way the allocation says?

Two signals, reported separately:

* ``mismatch``: Pearson's chi-square goodness-of-fit test (``scipy.stats.chisquare``) of the
  exposed-user counts against ``total * weight / sum(weights)``; a mismatch is declared when
  ``p < 0.001``, the conventional SRM threshold (strict because the check runs on every look and
  a false alarm halts the analysis). The chi-square approximation wants expected counts >= 5.
* ``share_deviation``: the spec's simple rule, a variant's observed share deviates from its
  allocation by more than 5 percentage points, *absolute* (45 % against 50 % is 5 pp). Absolute
  rather than relative because a relative 5 % of a small arm (0.25 pp of a 5 % arm) is pure noise
  at any realistic size. It ignores sample size, so it is a display hint; the chi-square decides.

Users in a variant with a 0 % allocation can only come from a bug: they make the chi-square
statistic infinite (p = 0, a mismatch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy import stats as sps

from flagstaff.errors import Invalid
from flagstaff.stats.results import SRMResult, VariantShare

SRM_THRESHOLD = 0.001
SHARE_TOLERANCE = 0.05


def srm_check(
    observed_counts: Mapping[str, int],
    allocation_weights: Mapping[str, float],
    *,
    threshold: float = SRM_THRESHOLD,
    tolerance: float = SHARE_TOLERANCE,
) -> SRMResult:
    """Check exposed users per variant against allocation weights (any scale: 50/50 or .5/.5)."""
    for variant, count in observed_counts.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise Invalid(
                f"observed count of {variant!r} must be a non-negative integer",
                details={"field": f"observed_counts.{variant}"},
            )
    for variant, weight in allocation_weights.items():
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not (math.isfinite(weight) and weight >= 0)
        ):
            raise Invalid(
                f"allocation weight of {variant!r} must be a non-negative number",
                details={"field": f"allocation_weights.{variant}"},
            )
    weight_sum = float(sum(allocation_weights.values()))
    if weight_sum <= 0:
        raise Invalid(
            "allocation weights must not all be 0", details={"field": "allocation_weights"}
        )
    if not 0 < threshold < 1 or not 0 < tolerance < 1:
        raise Invalid(
            "threshold and tolerance must be between 0 and 1", details={"field": "threshold"}
        )

    # Allocated variants first (in allocation order), then anything observed but never allocated.
    names = [*allocation_weights, *(v for v in observed_counts if v not in allocation_weights)]
    observed = np.array([observed_counts.get(v, 0) for v in names], dtype=np.int64)
    shares = np.array([allocation_weights.get(v, 0.0) / weight_sum for v in names])
    total = int(observed.sum())

    allocated = shares > 0
    statistic: float | None = None
    p_value: float | None = None
    df: int | None = None
    if total > 0 and bool((observed[~allocated] > 0).any()):
        statistic, p_value, df = math.inf, 0.0, int(allocated.sum()) - 1
    elif total > 0 and allocated.sum() >= 2:
        test = sps.chisquare(observed[allocated], f_exp=total * shares[allocated])
        statistic, p_value, df = float(test.statistic), float(test.pvalue), int(allocated.sum()) - 1

    variants = []
    # Plain Python numbers from here on: numpy scalars would leak into the JSON.
    for name, count, share in zip(names, observed.tolist(), shares.tolist(), strict=True):
        observed_share = count / total if total else None
        deviation = None if observed_share is None else observed_share - share
        variants.append(
            VariantShare(
                variant=name,
                observed=count,
                expected_share=share,
                observed_share=observed_share,
                deviation=deviation,
                relative_deviation=None if deviation is None or share == 0 else deviation / share,
                exceeds_tolerance=deviation is not None and abs(deviation) > tolerance,
            )
        )
    return SRMResult(
        total=total,
        statistic=statistic,
        df=df,
        p_value=p_value,
        threshold=threshold,
        mismatch=p_value is not None and p_value < threshold,
        tolerance=tolerance,
        share_deviation=any(v.exceeds_tolerance for v in variants),
        variants=tuple(variants),
    )
