"""Flag management over HTTP: CRUD, filters, paging, toggle/kill, archive."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.builders import cond, flag
from tests.server.conftest import Tokens, auth


def checkout(key: str = "new-checkout") -> dict[str, Any]:
    return (
        flag(key).boolean().name("New checkout").description("the new checkout flow")
        .tags("checkout", "web").owner("team-payments")
        .env("production", lambda e: e.on().rule("beta", cond("tenant.id", "in", "t1"), serve="true"))
        .build()
    )


def create(client: TestClient, tokens: Tokens, definition: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/flags", json=definition, headers=auth(tokens.editor))
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_create_returns_201_with_etag_and_duplicate_is_409(client: TestClient, tokens: Tokens) -> None:
    response = client.post("/flags", json=checkout(), headers=auth(tokens.editor))
    assert response.status_code == 201
    assert response.headers["ETag"] == '"1"'
    assert response.json()["version"] == 1
    again = client.post("/flags", json=checkout(), headers=auth(tokens.editor))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "flag_exists"


def test_get_returns_full_definition_with_rules_and_state(client: TestClient, tokens: Tokens) -> None:
    create(client, tokens, checkout())
    response = client.get("/flags/new-checkout", headers=auth(tokens.viewer))
    assert response.status_code == 200
    body = response.json()
    assert response.headers["ETag"] == '"1"'
    assert body["state"] == "active"
    assert body["owner"] == "team-payments"
    rule = body["environments"]["production"]["rules"][0]
    assert rule["id"] == "beta"
    assert rule["conditions"][0]["values"] == ["t1"]
    assert {"created_at", "updated_at"} <= body.keys()
    missing = client.get("/flags/nope", headers=auth(tokens.viewer))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_list_filters_and_cursor_pagination(client: TestClient, tokens: Tokens) -> None:
    for i in range(5):
        create(client, tokens, flag(f"flag-{i}").boolean().tags("even" if i % 2 == 0 else "odd").build())
    create(client, tokens, flag("search-me").boolean().description("needle in here").build())
    assert client.delete("/flags/flag-4", headers=auth(tokens.editor)).status_code == 200
    h = auth(tokens.viewer)

    keys: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/flags", params=params, headers=h).json()
        assert len(page["items"]) <= 2
        keys += [item["key"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert keys == ["flag-0", "flag-1", "flag-2", "flag-3", "flag-4", "search-me"]

    def listed(**params: Any) -> list[str]:
        response = client.get("/flags", params=params, headers=h)
        assert response.status_code == 200, response.text
        return [item["key"] for item in response.json()["items"]]

    assert listed(state="archived") == ["flag-4"]
    assert "flag-4" not in listed(state="active")
    assert listed(tag="even") == ["flag-0", "flag-2", "flag-4"]
    assert listed(q="NEEDLE") == ["search-me"]
    bad = client.get("/flags", params={"state": "deleted"}, headers=h)
    assert bad.status_code == 400
    assert bad.json()["error"]["details"]["field"] == "state"


def test_list_sorted_over_every_flag_and_paged_in_that_order(client: TestClient, tokens: Tokens) -> None:
    for i, name in enumerate(["Delta", "alpha", "Charlie", "bravo", "alpha"]):
        create(client, tokens, flag(f"k{i}").boolean().name(name).build())
    h = auth(tokens.viewer)
    keys: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "sort": "-name"} | ({"cursor": cursor} if cursor else {})
        page = client.get("/flags", params=params, headers=h).json()
        keys += [item["key"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert keys == ["k0", "k2", "k3", "k1", "k4"]  # ties (alpha) in key order
    for bad in ("colour", "status:", "-"):
        answer = client.get("/flags", params={"sort": bad}, headers=h)
        assert answer.status_code == 400, bad
        error = answer.json()["error"]
        assert error["details"]["field"] == "sort" and "status:<environment>" in error["message"]
    stale = client.get("/flags", params={"state": "stale", "sort": "colour"}, headers=h)
    assert stale.status_code == 400


def test_put_replaces_and_patch_merges(client: TestClient, tokens: Tokens) -> None:
    create(client, tokens, checkout())
    replacement = flag("new-checkout").boolean().name("Replaced").build()
    put = client.put("/flags/new-checkout", json=replacement, headers=auth(tokens.editor))
    assert put.status_code == 200, put.text
    assert put.headers["ETag"] == '"2"'
    assert put.json()["name"] == "Replaced"
    assert put.json()["environments"] == {}
    assert put.json()["tags"] == []

    patch = client.patch(
        "/flags/new-checkout", json={"description": "patched", "tags": ["x"]}, headers=auth(tokens.editor)
    )
    assert patch.status_code == 200, patch.text
    body = patch.json()
    assert (body["name"], body["description"], body["tags"], body["version"]) == ("Replaced", "patched", ["x"], 3)


def test_key_change_is_refused_with_a_clear_message(client: TestClient, tokens: Tokens) -> None:
    create(client, tokens, checkout())
    for method in ("put", "patch"):
        response = client.request(
            method, "/flags/new-checkout", json=checkout("renamed"), headers=auth(tokens.editor)
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["details"]["field"] == "key"
        assert "immutable" in error["message"]
    assert client.get("/flags/new-checkout", headers=auth(tokens.viewer)).json()["version"] == 1
    assert client.get("/flags/renamed", headers=auth(tokens.viewer)).status_code == 404


def test_toggle_and_kill_are_one_small_request(client: TestClient, tokens: Tokens) -> None:
    create(client, tokens, checkout())
    on = client.patch(
        "/flags/new-checkout/environments/staging", json={"enabled": True}, headers=auth(tokens.editor)
    )
    assert on.status_code == 200, on.text
    assert on.json()["environments"]["staging"]["enabled"] is True
    kill = client.post("/flags/new-checkout/environments/production/kill", headers=auth(tokens.editor))
    assert kill.status_code == 200, kill.text
    assert kill.json()["environments"]["production"]["enabled"] is False
    # the rules survive a kill: turning it back on restores the targeting
    assert kill.json()["environments"]["production"]["rules"][0]["id"] == "beta"
    actions = [
        r["action"] for r in client.get("/flags/new-checkout/audit", headers=auth(tokens.viewer)).json()["items"]
    ]
    assert actions == ["created", "toggled", "killed"]
    bad = client.patch(
        "/flags/new-checkout/environments/staging", json={"enabled": "yes"}, headers=auth(tokens.editor)
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["details"]["field"] == "enabled"


def test_archive_excludes_from_evaluation_and_restore_brings_it_back(
    client: TestClient, tokens: Tokens
) -> None:
    create(client, tokens, flag("gate").boolean().on("production").build())

    def evaluate() -> dict[str, Any]:
        response = client.post(
            "/evaluate", json={"flag": "gate", "context": {"key": "u1"}, "default": False},
            headers=auth(tokens.sdk_server),
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    assert evaluate()["value"] is True
    archived = client.delete("/flags/gate", headers=auth(tokens.editor))
    assert archived.status_code == 200
    assert archived.json()["state"] == "archived"
    after = evaluate()
    assert (after["value"], after["reason"], after["error_code"]) == (False, "ERROR", "FLAG_NOT_FOUND")
    # kept for audit and still readable
    assert client.get("/flags/gate", headers=auth(tokens.viewer)).json()["state"] == "archived"
    restored = client.post("/flags/gate/restore", headers=auth(tokens.editor))
    assert restored.status_code == 200
    assert restored.json()["state"] == "active"
    assert evaluate()["value"] is True


def test_stale_if_match_is_412_and_changes_nothing(client: TestClient, tokens: Tokens) -> None:
    create(client, tokens, checkout())
    h = auth(tokens.editor)
    for header in ('"1"', 'W/"2"', "3"):
        response = client.patch("/flags/new-checkout", json={"description": header}, headers=h | {"If-Match": header})
        assert response.status_code == 200, response.text
    stale = client.patch("/flags/new-checkout", json={"description": "lost"}, headers=h | {"If-Match": '"2"'})
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "precondition_failed"
    stale_put = client.put("/flags/new-checkout", json=checkout(), headers=h | {"If-Match": "1"})
    assert stale_put.status_code == 412
    stale_toggle = client.patch(
        "/flags/new-checkout/environments/production", json={"enabled": False}, headers=h | {"If-Match": "1"}
    )
    assert stale_toggle.status_code == 412
    current = client.get("/flags/new-checkout", headers=auth(tokens.viewer)).json()
    assert (current["version"], current["description"]) == (4, "3")
    anything = client.patch("/flags/new-checkout", json={"owner": "o"}, headers=h | {"If-Match": "*"})
    assert anything.status_code == 200
    audit = client.get("/flags/new-checkout/audit", headers=auth(tokens.viewer)).json()["items"]
    assert len(audit) == 5
    garbage = client.patch("/flags/new-checkout", json={"owner": "p"}, headers=h | {"If-Match": "abc"})
    assert garbage.status_code == 400
    assert garbage.json()["error"]["details"]["field"] == "If-Match"
