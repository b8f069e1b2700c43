"""Console writes: the same store methods as the API, 412 with what changed, field errors."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from flagstaff.store import Store
from tests.console.conftest import ADMIN_SECRET, flag, sign_in


def headers(csrf: str, version: int | None = None) -> dict[str, str]:
    out = {"X-CSRF-Token": csrf}
    if version is not None:
        out["If-Match"] = f'"{version}"'
    return out


def test_stale_version_is_412_telling_what_changed_and_nothing_is_saved(
    client: TestClient, store: Store
) -> None:
    csrf = sign_in(client, ADMIN_SECRET)
    store.create_flag(definition=flag(production=False), actor="test")
    opened = client.get("/ui/flags/new-checkout")
    assert 'data-version="1"' in opened.text
    # Someone else changes the flag after the page was opened.
    store.set_flag_enabled(key="new-checkout", environment="production", enabled=True, actor="bob")
    edited: dict[str, Any] = flag(production=False)
    edited["environments"]["production"]["rules"] = [
        {"conditions": [{"attribute": "country", "operator": "equals", "values": ["DE"]}],
         "serve": {"variant": "true"}}
    ]
    answer = client.put("/ui/api/flags/new-checkout", json=edited, headers=headers(csrf, 1))
    assert answer.status_code == 412
    error = answer.json()["error"]
    assert error["code"] == "precondition_failed"
    assert "changed since you opened it" in error["message"] and "version 2" in error["message"]
    assert error["details"]["current_version"] == 2
    [change] = error["details"]["changes"]
    assert change["actor"] == "bob" and change["action"] == "toggled" and change["version"] == 2
    assert change["diff"] == [{"path": "environments.production.enabled", "op": "replace",
                               "old": False, "new": True}]
    assert store.get_flag(key="new-checkout").definition["environments"]["production"]["rules"] == []
    # Toggles and kills carry the page's version too.
    kill = client.post("/ui/api/flags/new-checkout/environments/production/kill",
                       headers=headers(csrf, 1))
    assert kill.status_code == 412 and kill.json()["error"]["details"]["changes"]
    kill = client.post("/ui/api/flags/new-checkout/environments/production/kill",
                       headers=headers(csrf, 2))
    assert kill.status_code == 200
    assert store.list_audit(target_kind="flag", action="killed").items[-1].actor.startswith(
        "bootstrap admin (token "
    )


def test_validation_errors_name_the_field_the_page_shows_them_next_to(
    client: TestClient, store: Store
) -> None:
    csrf = sign_in(client, ADMIN_SECRET)
    store.create_flag(definition=flag(production=True), actor="test")
    edited: dict[str, Any] = flag(production=True)
    edited["environments"]["production"]["fallthrough"] = {"rollout": {"variations": [
        {"variant": "true", "weight": 60}, {"variant": "false", "weight": 30}]}}
    answer = client.put("/ui/api/flags/new-checkout", json=edited, headers=headers(csrf, 1))
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["details"]["field"] == "environments.production.fallthrough.rollout.variations"
    assert "sum to 90" in error["message"]
    # The editor renders an input whose data-field is that path's prefix (see editor.js); the
    # page itself must carry the definition the editor starts from.
    assert 'id="flag-data"' in client.get("/ui/flags/new-checkout").text
    bad_operator = flag(production=True)
    bad_operator["environments"]["production"]["rules"] = [  # type: ignore[index]
        {"conditions": [{"attribute": "country", "operator": "eq", "values": ["DE"]}],
         "serve": {"variant": "true"}}
    ]
    answer = client.put("/ui/api/flags/new-checkout", json=bad_operator, headers=headers(csrf, 1))
    assert answer.json()["error"]["details"]["field"] == (
        "environments.production.rules[0].conditions[0].operator"
    )
    create = client.post("/ui/api/flags", json={"key": "Bad Key", "type": "boolean"},
                         headers=headers(csrf))
    assert create.status_code == 400 and create.json()["error"]["details"]["field"] == "key"
    assert store.get_flag(key="new-checkout").version == 1


def test_create_edit_and_archive_through_the_console_are_audited_as_the_person(
    client: TestClient, store: Store
) -> None:
    csrf = sign_in(client, ADMIN_SECRET)
    created = client.post("/ui/api/flags", json={"key": "banner", "type": "string",
                                                 "variants": {"a": "A", "b": "B"},
                                                 "off_variant": "a", "tags": ["web"]},
                          headers=headers(csrf))
    assert created.status_code == 201, created.text
    body = created.json()["flag"]
    body["environments"] = {"production": {"enabled": True, "rules": [
        {"id": "de", "conditions": [{"attribute": "country", "operator": "in", "values": ["DE", "AT"]}],
         "serve": {"rollout": {"variations": [{"variant": "a", "weight": 50}, {"variant": "b", "weight": 50}]}}}
    ]}}
    saved = client.put("/ui/api/flags/banner", json=body, headers=headers(csrf, 1))
    assert saved.status_code == 200, saved.text
    assert saved.json()["flag"]["version"] == 2
    archived = client.post("/ui/api/flags/banner/archive", headers=headers(csrf, 2))
    assert archived.status_code == 200 and archived.json()["flag"]["state"] == "archived"
    actions = [r.action for r in store.list_audit(target_key="banner").items]
    assert actions == ["created", "updated", "archived"]
    admin = next(t for t in store.list_tokens() if t.name == "bootstrap admin")
    assert {r.actor for r in store.list_audit(target_key="banner").items} == {
        f"bootstrap admin (token {admin.id})"
    }
    history = client.get("/ui/flags/banner/history").text
    assert "environments.production.rules" in history or "environments.production" in history
    assert "<del>" in history and "archived" in history


def test_tokens_show_the_secret_once_and_revoke(client: TestClient, store: Store) -> None:
    csrf = sign_in(client, ADMIN_SECRET)
    made = client.post("/ui/api/tokens", json={"name": "ci", "kind": "sdk-server",
                                               "environment": "production"}, headers=headers(csrf))
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    assert secret.startswith("fss_")
    page = client.get("/ui/tokens").text
    assert "ci" in page and secret not in page
    revoked = client.delete(f"/ui/api/tokens/{made.json()['token']['id']}", headers=headers(csrf))
    assert revoked.status_code == 200 and revoked.json()["token"]["revoked_at"]
    assert store.authenticate(secret=secret) is None
    missing_name = client.post("/ui/api/tokens", json={"name": " ", "kind": "management"},
                               headers=headers(csrf))
    assert missing_name.json()["error"]["details"]["field"] == "name"


def test_sandbox_evaluates_every_flag_and_names_bad_input(client: TestClient, store: Store) -> None:
    csrf = sign_in(client, ADMIN_SECRET)
    definition: dict[str, Any] = flag(production=True)
    definition["environments"]["production"]["rules"] = [
        {"id": "de", "conditions": [{"attribute": "country", "operator": "equals", "values": ["DE"]}],
         "serve": {"variant": "true"}}]
    store.create_flag(definition=definition, actor="test")
    store.create_flag(definition=flag("off-flag", production=False), actor="test")
    answer = client.post("/ui/api/evaluate", json={"environment": "production",
                                                   "context": {"key": "u1", "country": "DE"}},
                         headers=headers(csrf))
    flags = {f["key"]: f for f in answer.json()["flags"]}
    assert flags["new-checkout"]["value"] is True and flags["new-checkout"]["reason"] == "RULE_MATCH"
    assert flags["new-checkout"]["rule_id"] == "de"
    assert flags["off-flag"]["reason"] == "DISABLED"
    for body, field in [({"environment": "production", "context": [1]}, "context"),
                        ({"environment": "nope", "context": {}}, "environment")]:
        bad = client.post("/ui/api/evaluate", json=body, headers=headers(csrf))
        assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == field


def test_list_filters_and_fragments(client: TestClient, store: Store) -> None:
    sign_in(client, ADMIN_SECRET)
    store.create_flag(definition=flag("alpha", production=True, staging=False), actor="test")
    store.create_flag(definition={**flag("beta", production=False), "tags": ["other"]}, actor="test")
    listing = client.get("/ui/flags").text
    assert 'id="row-alpha"' in listing and 'id="row-beta"' in listing
    assert 'title="production: on"' in listing
    only_on = client.get("/ui/flags?environment=production&status=on").text
    assert 'id="row-alpha"' in only_on and 'id="row-beta"' not in only_on
    tagged = client.get("/ui/flags?tag=other").text
    assert 'id="row-beta"' in tagged and 'id="row-alpha"' not in tagged
    searched = client.get("/ui/flags?q=alp").text
    assert 'id="row-alpha"' in searched and 'id="row-beta"' not in searched
    row = client.get("/ui/fragments/flag-row/alpha?environment=staging")
    assert row.status_code == 200 and row.text.strip().startswith('<tr id="row-alpha"')
    assert 'title="staging: off"' in row.text and "production" not in row.text
    status = client.get("/ui/fragments/flag-status/alpha").text
    assert 'data-toggle="production"' in status and 'aria-checked="true"' in status
