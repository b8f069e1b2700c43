"""Property: a spec-shaped body, read back and re-sent canonically, evaluates identically for
10,000 contexts; without percentages it also answers as the spec's own evaluator (003 §2.2)."""

from __future__ import annotations

import itertools
import random
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagstaff.engine import compile_snapshot, resolve_flag
from tests.server.conftest import Tokens, auth

ENVIRONMENTS = ("development", "staging", "production")
POOLS: dict[str, list[Any]] = {"boolean": [True, False], "string": ["a", "b", "c"], "number": [1, 2.5, 10]}
WORDS = ["enterprise", "pro", "eu", "us", "e"]


def _contexts() -> list[dict[str, Any]]:
    rng = random.Random(16)
    return [{"tenant": {"type": rng.choice(WORDS), "id": f"t{rng.randrange(50)}"},
             "plan": rng.choice(WORDS), "region": rng.choice(WORDS), "seats": rng.randrange(0, 40),
             "user": {"id": f"user-{i}"}} for i in range(10_000)]


CONTEXTS = _contexts()

string_conditions = st.builds(
    lambda attribute, operator, value: {"attribute": attribute, "operator": operator,
                                        "value": [value] if operator in ("in", "not_in") else value},
    st.sampled_from(["tenant.type", "plan", "region"]),
    st.sampled_from(["equals", "not_equals", "in", "not_in", "contains", "not_contains"]),
    st.sampled_from(WORDS),
)
number_conditions = st.builds(
    lambda operator, value: {"attribute": "seats", "operator": operator, "value": value},
    st.sampled_from(["gt", "gte", "lt", "lte"]), st.integers(0, 40),
)


@st.composite
def spec_bodies(draw: st.DrawFn, *, percentages: bool) -> dict[str, Any]:
    flag_type = draw(st.sampled_from(sorted(POOLS)))
    value = st.sampled_from(POOLS[flag_type])
    camel = draw(st.booleans())
    percentage = st.integers(0, 100) if percentages else st.nothing()
    body: dict[str, Any] = {"type": flag_type, ("defaultValue" if camel else "default_value"): draw(value)}
    if draw(st.booleans()):
        body["enabled"] = draw(st.booleans())
    rules = []
    for _ in range(draw(st.integers(0, 3))):
        rule: dict[str, Any] = {"conditions": draw(st.lists(string_conditions | number_conditions, max_size=2)),
                                "value": draw(value)}
        if percentages and draw(st.booleans()):
            rule["percentage"] = draw(percentage)
        rules.append(rule)
    if rules:
        body["rules"] = rules
    if draw(st.booleans()):
        body["fallthrough"] = {"value": draw(value)}
        if percentages and draw(st.booleans()):
            body["fallthrough"]["percentage"] = draw(percentage)
    if draw(st.booleans()):
        body["killSwitch" if camel else "kill_switch"] = draw(st.booleans())
    overrides = {}
    for env in draw(st.lists(st.sampled_from(ENVIRONMENTS), unique=True, max_size=2)):
        override: dict[str, Any] = {"enabled": draw(st.booleans())}
        if draw(st.booleans()):
            override["value"] = draw(value)
        overrides[env] = override
    if overrides:
        body["environments"] = overrides
    return body


def _attribute(ctx: dict[str, Any], path: str) -> Any:
    value: Any = ctx
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _spec_condition(c: dict[str, Any], ctx: dict[str, Any]) -> bool:
    """003 §2.2 evaluateCondition (every attribute of these contexts is present)."""
    v, cv = _attribute(ctx, c["attribute"]), c["value"]
    return {
        "equals": lambda: v == cv, "not_equals": lambda: v != cv,
        "contains": lambda: str(cv) in str(v), "not_contains": lambda: str(cv) not in str(v),
        "in": lambda: v in cv, "not_in": lambda: v not in cv,
        "gt": lambda: v > cv, "lt": lambda: v < cv, "gte": lambda: v >= cv, "lte": lambda: v <= cv,
    }[c["operator"]]()


def spec_evaluate(body: dict[str, Any], environment: str, ctx: dict[str, Any]) -> Any:
    """003 §2.2 FlagEvaluator.evaluate for bodies without percentages or a variants list."""
    default = body.get("defaultValue", body.get("default_value"))
    if body.get("killSwitch", body.get("kill_switch")):
        return default
    override = body.get("environments", {}).get(environment)
    if override is not None:
        if not override["enabled"]:
            return default
        if "value" in override:
            return override["value"]
    if not body.get("enabled", True):  # absent: on (docs/contract.md §1a)
        return default
    for rule in body.get("rules", []):
        if all(_spec_condition(c, ctx) for c in rule["conditions"]):
            return rule["value"]
    if "fallthrough" in body:
        return body["fallthrough"]["value"]
    return default


_keys = itertools.count()


def _round_trip(client: TestClient, tokens: Tokens, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    n = next(_keys)
    editor = auth(tokens.editor)
    sent = {**body, "key": f"spec-{n}"}
    response = client.post("/flags", json=sent, headers=editor)
    assert response.status_code == 201, (sent, response.text)
    read = client.get(f"/flags/spec-{n}", headers=editor).json()
    # Re-sent canonically, as read (server fields and default_value included), as a new flag
    # whose salt keeps the first one's buckets.
    again = {**read, "key": f"canonical-{n}", "salt": read["salt"] or read["key"]}
    response = client.post("/flags", json=again, headers=editor)
    assert response.status_code == 201, (again, response.text)
    return read, client.get(f"/flags/canonical-{n}", headers=editor).json()


def _evaluate_everywhere(read: dict[str, Any], other: dict[str, Any], oracle: dict[str, Any] | None) -> None:
    for env in ENVIRONMENTS:
        snap = compile_snapshot({"environment": env, "flags": {
            read["key"]: resolve_flag(read, env), other["key"]: resolve_flag(other, env)}})
        for ctx in CONTEXTS:
            a, b = snap.evaluate(read["key"], ctx), snap.evaluate(other["key"], ctx)
            assert a.error_code is None, a
            assert (a.value, a.variant, a.reason, a.rule_index) == (b.value, b.variant, b.reason, b.rule_index)
            if oracle is not None:
                assert a.value == spec_evaluate(oracle, env, ctx), (oracle, env, ctx, a)


_SETTINGS = settings(max_examples=12, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@_SETTINGS
@given(body=spec_bodies(percentages=False))
def test_round_trip_and_the_spec_evaluator_agree(client: TestClient, tokens: Tokens, body: dict[str, Any]) -> None:
    read, other = _round_trip(client, tokens, body)
    _evaluate_everywhere(read, other, oracle=body)


@_SETTINGS
@given(body=spec_bodies(percentages=True))
def test_round_trip_with_percentages(client: TestClient, tokens: Tokens, body: dict[str, Any]) -> None:
    read, other = _round_trip(client, tokens, body)
    _evaluate_everywhere(read, other, oracle=None)
    # The server's own evaluation agrees with the local one.
    ctx = CONTEXTS[7]
    served = client.post("/evaluate", json={"flag": read["key"], "context": ctx, "environment": "production"},
                         headers=auth(tokens.viewer)).json()
    local = compile_snapshot({"environment": "production", "flags": {
        read["key"]: resolve_flag(read, "production")}}).evaluate(read["key"], ctx)
    assert (served["value"], served["variant"]) == (local.value, local.variant)
