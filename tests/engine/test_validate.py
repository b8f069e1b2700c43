"""Validation: normalisation and the exact dotted path of each shape error."""

from __future__ import annotations

from typing import Any

import pytest

from flagstaff.engine import DefinitionError, validate_flag, validate_segment
from tests.builders import cond, flag, rollout, segment


def _env(**config: Any) -> dict[str, Any]:
    return flag("f").boolean().set("environments", {"production": config}).build()


def _error(definition: Any) -> DefinitionError:
    with pytest.raises(DefinitionError) as info:
        validate_flag(definition)
    return info.value


def test_normalises_boolean_variants_value_and_rule_ids() -> None:
    raw: dict[str, Any] = {
        "key": "f", "type": "boolean",
        "environments": {"production": {"enabled": True, "rules": [
            {"conditions": [{"attribute": "plan", "operator": "equals", "value": "pro"}],
             "serve": {"variant": "true"}},
            {"id": "rule-1", "conditions": [{"attribute": "t", "operator": "in", "value": ["a", "b"]}],
             "serve": {"variant": "true"}},
        ]}},
    }
    out = validate_flag(raw)
    assert out["variants"] == {"true": True, "false": False}
    assert out["off_variant"] == "false"
    assert out["name"] == "f" and out["kind"] == "release" and out["tags"] == []
    rules = out["environments"]["production"]["rules"]
    assert [r["id"] for r in rules] == ["rule-2", "rule-1"]  # generated id skips the explicit one
    assert rules[0]["conditions"][0] == {"attribute": "plan", "operator": "equals",
                                         "values": ["pro"], "negate": False}
    assert rules[1]["conditions"][0]["values"] == ["a", "b"]
    env = out["environments"]["production"]
    assert env["prerequisites"] == [] and env["targets"] == [] and env["fallthrough"] is None
    assert raw["environments"]["production"]["rules"][0].get("id") is None  # input untouched


@pytest.mark.parametrize(
    ("definition", "path"),
    [
        ({"key": "Bad Key", "type": "boolean"}, "key"),
        ({"key": "f", "type": "bool"}, "type"),
        ({"key": "f", "type": "boolean", "kind": "x"}, "kind"),
        ({"key": "f", "type": "boolean", "surprise": 1}, "surprise"),
        ({"key": "f", "type": "string", "variants": {"a": 1}, "off_variant": "a"}, "variants.a"),
        ({"key": "f", "type": "number", "variants": {"a": True}, "off_variant": "a"}, "variants.a"),
        ({"key": "f", "type": "number", "variants": {"a": float("nan")}, "off_variant": "a"}, "variants.a"),
        ({"key": "f", "type": "json", "variants": {"a": {"x": object()}}, "off_variant": "a"}, "variants.a.x"),
        ({"key": "f", "type": "boolean", "variants": {"true": 1, "false": 0}}, "variants"),
        ({"key": "f", "type": "string", "variants": {"a": "x"}, "off_variant": "b"}, "off_variant"),
        ({"key": "f", "type": "string", "variants": {}, "off_variant": "b"}, "variants"),
        ({"key": "f", "type": "boolean", "tags": ["ok", "-bad"]}, "tags[1]"),
        ({"key": "f", "type": "boolean", "name": ""}, "name"),
        ({"key": "f", "type": "boolean", "environments": {"Prod!": {}}}, "environments.Prod!"),
        ({"key": "f", "type": "boolean", "client_side": "yes"}, "client_side"),
    ],
)
def test_top_level_errors_name_the_field(definition: dict[str, Any], path: str) -> None:
    assert _error(definition).path == path


def test_client_side_defaults_off_and_reaches_the_resolved_flag() -> None:
    from flagstaff.engine import resolve_flag

    assert validate_flag({"key": "f", "type": "boolean"})["client_side"] is False
    shared = validate_flag({"key": "f", "type": "boolean", "client_side": True})
    assert shared["client_side"] is True
    assert resolve_flag(shared, "production")["client_side"] is True
    assert resolve_flag({"key": "old", "type": "boolean"}, "production")["client_side"] is False


def test_rule_condition_errors_have_exact_paths() -> None:
    base = flag("f").env("production", lambda e: e.on()
                         .rule("a", cond("country", "in", "DE"), serve="true")
                         .rule("b", cond("age", "gt", 3), cond("plan", "bogus", "x"), serve="true"))
    err = _error(base.build())
    assert err.path == "environments.production.rules[1].conditions[1].operator"
    assert "bogus" in err.message


@pytest.mark.parametrize(
    ("condition", "suffix", "fragment"),
    [
        (cond("email", "regex", "(unclosed"), "values[0]", "regular expression"),
        (cond("email", "regex", "a" * 1001), "values[0]", "1000"),
        (cond("version", "semver_gt", "1.2"), "values[0]", "SemVer"),
        (cond("version", "semver_eq", "v1.2.3"), "values[0]", "SemVer"),
        (cond("at", "before", "yesterday"), "values[0]", "RFC 3339"),
            (cond("at", "before", "2017-12-06X00:00:00.000-07:00"), "values[0]", "RFC 3339"),
        (cond("age", "gt", "37"), "values[0]", "number"),
        (cond("age", "gt", True), "values[0]", "number"),
        (cond("name", "contains", 3), "values[0]", "string"),
        (cond("name", "equals", [1]), "values[0]", "strings, numbers or booleans"),
        (cond("name", "equals", "x" * 1025), "values[0]", "1024"),
        (cond("name", "contains"), "values", "at least one"),
        (cond("name", "exists", "x"), "values", "no values"),
        (cond("n" * 257, "equals", "x"), "attribute", "256"),
        (cond("a..b", "equals", "x"), "attribute", "empty"),
        (cond(None, "equals", "x"), "attribute", "required"),
        (cond(None, "segment_match", "Not A Key"), "values[0]", "segment key"),
        ({"attribute": "a", "operator": "in", "values": "x"}, "values", "list"),
        ({"attribute": "a", "operator": "in", "values": ["x"], "negate": "yes"}, "negate", "boolean"),
        ({"attribute": "a", "operator": "in", "values": ["x"], "value": "x"}, "value", "either"),
    ],
)
def test_condition_operand_errors(condition: dict[str, Any], suffix: str, fragment: str) -> None:
    definition = flag("f").env("production", lambda e: e.rule("r", condition, serve="true")).build()
    err = _error(definition)
    assert err.path == f"environments.production.rules[0].conditions[0].{suffix}"
    assert fragment in err.message


def test_value_list_limit() -> None:
    too_many = cond("k", "in", *[str(i) for i in range(10_001)])
    err = _error(flag("f").env("production", lambda e: e.rule("r", too_many, serve="true")).build())
    assert err.path == "environments.production.rules[0].conditions[0].values"
    ok = cond("k", "in", *[str(i) for i in range(10_000)])
    validate_flag(flag("f").env("production", lambda e: e.rule("r", ok, serve="true")).build())


def test_rule_limit_and_duplicate_ids() -> None:
    def many(n: int) -> Any:
        def configure(e: Any) -> Any:
            for i in range(n):
                e.rule(f"r{i}", cond("a", "equals", "x"), serve="true")
            return e
        return flag("f").env("production", configure).build()

    validate_flag(many(1000))
    assert _error(many(1001)).path == "environments.production.rules"
    dup = flag("f").env("production", lambda e: e.rule("x", serve="true").rule("x", serve="false"))
    assert _error(dup.build()).path == "environments.production.rules[1].id"
    long_id = flag("f").env("production", lambda e: e.rule("x" * 129, serve="true"))
    assert _error(long_id.build()).path == "environments.production.rules[0].id"


@pytest.mark.parametrize(
    ("serve", "suffix"),
    [
        (rollout(true=50, false=49.999), "rollout.variations"),
        (rollout(true=50.0001, false=49.9999), "rollout.variations[0].weight"),
        (rollout(true=101, false=-1), "rollout.variations[0].weight"),
        ({"rollout": {"variations": [{"variant": "true", "weight": 50},
                                     {"variant": "true", "weight": 50}]}}, "rollout.variations[1].variant"),
        ({"rollout": {"variations": []}}, "rollout.variations"),
        ({"rollout": {"variations": [{"variant": "maybe", "weight": 100}]}}, "rollout.variations[0].variant"),
        ({"variant": "true", "rollout": {}}, ""),
        ({"variant": "nope"}, "variant"),
    ],
)
def test_serve_errors(serve: dict[str, Any], suffix: str) -> None:
    definition = _env(enabled=True, fallthrough=serve)
    err = _error(definition)
    assert err.path == "environments.production.fallthrough" + (f".{suffix}" if suffix else "")


def test_weights_with_three_decimals_are_accepted() -> None:
    out = validate_flag(_env(fallthrough=rollout(true=33.333, false=66.667)))
    assert out["environments"]["production"]["fallthrough"]["rollout"]["variations"][0]["weight"] == 33.333


def test_targets_and_prerequisites() -> None:
    assert _error(_env(targets=[{"variant": "true", "values": ["a"]},
                                {"variant": "true", "values": ["b"]}])).path == \
        "environments.production.targets[1].variant"
    assert _error(_env(targets=[{"variant": "true", "values": [1]}])).path == \
        "environments.production.targets[0].values[0]"
    assert _error(_env(prerequisites=[{"flag": "Other", "variant": "true"}])).path == \
        "environments.production.prerequisites[0].flag"
    assert _error(_env(enabled="yes")).path == "environments.production.enabled"


def test_segment_validation() -> None:
    seg = validate_segment(segment("beta").include("u1").rule(cond("email", "ends_with", "@a.com")).build())
    assert seg["rules"][0]["id"] == "rule-1"
    assert seg["excluded"] == []
    with pytest.raises(DefinitionError) as info:
        validate_segment(segment("beta").rule(cond("email", "nope", "x")).build())
    assert info.value.path == "rules[0].conditions[0].operator"
    with pytest.raises(DefinitionError) as info:
        validate_segment(segment("beta").rule(cond("email", "equals", "x")).build() | {"serve": 1})
    assert info.value.path == "serve"
    with pytest.raises(DefinitionError) as info:
        validate_segment({"key": "s", "included": [3]})
    assert info.value.path == "included[0]"


def test_not_a_mapping() -> None:
    assert _error([1, 2]).path == ""
    assert _error({"key": "f", "type": "boolean", "environments": {"p": {"rules": "x"}}}).path == \
        "environments.p.rules"


def _canonical_rule(rule_id: str, *conditions: dict[str, Any], serve: str = "true") -> dict[str, Any]:
    return {"id": rule_id, "conditions": list(conditions), "serve": {"variant": serve}}


_C = cond("country", "in", "DE")


@pytest.mark.parametrize(
    "rules",
    [
        [_canonical_rule("a", _C), _canonical_rule("b", _C, cond("plan", "equals", "pro"))],
        [_canonical_rule("a"), _canonical_rule("b", _C, serve="false")],
        [_canonical_rule("a", _C), _canonical_rule("a", _C)],
        [_canonical_rule("a", _C), {**_canonical_rule("b", _C), "description": "d"}],
        [_canonical_rule("a", _C), {**_canonical_rule("b", _C), "extra": 1}],
        [_canonical_rule("a", _C), {"conditions": [_C], "serve": {"variant": "true"}}],
        [_canonical_rule("a", _C), _canonical_rule("b", _C, serve="maybe")],
        [_canonical_rule("a", _C), {**_canonical_rule("b", _C), "serve": rollout(true=50, false=50)}],
        [_canonical_rule("a", {"attribute": "country", "operator": "in", "value": "DE"})],
        [_canonical_rule("a", cond("country", "in", "DE"), cond("a..b", "in", "x"))],
        [_canonical_rule("a", cond(".a", "in", "x"))],
        [_canonical_rule("a", cond("age", "in", 7))],
        [_canonical_rule("a", cond("country", "in"))],
        [_canonical_rule("a", {**_C, "negate": 0})],
        [_canonical_rule("x" * 129, _C)],
        [_canonical_rule(f"r{i}", _C) for i in range(1001)],
        (_canonical_rule("a", _C),),
        [_canonical_rule("a", _C), "not a rule"],
    ],
)
def test_snapshot_load_validates_rules_as_validate_flag_does(rules: Any) -> None:
    # Loading a snapshot checks canonical rules in one pass and shares them.
    from flagstaff.engine.validate import validate_resolved

    env = {"enabled": True, "rules": rules}
    definition = flag("f").boolean().set("environments", {"production": env}).build()
    try:
        expected: Any = validate_flag(definition)["environments"]["production"]
    except DefinitionError as exc:
        expected = (exc.path, exc.message)
    header = {k: v for k, v in definition.items() if k != "environments"}
    try:
        resolved = validate_resolved(header, env, "production")
        got: Any = {k: resolved[k] for k in expected}
    except DefinitionError as exc:
        got = (exc.path, exc.message)
    assert got == expected


@pytest.mark.parametrize(
    ("flag_fields", "environment", "path"),
    [
        ({"key": "f", "type": "boolean"}, "production", None),
        ({"key": "f", "type": "boolean", "state": "gone"}, "production", "state"),
        ({"key": "f", "type": "boolean", "version": 0}, "production", "version"),
        ({"key": "f", "type": "maybe"}, "production", "type"),
        ({"key": "f", "type": "boolean"}, "Prod!", "environments.Prod!"),
        ({"key": "f", "type": "boolean", "environments": {}}, "production", None),
        ({"key": "f", "type": "boolean", "extra": 1}, "production", "extra"),
    ],
)
def test_validate_resolved_is_validate_flag_flattened(
    flag_fields: dict[str, Any], environment: str, path: str | None
) -> None:
    from flagstaff.engine.validate import validate_resolved

    env = {"enabled": True, "rules": [{"conditions": [cond("a", "equals", "x")], "serve": {"variant": "true"}}],
           "fallthrough": rollout(true=50, false=50)}
    definition = {**flag_fields, "environments": {environment: env}}
    if path is not None:
        assert _error(definition).path == path
        with pytest.raises(DefinitionError) as info:
            validate_resolved(flag_fields, env, environment)
        assert info.value.path == path
        return
    canonical = validate_flag(definition)
    flat = {k: v for k, v in canonical.items() if k != "environments"}
    flat.update(canonical["environments"][environment])
    assert validate_resolved({k: v for k, v in flag_fields.items() if k != "environments"},
                             env, environment) == flat
