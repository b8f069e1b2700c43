"""Semantic versions: npm ranges (~0.x, ^0.0.x, pre-releases), lenient versions, strict SemVer."""

from __future__ import annotations

from typing import Any

import pytest

from flagstaff.engine import DefinitionError, Reason, compile_snapshot, validate_flag
from flagstaff.engine.versions import compile_range, in_range, parse_version
from tests.builders import cond, flag, snapshot


def matches(condition: dict[str, Any], value: Any) -> bool:
    f = flag("f").env("production", lambda e: e.on().rule("r", condition, serve="true").fallthrough("false"))
    detail = compile_snapshot(snapshot([f])).evaluate("f", {"key": "u", "v": value}, None)
    assert detail.reason in (Reason.RULE_MATCH, Reason.FALLTHROUGH), detail
    return detail.reason is Reason.RULE_MATCH


def lenient(condition: dict[str, Any]) -> dict[str, Any]:
    return {**condition, "lenient": True}


# (range, version, satisfies) as npm's semver package answers them.
RANGES = [
    ("^1.2.3", "1.2.3", True),
    ("^1.2.3", "1.9.9", True),
    ("^1.2.3", "2.0.0", False),
    ("^1.2.3", "1.2.2", False),
    ("^0.2.3", "0.2.9", True),
    ("^0.2.3", "0.3.0", False),  # a 0.x caret does not cross the minor
    ("^0.0.3", "0.0.3", True),
    ("^0.0.3", "0.0.4", False),  # ... nor a 0.0.x caret the patch
    ("^0", "0.9.9", True),
    ("^0", "1.0.0", False),
    ("~1.2.3", "1.2.9", True),
    ("~1.2.3", "1.3.0", False),
    ("~1.2", "1.2.0", True),
    ("~1.2", "1.2.99", True),
    ("~1.2", "1.3.0", False),
    ("~1", "1.99.0", True),
    ("~1", "2.0.0", False),
    ("~0.2", "0.2.5", True),  # ~0.x: the minor is fixed
    ("~0.2", "0.3.0", False),
    ("~0", "0.9.0", True),
    ("~0", "1.0.0", False),
    (">=1.2.0 <2.0.0", "1.5.0", True),
    (">=1.2.0 <2.0.0", "2.0.0", False),
    ("<=1.2", "1.2.9", True),  # a partial upper bound covers its whole minor
    ("<=1.2", "1.3.0", False),
    (">1.2", "1.3.0", True),
    (">1.2", "1.2.9", False),
    ("1.2.x", "1.2.7", True),
    ("1.2.x", "1.3.0", False),
    ("1.2.3 - 2.3.4", "2.3.4", True),
    ("1.2.3 - 2.3.4", "2.3.5", False),
    ("1.2 - 2.3", "2.3.9", True),
    ("1.x || >=2.5.0", "2.6.0", True),
    ("1.x || >=2.5.0", "2.4.0", False),
    ("*", "3.1.4", True),
    ("=1.2.3", "1.2.3+build.7", True),  # build metadata is ignored
    # Pre-releases satisfy a range only through a comparator on the same major.minor.patch.
    ("^1.2.3", "1.2.4-beta", False),
    ("^1.2.3-beta.2", "1.2.3-beta.4", True),
    ("^1.2.3-beta.2", "1.2.3-beta.1", False),
    ("^1.2.3-beta.2", "1.2.4-beta.2", False),
    ("~1.2.3-beta.2", "1.2.3-beta.4", True),
    (">1.2.3-alpha.3", "1.2.3-alpha.7", True),
    (">1.2.3-alpha.3", "3.4.5-alpha.9", False),
    (">1.2.3-alpha.3", "3.4.5", True),
    ("<2.0.0", "2.0.0-rc.1", False),
    ("<2.0.0", "1.9.9", True),
    ("*", "1.0.0-rc.1", False),
    (">=1.0.0-alpha <1.0.0", "1.0.0-alpha.1", True),  # numeric < alphanumeric identifiers
]


@pytest.mark.parametrize(("range_", "version", "expected"), RANGES)
def test_npm_ranges(range_: str, version: str, expected: bool) -> None:
    assert matches(cond("v", "semver_range", range_), version) is expected


def test_several_ranges_are_ored_and_negate_inverts() -> None:
    condition = cond("v", "semver_range", "~1.2", "^3.0.0")
    assert matches(condition, "3.4.0") and matches(condition, "1.2.5")
    assert not matches(condition, "2.0.0")
    assert matches(cond("v", "semver_range", "~1.2", negate=True), "2.0.0")
    assert not matches(cond("v", "semver_range", "~1.2", negate=True), None)  # missing never matches


@pytest.mark.parametrize(
    ("text", "as_strict", "as_lenient"),
    [
        ("2.0.1", "2.0.1", "2.0.1"),
        ("2.0", None, "2.0.0"),  # LaunchDarkly adds missing components as zeros
        ("2", None, "2.0.0"),
        ("2.0-rc1", None, "2.0.0-rc1"),
        ("2-beta", None, "2.0.0-beta"),
        ("v2.0.0", None, "2.0.0"),  # ... and we also drop a leading v, as npm does
        ("V2", None, "2.0.0"),
        ("2.0.0+build", "2.0.0", "2.0.0"),
        ("xbad%ver", None, None),
        ("2.0.0.0", None, None),
        ("02.0.0", None, None),
        ("", None, None),
        ("v", None, None),
        ("\uff12.0.0", None, None),  # ASCII digits only
    ],
)
def test_strict_and_lenient_parsing(text: str, as_strict: str | None, as_lenient: str | None) -> None:
    def key(v: str | None) -> Any:
        return None if v is None else parse_version(v)

    assert parse_version(text) == key(as_strict)
    assert parse_version(text, lenient=True) == key(as_lenient)


def test_lenient_applies_to_attribute_and_operands_strict_stays_the_default() -> None:
    assert not matches(cond("v", "semver_gt", "1.0.0"), "2.0")  # strict: "2.0" is not a version
    assert matches(lenient(cond("v", "semver_gt", "1.0.0")), "2.0")
    assert matches(lenient(cond("v", "semver_eq", "2")), "v2.0.0")
    assert matches(lenient(cond("v", "semver_lt", "2.0.1")), "2.0")
    assert matches(lenient(cond("v", "semver_range", "^2.0.0")), "v2.1")
    assert not matches(cond("v", "semver_range", "^2.0.0"), "v2.1")
    assert not matches(lenient(cond("v", "semver_gt", "1.0.0")), 2)  # numbers are not versions


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        (cond("v", "semver_range", "garbage"), "invalid range"),
        (cond("v", "semver_range", ""), "npm-style range"),
        (cond("v", "semver_range", "   "), "npm-style range"),
        (cond("v", "semver_range", 5), "npm-style range"),
        (cond("v", "semver_range", "^\uff11.2"), "ASCII"),
        (cond("v", "semver_gt", "2.0"), "lenient"),
        (lenient(cond("v", "semver_gt", "two")), "SemVer"),
        (lenient(cond("v", "equals", "x")), "does not apply to equals"),
        ({**cond("v", "semver_gt", "1.0.0"), "lenient": "yes"}, "boolean"),
    ],
)
def test_invalid_operands_are_refused_on_write(condition: dict[str, Any], fragment: str) -> None:
    definition = flag("f").env("production", lambda e: e.rule("r", condition, serve="true")).build()
    with pytest.raises(DefinitionError) as info:
        validate_flag(definition)
    assert info.value.path.startswith("environments.production.rules[0].conditions[0].")
    assert fragment in info.value.message


def test_options_are_kept_only_when_set() -> None:
    definition = flag("f").env("production", lambda e: e.rule(
        "r", lenient(cond("v", "semver_range", "^1")), {**cond("v", "semver_gt", "1.0.0"), "lenient": False},
        serve="true")).build()
    conditions = validate_flag(definition)["environments"]["production"]["rules"][0]["conditions"]
    assert conditions[0]["lenient"] is True
    assert "lenient" not in conditions[1]


def test_range_compiles_once_to_tuples() -> None:
    alternatives = compile_range("^1.2.3 || ~0.4")
    assert len(alternatives) == 2
    assert in_range(parse_version("0.4.7") or (), alternatives)
