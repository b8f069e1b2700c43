"""Per-variant sufficient statistics: what the store aggregates and the statistics consume.

The store computes these with plain SQL aggregates over *users* (one row per exposed user), so
the analysis unit is the user, the same unit that was randomised:

* conversions: ``COUNT(*)`` exposed users and ``SUM(converted)`` users who converted;
* numeric metrics: ``COUNT(*)``, ``SUM(value)`` and ``SUM(value * value)`` of the per-user value
  (users who were exposed but never tracked the metric count with value 0).

Everything here validates eagerly and raises :class:`flagstaff.errors.Invalid` naming the field,
so bad aggregates surface as a clear 400 rather than as NaNs deep in the maths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flagstaff.errors import Invalid


def _check_count(value: object, field: str) -> int:
    # bool is an int subclass; True users is always a caller bug.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid(f"{field} must be a non-negative integer", details={"field": field})
    return value


def _check_finite(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid(f"{field} must be a finite number", details={"field": field})
    return float(value)


@dataclass(frozen=True, slots=True)
class ConversionCounts:
    """Exposed users of one variant and how many of them converted (at least once)."""

    variant: str
    users: int
    conversions: int

    def __post_init__(self) -> None:
        _check_count(self.users, f"{self.variant}.users")
        _check_count(self.conversions, f"{self.variant}.conversions")
        if self.conversions > self.users:
            raise Invalid(
                f"{self.variant}: conversions ({self.conversions}) exceed users ({self.users})",
                details={"field": f"{self.variant}.conversions"},
            )

    @property
    def rate(self) -> float | None:
        return self.conversions / self.users if self.users else None


@dataclass(frozen=True, slots=True)
class NumericMoments:
    """Count, sum and sum of squares of a per-user numeric metric for one variant."""

    variant: str
    users: int
    total: float
    sum_squares: float

    def __post_init__(self) -> None:
        _check_count(self.users, f"{self.variant}.users")
        _check_finite(self.total, f"{self.variant}.total")
        _check_finite(self.sum_squares, f"{self.variant}.sum_squares")
        if self.sum_squares < 0:
            raise Invalid(
                f"{self.variant}.sum_squares must be non-negative",
                details={"field": f"{self.variant}.sum_squares"},
            )
        # Cauchy-Schwarz: sum^2 <= n * sum_sq. A relative slack absorbs float rounding from SQL.
        if self.total * self.total > self.users * self.sum_squares * (1 + 1e-9) + 1e-9:
            raise Invalid(
                f"{self.variant}: total and sum_squares are inconsistent for {self.users} users",
                details={"field": f"{self.variant}.sum_squares"},
            )

    @classmethod
    def from_mean_variance(
        cls, variant: str, *, users: int, mean: float, variance: float
    ) -> NumericMoments:
        """Build from a mean and an (n - 1)-denominator sample variance."""
        _check_count(users, f"{variant}.users")
        mean = _check_finite(mean, f"{variant}.mean")
        variance = _check_finite(variance, f"{variant}.variance")
        if variance < 0:
            raise Invalid(
                f"{variant}.variance must be non-negative", details={"field": f"{variant}.variance"}
            )
        total = mean * users
        sum_squares = (
            variance * (users - 1) + mean * mean * users if users > 1 else mean * mean * users
        )
        return cls(variant=variant, users=users, total=total, sum_squares=sum_squares)

    @property
    def mean(self) -> float | None:
        return self.total / self.users if self.users else None

    @property
    def variance(self) -> float | None:
        """Sample variance with the n - 1 denominator (``None`` below two users)."""
        if self.users < 2:
            return None
        centred = self.sum_squares - self.total * self.total / self.users
        # Catastrophic cancellation can leave a tiny negative for near-constant data.
        return max(centred, 0.0) / (self.users - 1)
