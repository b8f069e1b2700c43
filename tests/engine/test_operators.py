"""Every operator, including wrong types, lists, nested paths, missing attributes and negate."""

from __future__ import annotations

from typing import Any

import pytest

from flagstaff.engine import Reason, compile_snapshot
from tests.builders import cond, flag, snapshot


def matches(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    f = flag("f").env("production", lambda e: e.on().rule("r", condition, serve="true").fallthrough("false"))
    detail = compile_snapshot(snapshot([f])).evaluate("f", context, None)
    assert detail.reason in (Reason.RULE_MATCH, Reason.FALLTHROUGH), detail
    return detail.reason is Reason.RULE_MATCH


CASES: list[tuple[dict[str, Any], Any, bool]] = [
    # (condition, attribute value for "a", expected)
    (cond("a", "equals", "x"), "x", True),
    (cond("a", "equals", "x"), "y", False),
    (cond("a", "equals", 1), 1.0, True),
    (cond("a", "equals", 1), True, False),
    (cond("a", "equals", True), 1, False),
    (cond("a", "equals", "1"), 1, False),
    (cond("a", "equals", True), True, True),
    (cond("a", "not_equals", "x"), "y", True),
    (cond("a", "not_equals", "x"), "x", False),
    (cond("a", "not_equals", "x"), 5, False),  # wrong type never matches
    (cond("a", "in", "x", "y"), "y", True),
    (cond("a", "in", "x", 2), 2, True),
    (cond("a", "in", "x", "y"), "z", False),
    (cond("a", "in", "x"), {"x": 1}, False),
    (cond("a", "not_in", "x", "y"), "z", True),
    (cond("a", "not_in", "x", "y"), "x", False),
    (cond("a", "not_in", "x"), 3, False),
    (cond("a", "contains", "ell"), "hello", True),
    (cond("a", "contains", "zz", "ll"), "hello", True),
    (cond("a", "contains", "zz"), "hello", False),
    (cond("a", "contains", "1"), 1, False),
    (cond("a", "not_contains", "zz"), "hello", True),
    (cond("a", "not_contains", "ell"), "hello", False),
    (cond("a", "not_contains", "zz"), 12, False),
    (cond("a", "starts_with", "he", "x"), "hello", True),
    (cond("a", "starts_with", "lo"), "hello", False),
    (cond("a", "ends_with", "lo"), "hello", True),
    (cond("a", "ends_with", "he"), "hello", False),
    (cond("a", "ends_with", "1"), 1, False),
    (cond("a", "regex", r"^user-\d+$"), "user-42", True),
    (cond("a", "regex", r"\d{3}"), "ab12c", False),
    (cond("a", "regex", r"\d"), 5, False),
    (cond("a", "regex", r"(a+)+$"), "a" * 5000 + "b", False),  # RE2: no catastrophic backtracking
    (cond("a", "gt", 10), 11, True),
    (cond("a", "gt", 10), 10, False),
    (cond("a", "gt", 10, 100), 50, True),  # values ORed
    (cond("a", "gte", 10), 10, True),
    (cond("a", "lt", 10), 9.5, True),
    (cond("a", "lt", 10), 10, False),
    (cond("a", "lte", 10), 10, True),
    (cond("a", "gt", 1), "5", False),  # no string coercion
    (cond("a", "gt", 0), True, False),
    (cond("a", "before", "2024-01-01T00:00:00Z"), "2023-12-31T23:59:59Z", True),
    (cond("a", "before", "2024-01-01T00:00:00Z"), "2024-01-01T00:00:00+00:00", False),
    (cond("a", "before", "2024-01-01"), 1704067199, True),  # epoch seconds; naive = UTC
    (cond("a", "after", 1704067200), "2024-01-01T00:00:01Z", True),
    (cond("a", "after", "2024-01-01T00:00:00+01:00"), "2023-12-31T23:30:00Z", True),
    (cond("a", "after", "2024-01-01T00:00:00Z"), "not a date", False),
    (cond("a", "after", "2024-01-01T00:00:00Z"), [1], False),
    (cond("a", "semver_eq", "2.3.1"), "2.3.1+build.5", True),
    (cond("a", "semver_eq", "2.3.1"), "2.3.10", False),
    (cond("a", "semver_gt", "2.3.0"), "2.3.1", True),
    (cond("a", "semver_gt", "2.3.1"), "2.3.1-rc.1", False),
    (cond("a", "semver_lt", "2.3.1"), "2.3.1-rc.1", True),
    (cond("a", "semver_lt", "1.0.0-alpha.beta"), "1.0.0-alpha.1", True),  # numeric < alphanumeric
    (cond("a", "semver_gt", "1.0.0-alpha.9"), "1.0.0-alpha.10", True),
    (cond("a", "semver_gt", "1.0.0"), "2.0", False),
    (cond("a", "semver_gt", "1.0.0"), 2, False),
    (cond("a", "exists"), "", True),
    (cond("a", "exists"), 0, True),
    (cond("a", "exists", negate=True), "x", False),
    (cond("a", "equals", "x", negate=True), "y", True),
    (cond("a", "equals", "x", negate=True), "x", False),
    (cond("a", "equals", "x", negate=True), 3, True),  # NOT (wrong type -> no match)
    # list-valued attributes: any element
    (cond("a", "in", "x"), ["q", "x"], True),
    (cond("a", "equals", "x"), ["q", "r"], False),
    (cond("a", "not_in", "x"), ["q", "r"], True),
    (cond("a", "not_in", "x"), ["q", "x"], False),
    (cond("a", "contains", "et"), ["alpha", "beta"], True),
    (cond("a", "gt", 10), [1, 20], True),
    (cond("a", "gt", 10), [], False),
    (cond("a", "not_in", "x"), [], False),
    (cond("a", "semver_gt", "1.0.0"), ["0.1.0", "1.2.0"], True),
]


@pytest.mark.parametrize(("condition", "value", "expected"), CASES)
def test_operator(condition: dict[str, Any], value: Any, expected: bool) -> None:
    assert matches(condition, {"key": "u", "a": value}) is expected


@pytest.mark.parametrize("operator", ["equals", "not_equals", "in", "not_in", "contains",
                                      "not_contains", "starts_with", "ends_with", "regex"])
def test_missing_or_null_attribute_never_matches_even_negated(operator: str) -> None:
    for negate in (False, True):
        c = cond("a", operator, "x", negate=negate)
        assert not matches(c, {"key": "u"})
        assert not matches(c, {"key": "u", "a": None})


def test_exists_negated_matches_absence() -> None:
    assert matches(cond("a", "exists", negate=True), {"key": "u"})
    assert not matches(cond("a", "exists"), {"key": "u", "a": None})


def test_nested_dotted_paths() -> None:
    ctx = {"key": "u", "tenant": {"settings": {"preferredProvider": "openai"}, "tags": ["x", "y"]}}
    assert matches(cond("tenant.settings.preferredProvider", "equals", "openai"), ctx)
    assert not matches(cond("tenant.settings.missing", "equals", "openai"), ctx)
    assert not matches(cond("tenant.settings.preferredProvider.deeper", "equals", "openai"), ctx)
    assert matches(cond("tenant.tags", "in", "y"), ctx)
    assert not matches(cond("tenant.tags.0", "equals", "x"), ctx)  # no list indexing


@pytest.mark.parametrize("tk_field", ["targeting_key", "targetingKey", "key"])
def test_key_attribute_means_targeting_key(tk_field: str) -> None:
    assert matches(cond("key", "in", "u1"), {tk_field: "u1"})
    assert matches(cond("targeting_key", "starts_with", "u"), {tk_field: "u1"})


def test_targeting_key_precedence() -> None:
    ctx = {"targeting_key": "a", "targetingKey": "b", "key": "c"}
    assert matches(cond("key", "equals", "a"), ctx)
    assert matches(cond("key", "equals", "b"), {"targetingKey": "b", "key": "c"})


def test_several_membership_rules_keep_their_order() -> None:
    # Consecutive "attr in [...]" rules are indexed; the first matching rule must still win.
    f = flag("f").string({"a": "A", "b": "B", "c": "C"}).env(
        "production",
        lambda e: e.on()
        .rule("r0", cond("country", "in", "DE", "FR"), serve="a")
        .rule("r1", cond("country", "in", "FR", "IT"), serve="b")
        .rule("r2", cond("country", "equals", "ES"), serve="c")
        .rule("r3", cond("plan", "equals", "pro"), serve="b")
        .fallthrough("c"),
    )
    snap = compile_snapshot(snapshot([f]))
    cases = {
        "FR": ("a", 0), "IT": ("b", 1), "ES": ("c", 2), "PT": ("b", 3),
    }
    for country, (variant, index) in cases.items():
        d = snap.evaluate("f", {"key": "u", "country": country, "plan": "pro"})
        assert (d.variant, d.rule_index, d.rule_id) == (variant, index, f"r{index}")
    d = snap.evaluate("f", {"key": "u", "country": ["IT", "ES", "DE"]})
    assert (d.variant, d.rule_id) == ("a", "r0")
    d = snap.evaluate("f", {"key": "u", "country": 7})
    assert d.reason is Reason.FALLTHROUGH
