"""Typed, frozen result objects of the statistics API and their JSON form.

``to_dict()`` produces plain JSON-ready dicts; non-finite floats (an unbounded relative interval,
an infinite chi-square statistic) become ``null`` because JSON has no infinity.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

MetricType = Literal["conversion", "numeric"]
Method = Literal["fixed", "sequential"]
Correction = Literal["holm", "none"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


class _ToDict:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = _jsonable(dataclasses.asdict(self))  # type: ignore[call-overload]
        return data


@dataclass(frozen=True, slots=True)
class Interval(_ToDict):
    lower: float
    upper: float

    def __contains__(self, value: float) -> bool:
        return self.lower <= value <= self.upper


@dataclass(frozen=True, slots=True)
class VariantSummary(_ToDict):
    """Descriptive statistics of one variant (control included)."""

    variant: str
    users: int
    value: float | None  # conversion rate or mean; None without users
    conversions: int | None = None  # conversion metrics only
    std_dev: float | None = None  # numeric metrics only (n - 1 denominator)


@dataclass(frozen=True, slots=True)
class TreatmentResult(_ToDict):
    """One treatment compared against control. ``None`` means not computable (too little data)."""

    variant: str
    absolute_lift: float | None  # treatment - control, in the metric's units
    absolute_ci: Interval | None
    relative_lift: float | None  # treatment / control - 1 (0.1 means +10 %)
    relative_ci: Interval | None
    p_value: float | None  # raw, for this comparison alone
    adjusted_p_value: float | None  # after the multiple-comparison correction
    significant: bool  # adjusted_p_value < alpha
    statistic: float | None = None  # z or Welch t (fixed horizon only)
    df: float | None = None  # Welch-Satterthwaite degrees of freedom (numeric, fixed horizon)


@dataclass(frozen=True, slots=True)
class ExperimentResults(_ToDict):
    """Everything ``GET /experiments/{key}/results`` needs for one metric."""

    metric_type: MetricType
    method: Method
    test: str  # human-readable name of the test used
    alpha: float
    confidence_level: float
    correction: Correction
    tuning_n: float | None  # sequential mode only: users per arm where the CI is narrowest
    control: str
    variants: tuple[VariantSummary, ...]  # control first, then treatments in input order
    comparisons: tuple[TreatmentResult, ...]  # one per treatment, in input order

    def comparison(self, variant: str) -> TreatmentResult:
        for result in self.comparisons:
            if result.variant == variant:
                return result
        raise KeyError(variant)


@dataclass(frozen=True, slots=True)
class VariantShare(_ToDict):
    """Observed versus configured share of exposed users for one variant."""

    variant: str
    observed: int
    expected_share: float
    observed_share: float | None  # None when nobody was exposed yet
    deviation: float | None  # observed_share - expected_share, in absolute share (0.05 = 5 pp)
    relative_deviation: float | None  # deviation / expected_share (None for a 0 % allocation)
    exceeds_tolerance: bool


@dataclass(frozen=True, slots=True)
class SRMResult(_ToDict):
    """Sample ratio mismatch check: a chi-square test and the simpler share rule, reported apart."""

    total: int
    statistic: float | None  # chi-square; inf (null in JSON) for users in a 0 % variant
    df: int | None
    p_value: float | None  # None when there is nothing to test
    threshold: float
    mismatch: bool  # p_value < threshold: the warning to log and show
    tolerance: float
    share_deviation: bool  # some variant's share is off by more than ``tolerance`` (absolute)
    variants: tuple[VariantShare, ...]
