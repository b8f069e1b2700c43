"""``POST /relay/keys``: a relay learns which SDK keys are live, by their SHA-256 digests."""

from __future__ import annotations

import hashlib

from tests.server.conftest import ADMIN_SECRET, TestClient, Tokens, auth, create_token


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def test_live_sdk_keys_are_named_others_are_absent(client: TestClient, tokens: Tokens) -> None:
    doomed = create_token(client, "sdk-client", environment="staging", name="doomed")
    asked = [digest(tokens.sdk_server), digest(tokens.sdk_client), digest(doomed["secret"]),
             digest(tokens.admin), digest("fss_never-issued-0123456789")]
    answer = client.post("/relay/keys", json={"hashes": asked}, headers=auth(tokens.sdk_server))
    assert answer.status_code == 200, answer.text
    keys = answer.json()["keys"]
    assert keys[digest(tokens.sdk_server)]["kind"] == "sdk-server"
    assert keys[digest(tokens.sdk_client)] == {
        "kind": "sdk-client", "environment": "production",
        "token_id": keys[digest(tokens.sdk_client)]["token_id"],
    }
    assert keys[digest(doomed["secret"])]["environment"] == "staging"
    # Management tokens and unknown keys are absent, not described.
    assert set(keys) == set(asked[:3])
    client.delete(f"/tokens/{doomed['id']}", headers=auth(ADMIN_SECRET))
    again = client.post("/relay/keys", json={"hashes": asked}, headers=auth(tokens.sdk_server))
    assert digest(doomed["secret"]) not in again.json()["keys"]


def test_only_server_side_keys_may_ask_and_digests_are_checked(
    client: TestClient, tokens: Tokens
) -> None:
    body = {"hashes": [digest(tokens.sdk_server)]}
    assert client.post("/relay/keys", json=body).status_code == 401
    assert client.post("/relay/keys", json=body, headers=auth(tokens.sdk_client)).status_code == 403
    assert client.post("/relay/keys", json=body, headers=auth(tokens.admin)).status_code == 403
    bad = client.post("/relay/keys", json={"hashes": ["NOT-HEX"]}, headers=auth(tokens.sdk_server))
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "hashes[0]"
    many = client.post("/relay/keys", json={"hashes": ["0" * 64] * 1001},
                       headers=auth(tokens.sdk_server))
    assert many.status_code == 400


def test_a_relay_learns_the_browser_access_of_its_own_environment_only(
    client: TestClient, tokens: Tokens,
) -> None:
    admin = auth(ADMIN_SECRET)
    changed = client.patch("/environments/staging/client-access", headers=admin, json={
        "allowed_origins": ["https://staging.example.com"], "secure_mode": True})
    assert changed.status_code == 200, changed.text
    client.patch("/environments/production/client-access", headers=admin,
                 json={"allowed_origins": ["https://shop.example.com"]})
    staging_secret = client.get("/environments/staging/secure-mode-secret",
                                headers=admin).json()["secret"]
    staging_key = create_token(client, "sdk-server", environment="staging")["secret"]

    staging = client.get("/relay/access", headers=auth(staging_key))
    assert staging.status_code == 200, staging.text
    assert staging.json() == {"environment": "staging",
                              "allowed_origins": ["https://staging.example.com"],
                              "secure_mode": True, "secure_mode_secret": staging_secret}
    production = client.get("/relay/access", headers=auth(tokens.sdk_server))
    assert production.json() == {"environment": "production",
                                 "allowed_origins": ["https://shop.example.com"],
                                 "secure_mode": False, "secure_mode_secret": None}
    # A key of another environment gets nothing of staging's, asking by name or not.
    other = client.get("/relay/access", params={"environment": "staging"},
                       headers=auth(tokens.sdk_server))
    assert other.status_code == 403 and staging_secret not in other.text
    assert "staging.example.com" not in other.text
    # Client-side keys (pages) and management tokens never see a secure-mode secret.
    for secret in (tokens.sdk_client, tokens.admin):
        refused = client.get("/relay/access", headers=auth(secret))
        assert refused.status_code == 403 and "secure_mode_secret" not in refused.text
    assert client.get("/relay/access").status_code == 401
