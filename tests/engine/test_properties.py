"""Property tests: evaluation never raises; validation raises only DefinitionError."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagstaff.engine import DefinitionError, EvaluationDetail, compile_snapshot, validate_flag
from flagstaff.engine.conditions import OPERATORS

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
attributes = st.sampled_from(["key", "country", "age", "tenant.id", "tags", "version", "at", "x.y.z"])
operand = st.sampled_from([
    "DE", "user-1", "2.3.1", "2024-01-01T00:00:00Z", "^u", 5, 37.5, True, "beta", "10.0.0.0/8",
    "::ffff:10.0.0.1", "^1.2", "~0.2 || >=3", "v2", "2024-01-01T00:00:00Z/2025-01-01T00:00:00Z",
    "2024-03-31T02:30:00",
])

conditions = st.fixed_dictionaries(
    {"attribute": attributes, "operator": st.sampled_from(sorted(OPERATORS)),
     "values": st.lists(operand | json_values, max_size=3), "negate": st.booleans()},
    optional={"ignore_case": st.booleans() | json_scalars, "lenient": st.booleans(),
              "timezone": st.sampled_from(["Europe/Berlin", "UTC", "Nowhere/Else"])},
)
serves = st.one_of(
    st.fixed_dictionaries({"variant": st.sampled_from(["true", "false", "maybe"])}),
    st.fixed_dictionaries({"rollout": st.fixed_dictionaries({"variations": st.lists(
        st.fixed_dictionaries({"variant": st.sampled_from(["true", "false"]),
                               "weight": st.sampled_from([0, 50, 100, 33.333, -1])}), max_size=3),
        "bucket_by": attributes})}),
)
environments = st.fixed_dictionaries({
    "enabled": st.booleans() | json_scalars,
    "prerequisites": st.lists(st.fixed_dictionaries({"flag": st.sampled_from(["f0", "f1", "f2"]),
                                                      "variant": st.sampled_from(["true", "x"])}), max_size=2),
    "targets": st.lists(st.fixed_dictionaries({"variant": st.sampled_from(["true", "false"]),
                                               "values": st.lists(st.text(max_size=6), max_size=3)}), max_size=2),
    "rules": st.lists(st.fixed_dictionaries({"conditions": st.lists(conditions, max_size=3),
                                             "serve": serves}), max_size=3),
    "fallthrough": st.none() | serves,
})
flags = st.fixed_dictionaries({
    "key": st.sampled_from(["f0", "f1", "f2"]), "type": st.sampled_from(["boolean", "string", "bool"]),
    "environments": st.fixed_dictionaries({"production": environments}),
})
contexts = st.dictionaries(
    st.sampled_from(["key", "targeting_key", "country", "age", "tenant", "tags", "version", "at"]),
    json_values | operand, max_size=6,
)


def _resolved(definition: dict[str, Any]) -> dict[str, Any]:
    env = definition["environments"]["production"]
    return {"key": definition["key"], "type": definition["type"], "variants":
            {"true": True, "false": False}, "off_variant": "false", **env}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(flags, max_size=3), contexts, st.sampled_from(["f0", "f1", "f2", "zz"]))
def test_evaluate_never_raises(defs: list[dict[str, Any]], context: dict[str, Any], key: str) -> None:
    snap = compile_snapshot({"environment": "production", "version": 1,
                             "flags": {d["key"]: _resolved(d) for d in defs}}, clock=lambda: 1.7e9)
    detail = snap.evaluate(key, context, "default")
    assert isinstance(detail, EvaluationDetail)
    assert detail.error_code is not None or detail.variant is not None
    snap.evaluate_all(context)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["key", "type", "variants", "off_variant", "environments",
                                        "tags", "salt", "name"]), json_values | flags, max_size=6)
       | flags | json_values)
def test_validate_flag_raises_only_definition_error(raw: Any) -> None:
    try:
        out = validate_flag(raw)
    except DefinitionError as exc:
        assert isinstance(exc.path, str) and exc.message
    else:
        assert validate_flag(out) == out  # normalising is idempotent
