"""Console sign-in, cookies, CSRF, security headers and roles (SQLite and PostgreSQL)."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from flagstaff.store import Store
from tests.console.conftest import ADMIN_SECRET, Secrets, flag, sign_in


def test_pages_need_a_session_and_the_api_answers_401(client: TestClient) -> None:
    page = client.get("/ui/flags?tag=x", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=/ui/flags%3Ftag%3Dx"
    api = client.post("/ui/api/flags", json={"key": "x", "type": "boolean"})
    assert api.status_code == 401
    assert api.json()["error"]["code"] == "unauthorized"
    assert client.get("/ui/events").status_code == 401


def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_clears_it(
    client: TestClient, secrets: Secrets
) -> None:
    form = client.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce is not None
    answer = client.post(
        "/ui/login", data={"nonce": nonce.group(1), "token": ADMIN_SECRET, "next": "/ui/segments"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/segments"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("flagstaff_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain http in this test; see the https test
    page = client.get("/ui/flags")
    assert page.status_code == 200 and "Sign out" in page.text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert csrf is not None

    refused = client.post("/ui/logout", data={"csrf": "wrong"}, follow_redirects=False)
    assert refused.status_code == 403
    out = client.post("/ui/logout", data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/ui/flags", follow_redirects=False).status_code == 303


def test_cookie_is_secure_over_https(app: FastAPI) -> None:
    with TestClient(app, base_url="https://console.example") as client:
        form = client.get("/ui/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
        assert nonce is not None
        answer = client.post("/ui/login", data={"nonce": nonce.group(1), "token": ADMIN_SECRET},
                             follow_redirects=False)
        cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("flagstaff_session="))
        assert "Secure" in cookie


def test_bad_tokens_and_a_stale_form_are_refused_with_the_message_by_the_field(
    client: TestClient, secrets: Secrets
) -> None:
    form = client.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce is not None
    for token in ("fsm_nope", secrets.sdk):
        answer = client.post("/ui/login", data={"nonce": nonce.group(1), "token": token})
        assert answer.status_code == 401
        assert 'id="token-error"' in answer.text and 'aria-invalid="true"' in answer.text
        assert token not in answer.text  # never echoed
        nonce = re.search(r'name="nonce" value="([^"]+)"', answer.text)
        assert nonce is not None
    # Login CSRF: a form posted from elsewhere has no matching nonce cookie.
    client.cookies.clear()
    forged = client.post("/ui/login", data={"nonce": "guess", "token": ADMIN_SECRET})
    assert forged.status_code == 403
    assert "flagstaff_session" not in forged.headers.get("set-cookie", "")


def test_next_only_redirects_inside_the_console(client: TestClient) -> None:
    form = client.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce is not None
    answer = client.post(
        "/ui/login", data={"nonce": nonce.group(1), "token": ADMIN_SECRET, "next": "//evil.example/ui"},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/ui"


def test_security_headers_on_pages_api_answers_and_static_files(client: TestClient) -> None:
    csrf = sign_in(client, ADMIN_SECRET)
    answers = [
        client.get("/ui/login"), client.get("/ui/flags"), client.get("/ui/static/console.js"),
        client.post("/ui/api/flags", json={"key": "Bad Key", "type": "boolean"},
                    headers={"X-CSRF-Token": csrf}),
        client.get("/ui/flags/missing"),
    ]
    for answer in answers:
        assert answer.headers["x-frame-options"] == "DENY"
        csp = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
    # No inline scripts: every <script> either has a src or is a JSON data block.
    page = client.get("/ui/flags").text
    for tag in re.findall(r"<script[^>]*>", page):
        assert "src=" in tag or 'type="application/json"' in tag


def test_csrf_token_is_required_for_every_console_write(
    client: TestClient, store: Store
) -> None:
    csrf = sign_in(client, ADMIN_SECRET)
    store.create_flag(definition=flag(production=False), actor="test")
    writes = [
        ("POST", "/ui/api/flags", {"key": "other", "type": "boolean"}),
        ("PATCH", "/ui/api/flags/new-checkout/environments/production", {"enabled": True}),
        ("POST", "/ui/api/flags/new-checkout/environments/production/kill", None),
        ("POST", "/ui/api/segments", {"key": "beta"}),
        ("POST", "/ui/api/environments", {"key": "qa"}),
        ("POST", "/ui/api/tokens", {"name": "t", "kind": "management", "role": "viewer"}),
    ]
    for header in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": csrf[:-1] + "0"}):
        for method, url, body in writes:
            answer = client.request(method, url, json=body, headers=header)
            assert answer.status_code == 403, (method, url, answer.text)
            assert answer.json()["error"]["code"] == "csrf_failed"
    assert store.get_flag(key="new-checkout").version == 1
    assert len(store.list_audit(target_kind="flag").items) == 1
    ok = client.patch("/ui/api/flags/new-checkout/environments/production", json={"enabled": True},
                      headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200


def test_viewer_sees_no_edit_controls_and_writes_are_refused(
    client: TestClient, store: Store, secrets: Secrets
) -> None:
    store.create_flag(definition=flag(production=True), actor="test")
    csrf = sign_in(client, secrets.viewer)
    listing = client.get("/ui/flags").text
    assert "new-checkout" in listing and "New flag" not in listing
    detail = client.get("/ui/flags/new-checkout").text
    assert "data-toggle" not in detail and "Kill" not in detail and 'id="editor"' not in detail
    assert "/ui/tokens" not in detail  # the admin-only page is not offered
    assert client.get("/ui/tokens").status_code == 403
    for method, url, body in [
        ("PATCH", "/ui/api/flags/new-checkout/environments/production", {"enabled": False}),
        ("POST", "/ui/api/flags/new-checkout/environments/production/kill", None),
        ("PUT", "/ui/api/flags/new-checkout", flag(production=False)),
    ]:
        answer = client.request(method, url, json=body, headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "forbidden"
    assert store.get_flag(key="new-checkout").version == 1
    # Reading is allowed: the sandbox evaluates for viewers.
    sandbox = client.post("/ui/api/evaluate", json={"environment": "production", "context": {"key": "u"}},
                          headers={"X-CSRF-Token": csrf})
    assert sandbox.status_code == 200
    assert sandbox.json()["flags"][0]["reason"] in {"DEFAULT", "FALLTHROUGH"}


def test_editor_edits_flags_but_not_tokens_or_environments(
    client: TestClient, store: Store, secrets: Secrets
) -> None:
    store.create_flag(definition=flag(production=False), actor="test")
    csrf = sign_in(client, secrets.editor)
    detail = client.get("/ui/flags/new-checkout").text
    assert "data-toggle" in detail and 'id="editor"' in detail
    answer = client.patch("/ui/api/flags/new-checkout/environments/production",
                          json={"enabled": True}, headers={"X-CSRF-Token": csrf, "If-Match": '"1"'})
    assert answer.status_code == 200 and answer.headers["etag"] == '"2"'
    record = store.list_audit(target_kind="flag", action="toggled").items[-1]
    assert record.actor.startswith("erin (token ")
    for url, body in [("/ui/api/tokens", {"name": "x", "kind": "management", "role": "admin"}),
                      ("/ui/api/environments", {"key": "qa"})]:
        assert client.post(url, json=body, headers={"X-CSRF-Token": csrf}).status_code == 403
    assert client.get("/ui/tokens").status_code == 403


def test_a_revoked_token_ends_its_console_session(
    client: TestClient, store: Store, secrets: Secrets
) -> None:
    sign_in(client, secrets.editor)
    editor = next(t for t in store.list_tokens() if t.name == "erin")
    store.revoke_token(token_id=editor.id, actor="test")
    assert client.get("/ui/flags", follow_redirects=False).status_code == 303
