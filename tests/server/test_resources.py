"""Segments, environments, tokens and the audit log over HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.builders import cond, flag, segment, segment_match
from tests.server.conftest import Tokens, auth


def test_segment_crud_and_reference_protection(client: TestClient, tokens: Tokens) -> None:
    h = auth(tokens.editor)
    beta = segment("beta").include("u1").rule(cond("email", "ends_with", "@acme.com")).build()
    created = client.post("/segments", json=beta, headers=h)
    assert created.status_code == 201, created.text
    assert client.post("/segments", json=beta, headers=h).json()["error"]["code"] == "segment_exists"
    replaced = client.put("/segments/beta", json=beta | {"included": ["u2"]}, headers=h)
    assert replaced.status_code == 200 and replaced.json()["included"] == ["u2"]
    gated = flag("gated").boolean().env("production", lambda e: e.on().rule("r", segment_match("beta"), serve="true"))
    assert client.post("/flags", json=gated.build(), headers=h).status_code == 201
    in_use = client.delete("/segments/beta", headers=h)
    assert in_use.status_code in (400, 409) and in_use.json()["error"]["message"]
    assert [s["key"] for s in client.get("/segments", headers=auth(tokens.viewer)).json()["items"]] == ["beta"]


def test_environment_crud_is_admin_only(client: TestClient, tokens: Tokens) -> None:
    assert client.post("/environments", json={"key": "qa"}, headers=auth(tokens.editor)).status_code == 403
    created = client.post("/environments", json={"key": "qa", "name": "QA"}, headers=auth(tokens.admin))
    assert created.status_code == 201, created.text
    again = client.post("/environments", json={"key": "qa"}, headers=auth(tokens.admin))
    assert again.json()["error"]["code"] == "environment_exists"
    keys = {e["key"] for e in client.get("/environments", headers=auth(tokens.viewer)).json()["items"]}
    assert keys == {"development", "staging", "production", "qa"}
    assert client.delete("/environments/qa", headers=auth(tokens.admin)).status_code == 204
    assert client.get("/environments/qa", headers=auth(tokens.viewer)).status_code == 404


def test_tokens_secret_shown_once_listed_with_last_use_and_revocable(client: TestClient, tokens: Tokens) -> None:
    made = client.post("/tokens", json={"name": "ci", "kind": "management", "role": "viewer"}, headers=auth(tokens.admin))
    secret = made.json()["secret"]
    assert secret.startswith("fsm_")
    assert client.get("/flags", headers=auth(secret)).status_code == 200
    listed = {t["name"]: t for t in client.get("/tokens", headers=auth(tokens.admin)).json()["items"]}
    assert "secret" not in listed["ci"] and secret not in str(listed)
    assert listed["ci"]["last_used_at"] is not None
    assert client.delete(f"/tokens/{made.json()['id']}", headers=auth(tokens.admin)).status_code == 200
    assert client.get("/flags", headers=auth(secret)).status_code == 401
    bad = client.post("/tokens", json={"name": "x", "kind": "sdk-client"}, headers=auth(tokens.admin))
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "environment"


def test_audit_is_chronological_with_the_principal_as_actor(client: TestClient, tokens: Tokens) -> None:
    body = flag("audited").boolean().on("production").build()
    client.post("/flags", json=body, headers=auth(tokens.editor))
    client.patch("/flags/audited", json={"description": "d"}, headers=auth(tokens.admin))
    client.post("/flags/audited/environments/production/kill", headers=auth(tokens.editor))
    history = client.get("/flags/audited/audit", headers=auth(tokens.viewer)).json()["items"]
    assert [h["action"] for h in history] == ["created", "updated", "killed"]
    assert [h["created_at"] for h in history] == sorted(h["created_at"] for h in history)
    assert history[0]["actor"].startswith("erin") and history[1]["actor"].startswith("bootstrap admin")
    assert history[1]["before"]["description"] == "" and history[1]["after"]["description"] == "d"
    assert {"path": "description", "op": "replace", "old": "", "new": "d"} in history[1]["diff"]
    by_actor = client.get("/audit", params={"actor": history[0]["actor"], "kind": "flag"}, headers=auth(tokens.viewer))
    assert [h["action"] for h in by_actor.json()["items"]] == ["created", "killed"]
    killed = client.get("/audit", params={"action": "killed"}, headers=auth(tokens.viewer)).json()["items"]
    assert [h["environment"] for h in killed] == ["production"]
