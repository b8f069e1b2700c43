"""OFREP to the letter, and what a browser may see: shapes, visibility, ETags, secure mode."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from flagstaff.secure_mode import secure_mode_hash
from flagstaff.server.app import create_app
from flagstaff.server.routes.ofrep import change_id_of
from flagstaff.server.settings import Settings
from tests.builders import cond, flag, segment
from tests.server.conftest import ADMIN_SECRET, Tokens, auth

BULK = "/ofrep/v1/evaluate/flags"


def setup(client: TestClient, editor: str) -> None:
    flags = [
        flag("server-only").boolean().on("production"),
        flag("banner").boolean().client_side()
        .env("production", lambda e: e.on()
             .rule("beta-tenants-internal-name", cond("plan", "equals", "beta"), serve="true")
             .fallthrough("false"))
        .env("development", lambda e: e.on().fallthrough("true")),
        flag("rollout").boolean().client_side()
        .env("production", lambda e: e.on().fallthrough_rollout(true=50, false=50)),
        flag("gated").boolean().client_side()
        .env("production", lambda e: e.on().prerequisite("server-only", "false").fallthrough("true")),
        flag("perks").boolean().client_side()
        .env("production", lambda e: e.on()
             .rule("members", cond(None, "segment_match", "platinum-club"), serve="true").fallthrough("false")),
    ]
    created = client.post("/segments", json=segment("platinum-club").include("secret-member-7").build(),
                          headers=auth(editor))
    assert created.status_code == 201, created.text
    for f in flags:
        response = client.post("/flags", json=f.build(), headers=auth(editor))
        assert response.status_code == 201, response.text


def bulk(client: TestClient, key: str, context: dict[str, Any], **headers: str) -> Any:
    return client.post(BULK, json={"context": context}, headers=auth(key) | headers)


def test_error_shapes_are_ofreps(client: TestClient, tokens: Tokens) -> None:
    setup(client, tokens.editor)
    h = auth(tokens.sdk_client) | {"Content-Type": "application/json"}
    cases = [
        (b'{"context": {', "PARSE_ERROR"),
        (b"[]", "INVALID_CONTEXT"),
        (b'{"context": "u1"}', "INVALID_CONTEXT"),
        (b'{"context": {"targetingKey": 5}}', "INVALID_CONTEXT"),
    ]
    for body, code in cases:
        many = client.post(BULK, content=body, headers=h)
        assert many.status_code == 400, body
        assert many.json()["errorCode"] == code and many.json()["errorDetails"], body
        assert "error" not in many.json()
        one = client.post(f"{BULK}/banner", content=body, headers=h)
        assert one.status_code == 400
        assert one.json()["key"] == "banner" and one.json()["errorCode"] == code
    no_key = client.post(BULK, json={"context": {}})
    assert no_key.status_code == 401 and set(no_key.json()) == {"errorDetails"}
    management = client.post(BULK, json={"context": {}}, headers=auth(tokens.viewer))
    assert management.status_code == 400 and management.json()["errorCode"] == "GENERAL"
    assert "environment" in management.json()["errorDetails"]
    assert client.get(BULK, headers=auth(tokens.sdk_client)).json().keys() == {"errorDetails"}

    # A split by the targeting key, and no targeting key: OpenFeature's TARGETING_KEY_MISSING.
    one = client.post(f"{BULK}/rollout", json={"context": {"plan": "beta"}}, headers=h)
    assert one.status_code == 400
    assert one.json()["errorCode"] == "TARGETING_KEY_MISSING" and one.json()["key"] == "rollout"
    items = {f["key"]: f for f in bulk(client, tokens.sdk_client, {"plan": "beta"}).json()["flags"]}
    assert items["rollout"]["errorCode"] == "TARGETING_KEY_MISSING" and "value" not in items["rollout"]
    assert items["banner"]["value"] is True
    assert bulk(client, tokens.sdk_client, {"targetingKey": "u1"}).status_code == 200


def test_client_keys_see_client_side_flags_without_targeting_details(
    client: TestClient, tokens: Tokens
) -> None:
    setup(client, tokens.editor)
    ctx = {"targetingKey": "secret-member-7", "plan": "beta"}
    answer = bulk(client, tokens.sdk_client, ctx)
    assert answer.status_code == 200
    items = {f["key"]: f for f in answer.json()["flags"]}
    assert set(items) == {"banner", "rollout", "gated", "perks"}
    assert items["banner"] == {"key": "banner", "value": True, "reason": "TARGETING_MATCH",
                               "variant": "true", "metadata": {}}
    # The prerequisite is server-only: its failure shows, its name does not.
    assert items["gated"]["reason"] == "DISABLED"
    assert items["gated"]["metadata"] == {"flagstaffReason": "PREREQUISITE_FAILED"}
    text = answer.text
    for secret in ("beta-tenants-internal-name", "server-only", "members", "platinum-club", "plan",
                   "rules", "targets", "segment"):
        assert secret not in text, secret
    # A server-only flag is answered exactly as a missing one.
    hidden = client.post(f"{BULK}/server-only", json={"context": ctx}, headers=auth(tokens.sdk_client))
    missing = client.post(f"{BULK}/no-such-flag", json={"context": ctx}, headers=auth(tokens.sdk_client))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json() | {"key": "server-only",
                                              "errorDetails": "flag 'server-only' not found"}
    # Server-side keys see everything, with rule ids, prerequisite keys and versions.
    full = {f["key"]: f for f in bulk(client, tokens.sdk_server, ctx).json()["flags"]}
    assert set(full) == set(items) | {"server-only"}
    assert full["banner"]["metadata"] == {"ruleId": "beta-tenants-internal-name", "version": 1}
    assert full["gated"]["metadata"]["prerequisiteKey"] == "server-only"


def test_etag_changes_only_with_this_contexts_answers(client: TestClient, tokens: Tokens) -> None:
    setup(client, tokens.editor)
    ctx = {"targetingKey": "u1", "plan": "free"}
    first = bulk(client, tokens.sdk_client, ctx)
    tag = first.headers["ETag"]
    assert tag.startswith('"') and len(tag) == 34

    def poll() -> Any:
        return bulk(client, tokens.sdk_client, ctx, **{"If-None-Match": tag})

    assert poll().status_code == 304
    editor = auth(tokens.editor)
    # Another environment, a server-only flag, a rule this context does not match: 304.
    assert client.patch("/flags/banner/environments/development", json={"enabled": False},
                        headers=editor).status_code == 200
    assert client.post("/flags/server-only/environments/production/kill", headers=editor).status_code == 200
    patched = client.patch("/flags/banner", json={"environments": {"production": {"rules": [
        {"id": "renamed", "conditions": [{"attribute": "plan", "operator": "equals",
                                          "values": ["beta"]}], "serve": {"variant": "true"}}]}}},
        headers=editor)
    assert patched.status_code == 200, patched.text
    assert poll().status_code == 304
    # A change of this context's answer: a new body and tag.
    assert client.post("/flags/banner/environments/production/kill", headers=editor).status_code == 200
    changed = poll()
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    assert {f["key"]: f.get("value") for f in changed.json()["flags"]}["banner"] is False
    # The tag is the answer's: another context with other answers never matches it.
    assert bulk(client, tokens.sdk_client, {"plan": "free"},
                **{"If-None-Match": changed.headers["ETag"]}).status_code == 200


def test_etags_differ_between_databases_with_the_same_flags(tmp_path: Any) -> None:
    tags = []
    for name in ("one", "two"):
        settings = Settings(database_url=f"sqlite:///{tmp_path / name}.db", demo=False,
                            bootstrap_token=ADMIN_SECRET)
        with TestClient(create_app(settings)) as client:
            client.post("/flags", json=flag("f").boolean().client_side().on("production").build(),
                        headers=auth(ADMIN_SECRET))
            key = client.post("/tokens", json={"name": "b", "kind": "sdk-client",
                                               "environment": "production"},
                              headers=auth(ADMIN_SECRET)).json()["secret"]
            answer = bulk(client, key, {"targetingKey": "u"})
            tags.append((answer.json()["flags"], answer.headers["ETag"]))
    assert tags[0][0] == tags[1][0] and tags[0][1] != tags[1][1]


def test_event_stream_metadata_is_honoured(client: TestClient, tokens: Tokens) -> None:
    setup(client, tokens.editor)
    ctx = {"targetingKey": "u1"}
    tag = bulk(client, tokens.sdk_client, ctx).headers["ETag"]
    installation = client.app.state.installation_id  # type: ignore[attr-defined]
    latest = client.app.state.store.latest_event_id()  # type: ignore[attr-defined]
    for query in (f'flagConfigEtag="{installation[:12]}-{latest}"&flagConfigLastModified=1771622898',
                  "flagConfigEtag=from-another-install", "flagConfigLastModified=2026-02-20T21:28:18Z"):
        again = client.post(f"{BULK}?{query}", json={"context": ctx},
                            headers=auth(tokens.sdk_client) | {"If-None-Match": tag})
        assert again.status_code == 304, (query, again.text)
    bad = client.post(f"{BULK}?flagConfigLastModified=yesterday", json={"context": ctx},
                      headers=auth(tokens.sdk_client))
    assert bad.status_code == 400 and "flagConfigLastModified" in bad.json()["errorDetails"]
    assert change_id_of(f'"{installation[:12]}-42"', installation) == 42
    assert change_id_of('W/"abc-42"', installation) is None
    assert change_id_of(f'"{installation[:12]}-x"', installation) is None


def test_secure_mode_refuses_unsigned_and_forged_contexts(client: TestClient, tokens: Tokens) -> None:
    setup(client, tokens.editor)
    on = client.patch("/environments/production/client-access", json={"secure_mode": True},
                      headers=auth(tokens.admin))
    assert on.status_code == 200 and on.json()["secure_mode"] is True
    assert client.patch("/environments/production/client-access", json={"secure_mode": True},
                        headers=auth(tokens.editor)).status_code == 403
    secret = client.get("/environments/production/secure-mode-secret",
                        headers=auth(tokens.admin)).json()["secret"]
    assert client.get("/environments/production/secure-mode-secret",
                      headers=auth(tokens.editor)).status_code == 403
    signed = {"targetingKey": "alice", "plan": "beta", "secureModeHash": secure_mode_hash(secret, "alice")}
    good = bulk(client, tokens.sdk_client, signed)
    assert good.status_code == 200, good.text
    forged = {**signed, "targetingKey": "bob"}
    for context in (forged, {"targetingKey": "alice"}, {"plan": "beta"},
                    {**signed, "secureModeHash": "0" * 64}):
        refused = bulk(client, tokens.sdk_client, context)
        assert refused.status_code == 403, context
        assert refused.json()["errorCode"] in ("INVALID_CONTEXT", "TARGETING_KEY_MISSING")
        one = client.post(f"{BULK}/banner", json={"context": context}, headers=auth(tokens.sdk_client))
        assert one.status_code == 403
        assert client.post("/evaluate", json={"flag": "banner", "context": context},
                           headers=auth(tokens.sdk_client)).status_code == 403
    # Server-side keys are trusted back ends: no hash needed.
    assert bulk(client, tokens.sdk_server, {"targetingKey": "bob"}).status_code == 200
    # Rotation: the old signature stops working at once.
    rotated = client.post("/environments/production/secure-mode-secret", headers=auth(tokens.admin))
    assert rotated.json()["secret"] != secret
    assert bulk(client, tokens.sdk_client, signed).status_code == 403


@pytest.fixture
def origins(client: TestClient, tokens: Tokens) -> None:
    for env, origin in (("production", "https://app.example.com"), ("staging", "https://staging.example.com")):
        answer = client.patch(f"/environments/{env}/client-access",
                              json={"allowed_origins": [origin]}, headers=auth(tokens.admin))
        assert answer.status_code == 200, answer.text


def preflight(client: TestClient, origin: str, headers: str = "authorization,content-type,if-none-match") -> Any:
    return client.options(BULK, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": headers,
    })


def test_cors_per_environment_with_diagnosable_refusals(
    client: TestClient, tokens: Tokens, origins: None, caplog: pytest.LogCaptureFixture,
) -> None:
    setup(client, tokens.editor)
    ok = preflight(client, "https://app.example.com")
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
    assert ok.headers["access-control-max-age"] == "7200"
    assert "if-none-match" in ok.headers["access-control-allow-headers"]
    caplog.set_level("WARNING", logger="flagstaff.server.cors")
    refused = preflight(client, "https://app.exmaple.com")
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    line = next(r.getMessage() for r in caplog.records if "exmaple" in r.getMessage())
    assert "'https://app.exmaple.com'" in line and "--allow-origin" in line
    assert "FLAGSTAFF_CORS_ORIGINS" in line
    assert preflight(client, "https://app.example.com", "authorization,x-custom").status_code == 403

    allowed = bulk(client, tokens.sdk_client, {"targetingKey": "u"}, Origin="https://app.example.com")
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "ETag" in allowed.headers["access-control-expose-headers"]
    # An origin another environment allows: the preflight passes, the request does not.
    caplog.clear()
    other = bulk(client, tokens.sdk_client, {"targetingKey": "u"}, Origin="https://staging.example.com")
    assert other.status_code == 403 and "staging.example.com" in other.json()["errorDetails"]
    assert any("allowed in staging, not in production" in r.getMessage() for r in caplog.records)
    # Server-side keys are secrets: never from a page.
    leaked = bulk(client, tokens.sdk_server, {"targetingKey": "u"}, Origin="https://app.example.com")
    assert leaked.status_code == 403 and "client-side key" in leaked.json()["errorDetails"]
    # No Origin: not a page (a back end, curl); CORS does not apply.
    assert bulk(client, tokens.sdk_client, {"targetingKey": "u"}).status_code == 200


def test_no_origins_configured_refuses_preflights_with_a_reason(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="flagstaff.server.cors")
    answer = preflight(client, "http://localhost:5173")
    assert answer.status_code == 403
    assert any("no environment allows this origin" in r.getMessage() for r in caplog.records)


def test_browser_ingestion(client: TestClient, tokens: Tokens, origins: None) -> None:
    event = {"flag_key": "banner", "variant": "true", "user_key": "u1",
             "timestamp": "2026-01-01T00:00:00Z", "reason": "SPLIT", "flag_version": None,
             "in_experiment": True}
    page = {"Origin": "https://app.example.com"}
    beacon = client.post("/exposures", json={"batch_id": "b1", "events": [event],
                                              "client_key": tokens.sdk_client},
                         headers=page | {"Content-Type": "text/plain;charset=UTF-8"})
    assert beacon.status_code == 202, beacon.text
    again = client.post("/exposures", content=beacon.request.content,
                        headers=page | {"Content-Type": "text/plain;charset=UTF-8"})
    assert again.json() == {"accepted": 0, "duplicate": True}
    server_in_body = client.post("/track", json={"batch_id": "b2", "events": [],
                                                 "client_key": tokens.sdk_server})
    assert server_in_body.status_code == 403
    elsewhere = client.post("/exposures", json={"batch_id": "b3", "events": [event]},
                            headers=auth(tokens.sdk_client) | {"Origin": "https://evil.example"})
    assert elsewhere.status_code == 403
    too_many = client.post("/exposures", json={"batch_id": "b4", "events": [event] * 1001},
                           headers=auth(tokens.sdk_client))
    assert too_many.status_code == 400 and too_many.json()["error"]["details"]["field"] == "events"
    # SDK keys can never write flags.
    assert client.post("/flags", json=flag("x").build(), headers=auth(tokens.sdk_client)).status_code == 403
    # Secure mode: each user's hash comes with the batch.
    client.patch("/environments/production/client-access", json={"secure_mode": True},
                 headers=auth(tokens.admin))
    secret = client.get("/environments/production/secure-mode-secret",
                        headers=auth(tokens.admin)).json()["secret"]
    unsigned = client.post("/track", json={"batch_id": "b5", "events": [
        {"metric": "checkout", "user_key": "u1", "value": None, "timestamp": "2026-01-01T00:00:00Z"}]},
        headers=auth(tokens.sdk_client))
    assert unsigned.status_code == 403
    signed = client.post("/track", json={"batch_id": "b6", "events": [
        {"metric": "checkout", "user_key": "u1", "value": None, "timestamp": "2026-01-01T00:00:00Z"}],
        "secure_mode_hashes": {"u1": secure_mode_hash(secret, "u1")}},
        headers=auth(tokens.sdk_client))
    assert signed.status_code == 202, signed.text


def test_browser_ingestion_is_rate_limited(database_url: str) -> None:
    settings = Settings(database_url=database_url, demo=False, bootstrap_token=ADMIN_SECRET,
                        browser_ingest_batches_per_minute=8)
    with TestClient(create_app(settings)) as client:
        key = client.post("/tokens", json={"name": "page", "kind": "sdk-client",
                                           "environment": "production"},
                          headers=auth(ADMIN_SECRET)).json()["secret"]
        statuses = [client.post("/track", json={"batch_id": f"r{i}", "events": []},
                                headers=auth(key)).status_code for i in range(4)]
        assert statuses[:2] == [202, 202] and statuses[-1] == 429
        limited = client.post("/track", json={"batch_id": "r9", "events": []}, headers=auth(key))
        assert limited.headers.get("retry-after")
