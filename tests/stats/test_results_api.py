"""The results API: validation, degenerate data, JSON shape and the layering rule."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from flagstaff.errors import Invalid
from flagstaff.stats import (
    ConversionCounts,
    NumericMoments,
    conversion_results,
    numeric_results,
)


def test_to_dict_is_plain_json_with_the_documented_fields() -> None:
    results = conversion_results(
        ConversionCounts("control", 1_000, 100), [ConversionCounts("b", 1_000, 130)]
    )
    data = json.loads(json.dumps(results.to_dict(), allow_nan=False))
    assert data["metric_type"] == "conversion" and data["method"] == "fixed"
    assert data["confidence_level"] == pytest.approx(0.95)
    assert [v["variant"] for v in data["variants"]] == ["control", "b"]
    assert data["variants"][1] == {
        "variant": "b",
        "users": 1_000,
        "value": 0.13,
        "conversions": 130,
        "std_dev": None,
    }
    comparison = data["comparisons"][0]
    assert set(comparison) == {
        "variant",
        "absolute_lift",
        "absolute_ci",
        "relative_lift",
        "relative_ci",
        "p_value",
        "adjusted_p_value",
        "significant",
        "statistic",
        "df",
    }
    assert set(comparison["absolute_ci"]) == {"lower", "upper"}
    assert comparison["absolute_ci"]["lower"] < 0.03 < comparison["absolute_ci"]["upper"]


def test_empty_arms_give_no_inference_instead_of_errors() -> None:
    results = conversion_results(ConversionCounts("control", 0, 0), [ConversionCounts("b", 50, 5)])
    b = results.comparison("b")
    assert (b.absolute_lift, b.absolute_ci, b.p_value, b.relative_ci) == (None, None, None, None)
    assert not b.significant
    assert results.variants[0].value is None
    json.dumps(results.to_dict(), allow_nan=False)


def test_no_conversions_anywhere_is_no_evidence() -> None:
    b = conversion_results(
        ConversionCounts("control", 500, 0), [ConversionCounts("b", 500, 0)]
    ).comparison("b")
    assert b.p_value == 1.0 and b.absolute_lift == 0.0
    assert b.relative_lift is None and b.relative_ci is None  # a 0 % control has no relative lift


def test_a_treatment_without_conversions_has_a_relative_lift_but_no_log_interval() -> None:
    b = conversion_results(
        ConversionCounts("control", 500, 20), [ConversionCounts("b", 500, 0)]
    ).comparison("b")
    assert b.relative_lift == -1.0 and b.relative_ci is None
    assert b.p_value is not None and b.p_value < 0.001


def test_numeric_needs_two_users_per_arm() -> None:
    results = numeric_results(
        NumericMoments("control", 1, 5.0, 25.0), [NumericMoments("b", 10, 60.0, 400.0)]
    )
    assert results.comparison("b").p_value is None
    assert results.variants[0].std_dev is None and results.variants[1].std_dev is not None


def test_constant_numeric_values_do_not_warn() -> None:
    same = numeric_results(
        NumericMoments("control", 10, 30.0, 90.0), [NumericMoments("b", 10, 30.0, 90.0)]
    ).comparison("b")
    assert same.p_value == 1.0 and same.absolute_ci is not None and same.absolute_ci.lower == 0.0


def test_sufficient_statistics_reproduce_mean_and_sample_variance() -> None:
    values = np.random.default_rng(0).gamma(2.0, 15.0, size=777)
    moments = NumericMoments("x", 777, float(values.sum()), float((values**2).sum()))
    assert moments.mean == pytest.approx(values.mean(), rel=1e-12)
    assert moments.variance == pytest.approx(values.var(ddof=1), rel=1e-9)
    assert moments.mean is not None and moments.variance is not None
    rebuilt = NumericMoments.from_mean_variance(
        "x", users=777, mean=moments.mean, variance=moments.variance
    )
    assert rebuilt.variance == pytest.approx(moments.variance, rel=1e-9)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ConversionCounts("b", 10, 11), "b.conversions"),
        (lambda: ConversionCounts("b", -1, 0), "b.users"),
        (lambda: ConversionCounts("b", True, 0), "b.users"),
        (lambda: NumericMoments("b", 3, 1.0, -1.0), "b.sum_squares"),
        (lambda: NumericMoments("b", 2, 10.0, 1.0), "b.sum_squares"),  # 10^2 > 2 * 1
        (lambda: NumericMoments("b", 2, math.inf, 1.0), "b.total"),
        (
            lambda: NumericMoments.from_mean_variance("b", users=5, mean=1.0, variance=-2.0),
            "b.variance",
        ),
    ],
)
def test_inconsistent_aggregates_are_refused(build: object, field: str) -> None:
    with pytest.raises(Invalid) as caught:
        build()  # type: ignore[operator]
    assert caught.value.details["field"] == field


@pytest.mark.parametrize(
    ("kwargs", "treatments", "field"),
    [
        ({"alpha": 0.0}, ["b"], "alpha"),
        ({"alpha": 1.5}, ["b"], "alpha"),
        ({"tuning_n": 0}, ["b"], "tuning_n"),
        ({"correction": "bonferroni"}, ["b"], "correction"),
        ({}, [], "treatments"),
        ({}, ["control"], "treatments"),
        ({}, ["b", "b"], "treatments"),
    ],
)
def test_bad_options_are_refused_naming_the_field(
    kwargs: dict[str, object], treatments: list[str], field: str
) -> None:
    with pytest.raises(Invalid) as caught:
        conversion_results(
            ConversionCounts("control", 100, 10),
            [ConversionCounts(name, 100, 12) for name in treatments],
            **kwargs,  # type: ignore[arg-type]
        )
    assert caught.value.details["field"] == field


def test_the_base_install_does_not_import_the_statistics() -> None:
    # SciPy belongs to the server extra: importing flagstaff must not pull it in.
    code = "import sys, flagstaff; print('scipy' in sys.modules, 'flagstaff.stats' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"]
