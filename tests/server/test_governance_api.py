"""Governed change over HTTP: the policy refusal's shape, a change request from proposal to
applied write (and its conflict), schedules, webhooks (secret once, egress refusals) and
trigger URLs (fired without a token, never logged)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import Tokens, auth

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def setup_flag(client: TestClient, tokens: Tokens, *, on: bool = False) -> None:
    ok(client.post("/flags", headers=auth(tokens.editor), json={
        "key": "checkout", "type": "boolean", "environments": {"production": {"enabled": on}}}), 201)
    ok(client.put("/environments/production/policy", headers=auth(tokens.admin),
                  json={"required_approvals": 1}))


def test_a_protected_environment_refuses_direct_writes_and_takes_change_requests(
    client: TestClient, tokens: Tokens
) -> None:
    setup_flag(client, tokens)
    editor, admin = auth(tokens.editor), auth(tokens.admin)
    refused = client.patch("/flags/checkout/environments/production", headers=editor,
                           json={"enabled": True})
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "review_required"
    assert "requires review" in error["message"] and "change request" in error["message"]
    assert error["details"]["policy"]["required_approvals"] == 1
    assert ok(client.get("/environments/production/policy", headers=editor))["required_approvals"] == 1
    assert {p["environment"]: p["required_approvals"] for p in ok(
        client.get("/policies", headers=editor))["items"]} == {
        "development": 0, "staging": 0, "production": 1}
    assert client.put("/environments/production/policy", headers=editor,
                      json={"required_approvals": 0}).status_code == 403

    cr = ok(client.post("/change-requests", headers=editor, json={
        "flag": "checkout", "environment": "production", "patch": {"enabled": True},
        "description": "launch"}), 201)
    assert (cr["status"], cr["base_version"], cr["current_version"], cr["mergeable"]) == (
        "open", 1, 1, True)
    assert cr["diff"] == [{"path": "environments.production.enabled", "op": "replace",
                           "old": False, "new": True}]
    own = client.post(f"/change-requests/{cr['id']}/approve", headers=editor)
    assert own.status_code == 403 and "author" in own.json()["error"]["message"]
    assert client.post(f"/change-requests/{cr['id']}/apply", headers=editor).json()["error"][
        "code"] == "not_approved"
    ok(client.post(f"/change-requests/{cr['id']}/comments", headers=admin,
                   json={"comment": "after the 10:00 deploy"}))
    approved = ok(client.post(f"/change-requests/{cr['id']}/approve", headers=admin))
    assert approved["status"] == "approved" and approved["approvals"] == 1
    applied = ok(client.post(f"/change-requests/{cr['id']}/apply", headers=editor))
    assert (applied["status"], applied["applied_version"]) == ("applied", 2)
    last = ok(client.get("/flags/checkout/audit", headers=editor))["items"][-1]
    assert last["id"] == applied["applied_audit_id"]
    assert last["context"]["change_request"] == cr["id"]
    assert [r["verdict"] for r in applied["reviews"]] == ["commented", "approved"]

    # A request against a stale version is refused; one whose base moves later conflicts.
    stale = client.post("/change-requests", headers=editor, json={
        "flag": "checkout", "environment": "production", "base_version": 1,
        "patch": {"fallthrough": {"variant": "true"}}})
    assert stale.status_code == 412
    second = ok(client.post("/change-requests", headers=editor, json={
        "flag": "checkout", "environment": "production", "base_version": 2,
        "config": {"enabled": True, "fallthrough": {"variant": "true"}}}), 201)
    ok(client.post(f"/change-requests/{second['id']}/approve", headers=admin))
    # The incident kill stays one action (and moves the flag past the request's base).
    ok(client.post("/flags/checkout/environments/production/kill", headers=editor))
    conflict = client.post(f"/change-requests/{second['id']}/apply", headers=editor)
    assert conflict.status_code == 412
    assert conflict.json()["error"]["details"]["current_version"] == 3
    assert conflict.json()["error"]["details"]["changed_paths"] == ["environments.production.enabled"]
    assert ok(client.get(f"/change-requests/{second['id']}", headers=editor))["status"] == "conflict"
    listed = ok(client.get("/change-requests", headers=editor, params={"status": "conflict"}))
    assert [c["id"] for c in listed["items"]] == [second["id"]]
    bad = client.post("/change-requests", headers=editor, json={"flag": "checkout"})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "environment"


def test_schedules_over_http(client: TestClient, tokens: Tokens) -> None:
    ok(client.post("/flags", headers=auth(tokens.editor), json={"key": "checkout", "type": "boolean"}), 201)
    editor = auth(tokens.editor)
    body = {"flag": "checkout", "environment": "production", "action": "enable",
            "at": "2099-01-01T09:00:00Z", "description": "launch"}
    for field, value in (("at", "tomorrow"), ("at", "2099-01-01T09:00:00"), ("action", "fly"),
                         ("flag", None)):
        bad = client.post("/schedules", headers=editor, json={**body, field: value})
        assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == field, bad.text
    created = ok(client.post("/schedules", headers=editor, json=body), 201)
    assert (created["status"], created["at"], created["base_version"]) == (
        "pending", "2099-01-01T09:00:00.000000Z", 1)
    moved = ok(client.patch(f"/schedules/{created['id']}", headers=editor,
                            json={"at": "2099-01-02T09:00:00+02:00"}))
    assert moved["at"] == "2099-01-02T07:00:00.000000Z"
    assert [s["id"] for s in ok(client.get("/schedules", headers=editor,
                                           params={"status": "pending"}))["items"]] == [created["id"]]
    assert ok(client.delete(f"/schedules/{created['id']}", headers=editor))["status"] == "cancelled"
    assert client.delete(f"/schedules/{created['id']}", headers=editor).status_code == 409
    assert client.get("/schedules/999", headers=editor).status_code == 404
    kinds = [a["action"] for a in ok(client.get("/audit", headers=editor,
                                                params={"key": str(created["id"])}))["items"]]
    assert kinds == ["created", "updated", "cancelled"]


def test_webhooks_show_their_secret_once_and_refuse_internal_urls(
    client: TestClient, tokens: Tokens
) -> None:
    admin = auth(tokens.admin)
    for url, reason in (("http://169.254.169.254/latest/meta-data/", "link-local"),
                        ("http://127.0.0.1:8400/tokens", "loopback"),
                        ("file:///etc/passwd", "http")):
        refused = client.post("/webhooks", headers=admin, json={"url": url})
        assert refused.status_code == 400 and reason in refused.json()["error"]["message"], url
    created = ok(client.post("/webhooks", headers=admin, json={
        "url": "https://hooks.example.com/x", "events": ["flag.*"]}), 201)
    assert created["secret"].startswith("whsec_")
    shown = ok(client.get(f"/webhooks/{created['id']}", headers=admin))
    assert "secret" not in shown and created["secret"] not in str(ok(client.get("/webhooks", headers=admin)))
    assert ok(client.patch(f"/webhooks/{created['id']}", headers=admin,
                           json={"active": False}))["active"] is False
    rotated = ok(client.post(f"/webhooks/{created['id']}/rotate-secret", headers=admin))
    assert rotated["secret"] != created["secret"]
    assert client.patch(f"/webhooks/{created['id']}", headers=admin,
                        json={"url": "http://[::1]/"}).status_code == 400
    assert ok(client.get(f"/webhooks/{created['id']}/deliveries", headers=admin))["items"] == []
    assert client.get(f"/webhooks/{created['id']}/deliveries/1", headers=admin).status_code == 404
    assert ok(client.delete(f"/webhooks/{created['id']}", headers=admin)) == {"deleted": created["id"]}


def test_a_trigger_url_turns_the_flag_off_without_a_token_and_is_never_logged(
    client: TestClient, tokens: Tokens, caplog: pytest.LogCaptureFixture
) -> None:
    setup_flag(client, tokens, on=True)
    made = ok(client.post("/flags/checkout/environments/production/triggers",
                          headers=auth(tokens.editor), json={"name": "error rate"}), 201)
    path = made["url"].split("://", 1)[1].split("/", 1)[1]
    assert path.startswith("incoming/triggers/fst_")
    with caplog.at_level(logging.INFO, logger="flagstaff.server.access"):
        caplog.clear()  # the set-up requests above are logged too when an earlier test left INFO on
        fired = ok(client.post("/" + path))
    assert (fired["flag"], fired["environment"], fired["enabled"], fired["version"]) == (
        "checkout", "production", False, 2)
    paths = [str(getattr(r, "path", "")) for r in caplog.records]
    assert paths == ["/incoming/triggers/fst_[redacted]"], paths  # the secret is never logged
    listed = ok(client.get("/triggers", headers=auth(tokens.viewer), params={"flag": "checkout"}))
    assert listed["items"][0]["fire_count"] == 1 and "url" not in listed["items"][0]
    ok(client.delete(f"/triggers/{made['id']}", headers=auth(tokens.editor)))
    assert client.post("/" + path).status_code == 404
    kill = ok(client.get("/flags/checkout/audit", headers=auth(tokens.viewer)))["items"][-1]
    assert kill["action"] == "killed" and kill["context"] == {
        "trigger": made["id"], "bypassed_review": ["production"]}
