"""The spec's flag bodies over HTTP: 001's snake_case, 003's camelCase, errors named as sent.

The acceptance walk: 001's ``POST /flags`` body and every flag of 003 §4, sent as written, give
the answers 003 §6 expects, through the HTTP API only.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from flagstaff.flagfile import demo_path
from tests.builders import cond, flag, segment
from tests.server.conftest import Tokens, auth

# 001, milestone 1: "POST /flags creates a flag with: key, type, default_value, description,
# and optional targeting rules"; its rules are 003's (conditions + value), in snake_case.
FROM_001 = {
    "key": "enterprise-feature",
    "type": "boolean",
    "default_value": False,
    "description": "Enterprise-only feature",
    "rules": [{"id": "enterprise", "conditions": [
        {"attribute": "tenant.type", "operator": "equals", "value": "enterprise"}], "value": True}],
}


def spec_flags() -> list[dict[str, Any]]:
    """003 §4's predefined flags, exactly as the spec writes them (the bundled demo file is
    that text verbatim: tests/flagfile/test_loader.py checks it)."""
    return list(yaml.safe_load(demo_path().read_text())["flags"])


def post(client: TestClient, tokens: Tokens, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/flags", json=body, headers=auth(tokens.editor))
    assert response.status_code == 201, response.text
    return dict(response.json())


def evaluate(client: TestClient, tokens: Tokens, key: str, context: dict[str, Any], environment: str) -> Any:
    response = client.post("/evaluate", json={"flag": key, "context": context, "environment": environment},
                           headers=auth(tokens.viewer))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["error_code"] is None, body
    return body["value"]


def test_001_and_003_flags_over_http_give_the_answers_003_section_6_expects(
    client: TestClient, tokens: Tokens
) -> None:
    # §6 evaluates in the environments "test" and "production".
    assert client.post("/environments", json={"key": "test"}, headers=auth(tokens.admin)).status_code == 201
    flags = spec_flags()
    for body in [FROM_001, *flags]:
        post(client, tokens, body)
    enterprise = {"environment": "production", "tenant": {"id": "t1", "type": "enterprise", "slug": "acme"}}

    # "should match tenant type rule"
    assert evaluate(client, tokens, "enterprise-feature", enterprise, "production") is True
    assert evaluate(client, tokens, "self-evolution-enabled", enterprise, "production") is True
    assert evaluate(client, tokens, "parallel-agents-limit", enterprise, "production") == 15
    professional = {"tenant": {"id": "t2", "type": "professional"}}
    assert evaluate(client, tokens, "parallel-agents-limit", professional, "production") == 10
    assert evaluate(client, tokens, "self-evolution-enabled", professional, "production") is False
    beta = {"tenant": {"id": "tenant-beta-2", "type": "starter"}}
    assert evaluate(client, tokens, "new-orchestrator-v2", beta, "production") is True
    openai = {"tenant": {"settings": {"preferredProvider": "openai"}}}
    assert evaluate(client, tokens, "model-provider", openai, "production") == "openai"
    assert evaluate(client, tokens, "model-provider", enterprise, "test") == "anthropic"

    # "should apply percentage rollout consistently": users by user.id, as §6 sends them.
    seen = set()
    for i in range(100):
        user = {"environment": "production", "user": {"id": f"user-{i}", "email": "", "role": ""}}
        first = evaluate(client, tokens, "new-orchestrator-v2", user, "production")
        assert evaluate(client, tokens, "new-orchestrator-v2", user, "production") == first
        seen.add(first)
    assert seen == {True, False}

    # "should return default value when flag disabled": every flag, disabled as the spec's
    # toggleFlag does (the same body with enabled: false).
    for body in [FROM_001, *flags]:
        off = {**copy.deepcopy(body), "enabled": False}
        response = client.put(f"/flags/{body['key']}", json=off, headers=auth(tokens.editor))
        assert response.status_code == 200, response.text
        expected = body.get("defaultValue", body.get("default_value"))
        assert evaluate(client, tokens, body["key"], enterprise, "test") == expected
        assert evaluate(client, tokens, body["key"], {"environment": "test"}, "test") == expected

    # "should activate kill switch": the spec's activateKillSwitch sets killSwitch and enabled.
    for body in [FROM_001, *flags]:
        killed = {**copy.deepcopy(body), "killSwitch": True, "enabled": False}
        if "default_value" in body:
            killed = {**copy.deepcopy(body), "kill_switch": True, "enabled": False}
        assert client.put(f"/flags/{body['key']}", json=killed, headers=auth(tokens.editor)).status_code == 200
        expected = body.get("defaultValue", body.get("default_value"))
        assert evaluate(client, tokens, body["key"], enterprise, "test") == expected


def test_kill_switch_wins_even_with_enabled_true(client: TestClient, tokens: Tokens) -> None:
    body = {**copy.deepcopy(FROM_001), "enabled": True, "kill_switch": True}
    post(client, tokens, body)
    enterprise = {"tenant": {"type": "enterprise"}}
    for env in ("development", "staging", "production"):
        assert evaluate(client, tokens, "enterprise-feature", enterprise, env) is False


def test_reads_are_canonical_with_a_read_only_default_value(client: TestClient, tokens: Tokens) -> None:
    created = post(client, tokens, spec_flags()[1])  # parallel-agents-limit, defaultValue 4
    assert created["default_value"] == 4
    assert created["variants"] == {"4": 4, "15": 15, "10": 10} and created["off_variant"] == "4"
    assert "defaultValue" not in created and "rules" not in created
    h = auth(tokens.viewer)
    assert client.get("/flags/parallel-agents-limit", headers=h).json()["default_value"] == 4
    assert client.get("/flags", headers=h).json()["items"][0]["default_value"] == 4
    boolean = post(client, tokens, flag("plain").boolean().build())
    assert boolean["default_value"] is False

    # What was read can be sent back as it is (no change, no new version)...
    again = client.put("/flags/parallel-agents-limit", json=created, headers=auth(tokens.editor))
    assert again.status_code == 200 and again.json()["version"] == 1
    # ... but default_value is not a way to change the off value.
    changed = client.put("/flags/parallel-agents-limit", json={**created, "default_value": 5},
                         headers=auth(tokens.editor))
    assert changed.status_code == 400
    assert changed.json()["error"]["details"]["field"] == "default_value"
    assert "read-only" in changed.json()["error"]["message"]
    patched = client.patch("/flags/parallel-agents-limit", json={"default_value": 5}, headers=auth(tokens.editor))
    assert patched.status_code == 400 and patched.json()["error"]["details"]["field"] == "default_value"


def test_put_replaces_with_a_spec_body(client: TestClient, tokens: Tokens) -> None:
    post(client, tokens, FROM_001)
    body = {**copy.deepcopy(FROM_001), "default_value": True, "rules": []}
    replaced = client.put("/flags/enterprise-feature", json=body, headers=auth(tokens.editor))
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["version"] == 2 and replaced.json()["default_value"] is True
    assert evaluate(client, tokens, "enterprise-feature", {"tenant": {"type": "enterprise"}}, "production") is True
    audit = client.get("/flags/enterprise-feature/audit", headers=auth(tokens.viewer)).json()["items"]
    assert [entry["action"] for entry in audit] == ["created", "updated"]


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        # The spec's pitfall: "a boolean flag with default_value 'hello' silently breaks evaluation".
        ({**FROM_001, "default_value": "hello"}, "default_value", "true or false"),
        ({"key": "x", "type": "boolean", "defaultValue": "hello"}, "defaultValue", "true or false"),
        ({**FROM_001, "rules": [{"conditions": [], "value": "yes"}]}, "rules[0].value", "true or false"),
        ({"key": "n", "type": "number", "defaultValue": 4, "rules": [{"conditions": [], "value": "lots"}]},
         "rules[0].value", "finite numbers"),
        ({"key": "n", "type": "number", "defaultValue": 4, "enabled": "yes"}, "enabled", "true or false"),
        ({"key": "n", "type": "number", "defaultValue": 4, "rules": [{"conditions": []}]}, "rules[0].value", "required"),
        ({"key": "n", "type": "number", "defaultValue": 4, "rules": [
            {"conditions": [{"attribute": "a", "operator": "eq", "value": 1}], "value": 5}]},
         "rules[0].conditions[0].operator", "unknown operator"),
        ({"key": "n", "type": "number", "defaultValue": 4, "rules": [
            {"conditions": [{"attribute": "a", "operator": "gt", "value": "x"}], "value": 5}]},
         "rules[0].conditions[0].value", "finite number"),
        ({"key": "n", "type": "number", "defaultValue": 4, "rules": [
            {"conditions": [{"attribute": "a", "operator": "in", "value": [1, {}]}], "value": 5}]},
         "rules[0].conditions[0].value[1]", "strings, numbers or booleans"),
        ({"key": "n", "type": "number", "defaultValue": 4, "rules": [
            {"conditions": [], "value": 5, "percentage": 140}]}, "rules[0].percentage", "0 to 100"),
        ({"key": "n", "type": "number", "defaultValue": 4, "fallthrough": {"percentage": 10}},
         "fallthrough.value", "required"),
        ({"key": "n", "type": "number", "defaultValue": 4, "defualtValue": 5}, "defualtValue", "unknown field"),
        ({"key": "n", "type": "number", "defaultValue": 4, "default_value": 4}, "default_value", "not both"),
        ({"key": "n", "type": "number", "defaultValue": 4, "environments": {"production": {"value": "x"}}},
         "environments.production.value", "finite numbers"),
        ({"key": "n", "type": "number", "defaultValue": 4, "environments": {"qa": {"enabled": True}}},
         "environments.qa", "does not exist"),
        ({"key": "n", "type": "number", "defaultValue": 4, "variants": [{"value": 5, "weight": "half"}]},
         "variants[0].weight", "0 to 100"),
        ({"key": "n", "type": "number", "enabled": True}, "", "defaultValue (or default_value) is required"),
        ({"key": "Bad Key", "type": "boolean", "default_value": False}, "key", "invalid flag key"),
    ],
)
def test_errors_name_the_field_as_sent(
    client: TestClient, tokens: Tokens, body: dict[str, Any], field: str, fragment: str
) -> None:
    response = client.post("/flags", json=body, headers=auth(tokens.editor))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["details"]["field"] == field
    assert fragment in error["message"]
    assert client.get("/flags", headers=auth(tokens.viewer)).json()["items"] == []  # nothing half-written


def test_store_errors_are_named_as_sent_too(client: TestClient, tokens: Tokens) -> None:
    body = {"key": "n", "type": "boolean", "defaultValue": False, "rules": [
        {"conditions": [{"attribute": "x", "operator": "equals", "value": "y"},
                        {"operator": "segment_match", "value": "nope"}], "value": True}]}
    response = client.post("/flags", json=body, headers=auth(tokens.editor))
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "rules[0].conditions[1].value"
    assert client.post("/segments", json=segment("nope").build(), headers=auth(tokens.editor)).status_code == 201
    assert client.post("/flags", json=body, headers=auth(tokens.editor)).status_code == 201


def test_canonical_bodies_are_unchanged(client: TestClient, tokens: Tokens) -> None:
    canonical = flag("c").boolean().env("production", lambda e: e.on().rule(
        "r", cond("plan", "equals", "pro"), serve="true")).build()
    created = post(client, tokens, canonical)
    assert created["environments"]["production"]["rules"][0]["conditions"][0]["values"] == ["pro"]
    assert set(created["environments"]) == {"production"}  # a canonical body names its environments
    wrong = client.post("/flags", json={**canonical, "key": "d", "rules": []}, headers=auth(tokens.editor))
    assert wrong.status_code == 400 and wrong.json()["error"]["details"]["field"] == "rules"
