"""Statistics for experiments: fixed-horizon and always-valid tests, Holm correction and SRM.

Pure and typed (no I/O): the server hands in per-variant aggregates and serialises the frozen
results with ``to_dict()``. This package needs NumPy and SciPy (the ``server`` extra); the
engine and the SDK must never import it. Methods and formulas: ``docs/statistics.md``.
"""

from __future__ import annotations

from flagstaff.stats.experiment import DEFAULT_TUNING_N, conversion_results, numeric_results
from flagstaff.stats.inputs import ConversionCounts, NumericMoments
from flagstaff.stats.results import (
    ExperimentResults,
    Interval,
    SRMResult,
    TreatmentResult,
    VariantShare,
    VariantSummary,
)
from flagstaff.stats.srm import SHARE_TOLERANCE, SRM_THRESHOLD, srm_check

__all__ = [
    "DEFAULT_TUNING_N",
    "SHARE_TOLERANCE",
    "SRM_THRESHOLD",
    "ConversionCounts",
    "ExperimentResults",
    "Interval",
    "NumericMoments",
    "SRMResult",
    "TreatmentResult",
    "VariantShare",
    "VariantSummary",
    "conversion_results",
    "numeric_results",
    "srm_check",
]
