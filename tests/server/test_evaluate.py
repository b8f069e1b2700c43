"""Remote evaluation: /evaluate, /evaluate/all, OFREP and /sdk/flags."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.testclient import TestClient
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from tests.builders import cond, flag
from tests.server.conftest import ADMIN_SECRET, LiveServer, Tokens, auth


def tiers() -> dict[str, Any]:
    return (
        flag("agents-limit").number({"low": 4, "mid": 10, "high": 15}, off="low")
        .env("production", lambda e: e.on()
             .rule("enterprise", cond("tenant.type", "equals", "enterprise"), serve="high")
             .rule("pro", cond("tenant.type", "equals", "professional"), serve="mid")
             .fallthrough("low"))
        .build()
    )


def setup_flags(client: Any, secret: str) -> None:
    """Two flags available to client-side keys and one server-only flag."""
    for definition in (
        {**tiers(), "client_side": True},
        flag("dark-mode").boolean().client_side().on("production").build(),
        flag("ops-only").boolean().on("production").build(),
    ):
        response = client.post("/flags", json=definition, headers=auth(secret))
        assert response.status_code == 201, response.text


def test_evaluate_one_and_all_with_sdk_keys(client: TestClient, tokens: Tokens) -> None:
    setup_flags(client, tokens.editor)
    ctx = {"targetingKey": "u1", "tenant": {"type": "professional"}}
    for secret, rule in ((tokens.sdk_client, (None, None)), (tokens.sdk_server, ("pro", 1))):
        one = client.post("/evaluate", json={"flag": "agents-limit", "context": ctx}, headers=auth(secret))
        assert one.status_code == 200, one.text
        # Client-side keys never see authored rule names (or positions).
        assert one.json() | {"version": None} == {
            "key": "agents-limit", "value": 10, "variant": "mid", "reason": "RULE_MATCH",
            "rule_id": rule[0], "rule_index": rule[1], "prerequisite_key": None, "error_code": None,
            "error_message": None, "version": None, "in_experiment": False,
        }
    everything = client.post("/evaluate/all", json={"context": ctx}, headers=auth(tokens.sdk_client)).json()
    assert everything["environment"] == "production"
    assert {k: v["value"] for k, v in everything["flags"].items()} == {"agents-limit": 10, "dark-mode": True}
    server_view = client.post("/evaluate/all", json={"context": ctx}, headers=auth(tokens.sdk_server)).json()
    assert set(server_view["flags"]) == {"agents-limit", "dark-mode", "ops-only"}
    for key in ("nope", "ops-only"):  # a server-only flag is, to a page, a flag that does not exist
        missing = client.post(
            "/evaluate", json={"flag": key, "context": ctx, "default": 7}, headers=auth(tokens.sdk_client)
        ).json()
        assert (missing["value"], missing["reason"], missing["error_code"]) == (7, "ERROR", "FLAG_NOT_FOUND")
        assert missing["error_message"] == f"flag {key!r} not found"


def test_environment_rules_for_keys_and_management_tokens(client: TestClient, tokens: Tokens) -> None:
    setup_flags(client, tokens.editor)
    body = {"flag": "dark-mode", "context": {"key": "u"}}
    other_env = client.post("/evaluate", json=body | {"environment": "staging"}, headers=auth(tokens.sdk_client))
    assert other_env.status_code == 403
    no_env = client.post("/evaluate", json=body, headers=auth(tokens.viewer))
    assert no_env.status_code == 400
    assert no_env.json()["error"]["details"]["field"] == "environment"
    staging = client.post("/evaluate", json=body | {"environment": "staging"}, headers=auth(tokens.viewer))
    assert staging.json()["reason"] == "DISABLED"
    unknown = client.post("/evaluate", json=body | {"environment": "mars"}, headers=auth(tokens.viewer))
    assert unknown.status_code == 404


def test_evaluation_follows_writes(client: TestClient, tokens: Tokens) -> None:
    setup_flags(client, tokens.editor)

    def value() -> Any:
        return client.post(
            "/evaluate", json={"flag": "dark-mode", "context": {"key": "u"}}, headers=auth(tokens.sdk_client)
        ).json()["value"]

    assert value() is True
    client.post("/flags/dark-mode/environments/production/kill", headers=auth(tokens.editor))
    assert value() is False


def test_ofrep_single_bulk_and_etag(client: TestClient, tokens: Tokens) -> None:
    setup_flags(client, tokens.editor)
    h = auth(tokens.sdk_client)
    ctx = {"context": {"targetingKey": "u1", "tenant": {"type": "enterprise"}}}
    one = client.post("/ofrep/v1/evaluate/flags/agents-limit", json=ctx, headers=h)
    assert one.status_code == 200
    assert one.json()["value"] == 15 and one.json()["reason"] == "TARGETING_MATCH"
    assert one.json()["variant"] == "high" and one.json()["metadata"] == {}
    server = client.post("/ofrep/v1/evaluate/flags/agents-limit", json=ctx, headers=auth(tokens.sdk_server))
    assert server.json()["metadata"] == {"ruleId": "enterprise", "version": 1}
    missing = client.post("/ofrep/v1/evaluate/flags/nope", json=ctx, headers=h)
    assert missing.status_code == 404
    assert missing.json()["key"] == "nope" and missing.json()["errorCode"] == "FLAG_NOT_FOUND"

    bulk = client.post("/ofrep/v1/evaluate/flags", json=ctx, headers=h)
    assert bulk.status_code == 200
    assert {f["key"]: f["value"] for f in bulk.json()["flags"]} == {"agents-limit": 15, "dark-mode": True}
    tag = bulk.headers["ETag"]
    same = client.post("/ofrep/v1/evaluate/flags", json=ctx, headers=h | {"If-None-Match": tag})
    assert same.status_code == 304
    other_ctx = {"context": {"targetingKey": "u2"}}
    assert client.post("/ofrep/v1/evaluate/flags", json=other_ctx, headers=h | {"If-None-Match": tag}).status_code == 200
    client.patch("/flags/dark-mode/environments/production", json={"enabled": False}, headers=auth(tokens.editor))
    changed = client.post("/ofrep/v1/evaluate/flags", json=ctx, headers=h | {"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag


def test_sdk_flags_snapshot_etag_and_client_key_refused(client: TestClient, tokens: Tokens) -> None:
    setup_flags(client, tokens.editor)
    h = auth(tokens.sdk_server)
    first = client.get("/sdk/flags", headers=h)
    assert first.status_code == 200
    body = first.json()
    assert body["environment"] == "production"
    assert set(body["flags"]) == {"agents-limit", "dark-mode", "ops-only"}
    assert first.headers["ETag"] == f'"{body["version"]}"'
    assert client.get("/sdk/flags", headers=h | {"If-None-Match": first.headers["ETag"]}).status_code == 304
    client.delete("/flags/dark-mode", headers=auth(tokens.editor))
    second = client.get("/sdk/flags", headers=h | {"If-None-Match": first.headers["ETag"]})
    assert second.status_code == 200 and set(second.json()["flags"]) == {"agents-limit", "ops-only"}
    assert client.get("/sdk/flags", headers=auth(tokens.sdk_client)).status_code == 403


def test_real_ofrep_provider_through_openfeature_sdk(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as http:
        setup_flags(http, ADMIN_SECRET)
        key = http.post(
            "/tokens", json={"name": "browser", "kind": "sdk-client", "environment": "production"},
            headers=auth(ADMIN_SECRET),
        ).json()["secret"]
    provider = OFREPProvider(live_server.url, headers_factory=lambda: auth(key))
    try:
        api.set_provider(provider, domain="flagstaff-ofrep-test")
        client = api.get_client(domain="flagstaff-ofrep-test")
        enterprise = EvaluationContext(targeting_key="u1", attributes={"tenant": {"type": "enterprise"}})
        detail = client.get_integer_details("agents-limit", 0, enterprise)
        assert (detail.value, detail.variant, detail.reason) == (15, "high", Reason.TARGETING_MATCH)
        assert client.get_boolean_value("dark-mode", False, EvaluationContext(targeting_key="u2")) is True
        missing = client.get_boolean_details("nope", False, enterprise)
        assert (missing.value, missing.error_code) == (False, ErrorCode.FLAG_NOT_FOUND)
        mismatch = client.get_string_details("dark-mode", "x", enterprise)
        assert (mismatch.value, mismatch.error_code) == ("x", ErrorCode.TYPE_MISMATCH)
    finally:
        api.clear_providers()
        provider.session.close()
