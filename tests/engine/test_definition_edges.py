"""Edges where validation, resolution and evaluation must agree with each other and the docs."""

from __future__ import annotations

from typing import Any

import pytest

from flagstaff.engine import DefinitionError, Reason, compile_snapshot, resolve_flag, validate_flag
from tests.builders import cond, flag, segment, snapshot


def test_null_off_variant_means_the_default_on_a_boolean_flag() -> None:
    assert validate_flag({"key": "b", "type": "boolean", "off_variant": None})["off_variant"] == "false"
    with pytest.raises(DefinitionError) as info:
        validate_flag({"key": "s", "type": "string", "variants": {"a": "a"}, "off_variant": None})
    assert (info.value.path, info.value.message) == ("off_variant", "is required for a non-boolean flag")


UNNORMALISED: list[dict[str, Any]] = [
    {"key": "plain", "type": "boolean",
     "environments": {"production": {"enabled": True, "fallthrough": {"variant": "true"}}}},
    {"key": "null-off", "type": "boolean", "off_variant": None,
     "environments": {"production": {"enabled": True, "rules": [
         {"conditions": [{"attribute": "plan", "operator": "equals", "value": "pro"}],
          "serve": {"variant": "true"}}]}}},
    {"key": "off-env", "type": "boolean", "environments": {"production": {}}},
]


@pytest.mark.parametrize("definition", UNNORMALISED, ids=lambda d: d["key"])
def test_resolve_flag_accepts_what_validate_flag_accepts(definition: dict[str, Any]) -> None:
    normalised = validate_flag(definition)
    raw = compile_snapshot({"environment": "production", "flags": {
        definition["key"]: resolve_flag(definition, "production")}})
    clean = compile_snapshot({"environment": "production", "flags": {
        definition["key"]: resolve_flag(normalised, "production")}})
    for context in ({"key": "u", "plan": "pro"}, {"key": "v", "plan": "free"}, {}):
        got, want = raw.evaluate(definition["key"], context), clean.evaluate(definition["key"], context)
        assert got.error_code is None, got
        assert (got.value, got.variant, got.reason) == (want.value, want.variant, want.reason)


def test_segment_match_ignores_its_attribute_even_empty() -> None:
    for attribute in ("", "anything.at.all"):
        definition = flag("f").env("production", lambda e, a=attribute: e.on().rule(
            "r", {"attribute": a, "operator": "segment_match", "values": ["beta"]}, serve="true")).build()
        condition = validate_flag(definition)["environments"]["production"]["rules"][0]["conditions"][0]
        assert condition == {"operator": "segment_match", "values": ["beta"], "negate": False}
    with pytest.raises(DefinitionError):
        validate_flag(flag("f").env("production", lambda e: e.rule(
            "r", {"attribute": 5, "operator": "segment_match", "values": ["beta"]}, serve="true")).build())
    snap = compile_snapshot(snapshot(
        [flag("f").env("production", lambda e: e.on().rule(
            "r", {"attribute": "", "operator": "segment_match", "values": ["beta"]}, serve="true"))],
        [segment("beta").include("u1")],
    ))
    assert snap.evaluate("f", {"key": "u1"}).value is True


def test_empty_in_lists_are_accepted_and_match_as_documented() -> None:
    def answer(condition: dict[str, Any], context: dict[str, Any]) -> bool:
        f = flag("f").env("production", lambda e: e.on().rule("r", condition, serve="true").fallthrough("false"))
        detail = compile_snapshot(snapshot([f])).evaluate("f", {"key": "u", **context})
        assert detail.reason in (Reason.RULE_MATCH, Reason.FALLTHROUGH), detail
        return bool(detail.value)

    assert validate_flag(flag("f").env("production", lambda e: e.rule("r", cond("a", "in"), serve="true"))
                         .build())["environments"]["production"]["rules"][0]["conditions"][0]["values"] == []
    assert not answer(cond("a", "in"), {"a": "x"})  # in [] matches no one
    assert answer(cond("a", "not_in"), {"a": "x"})  # not_in [] matches every present value
    assert answer(cond("a", "not_in"), {"a": 5})
    assert not answer(cond("a", "not_in"), {})  # ... but never a missing attribute
    assert answer(cond("a", "in", negate=True), {"a": "x"})
    assert not answer(cond("a", "in", negate=True), {})
    assert not answer(cond("a", "not_in", negate=True), {"a": "x"})
    # An empty list inside a run of indexed `in` rules matches no one either.
    f = flag("f").env("production", lambda e: e.on().rule("a", cond("c", "in"), serve="false")
                      .rule("b", cond("c", "in", "x"), serve="true").fallthrough("false"))
    assert compile_snapshot(snapshot([f])).evaluate("f", {"key": "u", "c": "x"}).rule_id == "b"


def test_other_operators_still_need_a_value() -> None:
    for operator in ("equals", "contains", "segment_match", "in_cidr", "semver_range"):
        with pytest.raises(DefinitionError) as info:
            validate_flag(flag("f").env("production", lambda e, o=operator: e.rule(
                "r", cond(None if o == "segment_match" else "a", o), serve="true")).build())
        assert "at least one value" in info.value.message
