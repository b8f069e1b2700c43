"""Security: auth-failure rate limiting, secrets never logged or echoed,
constant-time comparison, CORS per origin, audit of token creation and revocation.
(The authorization matrix for every route and principal is ``test_auth_matrix.py``.)"""

from __future__ import annotations

import hmac
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flagstaff.server.app import create_app
from flagstaff.server.ratelimit import AuthFailureLimiter
from flagstaff.server.settings import Settings
from flagstaff.store import tokens as token_module
from tests.server.conftest import ADMIN_SECRET, Tokens, auth

GUESS = "fsm_this-is-a-wrong-guess-0123456789abcdef012345"


def _app(database_url: str, **overrides: Any) -> Any:
    return create_app(Settings(database_url=database_url, demo=False,
                               bootstrap_token=ADMIN_SECRET, **overrides))


def test_auth_failures_are_rate_limited_per_ip(database_url: str) -> None:
    with TestClient(_app(database_url, max_auth_failures=5)) as client:
        for _ in range(50):  # successes never count
            assert client.get("/flags", headers=auth(ADMIN_SECRET)).status_code == 200
        for _ in range(5):
            assert client.get("/flags", headers=auth(GUESS)).status_code == 401
        limited = client.get("/flags", headers=auth(GUESS))
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        # Blocked even with a valid token (a guesser must not learn which guess was right)...
        assert client.get("/flags", headers=auth(ADMIN_SECRET)).status_code == 429
        # ... but the probes stay open.
        assert client.get("/health").status_code == 200


def test_the_failure_window_expires_and_other_ips_are_unaffected() -> None:
    now = [1000.0]
    limiter = AuthFailureLimiter(limit=3, window_seconds=60, clock=lambda: now[0])
    for _ in range(3):
        limiter.record_failure("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == pytest.approx(60)
    assert limiter.retry_after("10.0.0.2") is None
    now[0] += 61
    assert limiter.retry_after("10.0.0.1") is None


def test_the_limiter_memory_is_bounded() -> None:
    limiter = AuthFailureLimiter(limit=3, window_seconds=60, max_tracked=100)
    for i in range(1000):
        limiter.record_failure(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._windows) <= 100


def test_secrets_are_never_logged_or_echoed(
    client: TestClient, tokens: Tokens, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []
    for secret in (tokens.admin, tokens.sdk_server, tokens.revoked, GUESS):
        answers.append(client.get("/flags", headers=auth(secret)).text)
        answers.append(client.get("/sdk/flags", headers=auth(secret)).text)
        # A secret pasted into a body, valid or not, is not echoed in the error either.
        answers.append(client.post("/evaluate", json={"flag": secret * 3, "context": {}},
                                   headers=auth(tokens.sdk_server)).text)
        answers.append(client.post("/flags", json={"key": secret + " !", "type": "boolean"},
                                   headers=auth(tokens.admin)).text)
    created = client.post("/tokens", json={"name": "ci", "kind": "sdk-client",
                                           "environment": "production"}, headers=auth(ADMIN_SECRET))
    new_secret = created.json()["secret"]  # shown once, in this answer only
    listed = client.get("/tokens", headers=auth(ADMIN_SECRET)).text
    logged = "\n".join(r.getMessage() + " " + str(r.__dict__) for r in caplog.records)
    for secret in (tokens.admin, tokens.sdk_server, tokens.revoked, GUESS, new_secret):
        assert secret not in logged
        assert all(secret not in answer for answer in answers), secret
        assert secret not in listed
    assert caplog.records  # the access log did run


def test_token_lookup_uses_a_constant_time_comparison(
    client: TestClient, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, Any]] = []
    original = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return original(a, b)

    # Replace the token module's view of hmac only: patching the global module would leak the
    # spy into every other thread and test in the process.
    monkeypatch.setattr(token_module, "hmac", SimpleNamespace(compare_digest=spy))
    assert client.get("/flags", headers=auth(tokens.viewer)).status_code == 200
    assert calls and all(len(a) == len(b) == 64 for a, b in calls)  # digests, not secrets


def test_cors_is_off_by_default(client: TestClient) -> None:
    preflight = client.options("/evaluate", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    simple = client.get("/health", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_cors_allows_only_configured_origins(database_url: str) -> None:
    with TestClient(_app(database_url, cors_origins="https://app.example")) as client:
        allowed = client.options("/evaluate", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        refused = client.options("/evaluate", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers


def test_token_creation_and_revocation_are_audited(client: TestClient) -> None:
    created = client.post("/tokens", json={"name": "audited", "kind": "management", "role": "viewer"},
                          headers=auth(ADMIN_SECRET)).json()
    assert client.delete(f"/tokens/{created['id']}", headers=auth(ADMIN_SECRET)).status_code == 200
    items = client.get("/audit", params={"kind": "token"}, headers=auth(ADMIN_SECRET)).json()["items"]
    mine = [i for i in items if i["target_key"] == created["id"]]
    assert [i["action"] for i in mine] == ["token_created", "token_revoked"]
    assert all("admin" in i["actor"] or "token" in i["actor"] for i in mine)
    assert created["secret"] not in str(mine)
