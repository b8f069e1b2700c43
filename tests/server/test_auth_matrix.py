"""Authorization matrix over every route of the app.

The matrix is keyed by (method, path template) and checked against ``app.routes``, so a route
added without an entry here fails the test instead of shipping unguarded.
"""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from tests.server.conftest import Tokens, auth

PUBLIC, VIEWER, EDITOR, ADMIN, SDK_SERVER, EVALUATE, SDK_ANY, SIGNED_URL = (
    "public", "viewer", "editor", "admin", "sdk-server", "evaluate", "sdk-any", "signed-url",
)

MATRIX: dict[tuple[str, str], str] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/favicon.ico"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/assets/{name}"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,  # guarded only when FLAGSTAFF_STREAM_METRICS_TOKEN is set
    ("GET", "/flags"): VIEWER,
    ("POST", "/flags"): EDITOR,
    ("GET", "/flags/{key}"): VIEWER,
    ("PUT", "/flags/{key}"): EDITOR,
    ("PATCH", "/flags/{key}"): EDITOR,
    ("DELETE", "/flags/{key}"): EDITOR,
    ("POST", "/flags/{key}/restore"): EDITOR,
    ("PATCH", "/flags/{key}/environments/{environment}"): EDITOR,
    ("POST", "/flags/{key}/environments/{environment}/kill"): EDITOR,
    ("GET", "/flags/{key}/audit"): VIEWER,
    ("GET", "/flags/{key}/code-references"): VIEWER,
    ("POST", "/code-references"): EDITOR,
    ("GET", "/code-references"): VIEWER,
    ("DELETE", "/code-references"): EDITOR,
    ("GET", "/audit"): VIEWER,
    ("GET", "/segments"): VIEWER,
    ("POST", "/segments"): EDITOR,
    ("GET", "/segments/{key}"): VIEWER,
    ("PUT", "/segments/{key}"): EDITOR,
    ("DELETE", "/segments/{key}"): EDITOR,
    ("GET", "/environments"): VIEWER,
    ("POST", "/environments"): ADMIN,
    ("GET", "/environments/{key}"): VIEWER,
    ("DELETE", "/environments/{key}"): ADMIN,
    ("GET", "/environments/{key}/client-access"): VIEWER,
    ("PATCH", "/environments/{key}/client-access"): ADMIN,
    ("GET", "/environments/{key}/secure-mode-secret"): ADMIN,
    ("POST", "/environments/{key}/secure-mode-secret"): ADMIN,
    ("GET", "/tokens"): ADMIN,
    ("POST", "/tokens"): ADMIN,
    ("DELETE", "/tokens/{token_id}"): ADMIN,
    ("POST", "/evaluate"): EVALUATE,
    ("POST", "/evaluate/all"): EVALUATE,
    ("POST", "/ofrep/v1/evaluate/flags/{key}"): EVALUATE,
    ("POST", "/ofrep/v1/evaluate/flags"): EVALUATE,
    # The signed token in the URL is the credential (tests/server/test_ofrep_stream.py).
    ("GET", "/ofrep/v1/event-stream"): SIGNED_URL,
    ("GET", "/sdk/flags"): SDK_SERVER,
    ("GET", "/stream"): SDK_SERVER,
    ("WEBSOCKET", "/ws"): SDK_SERVER,
    ("POST", "/exposures"): SDK_ANY,
    ("POST", "/track"): SDK_ANY,
    ("POST", "/evaluation-counts"): SDK_ANY,
    ("GET", "/flags/{key}/exposures"): VIEWER,
    ("GET", "/experiments"): VIEWER,
    ("GET", "/experiments/{key}"): VIEWER,
    ("PUT", "/experiments/{key}"): EDITOR,
    ("POST", "/experiments/{key}/start"): EDITOR,
    ("POST", "/experiments/{key}/pause"): EDITOR,
    ("POST", "/experiments/{key}/resume"): EDITOR,
    ("POST", "/experiments/{key}/complete"): EDITOR,
    ("GET", "/experiments/{key}/results"): VIEWER,
    ("GET", "/experiments/{key}/runs"): VIEWER,
    ("POST", "/fleet/reports"): SDK_ANY,
    ("GET", "/fleet"): VIEWER,
    ("GET", "/fleet/instances"): VIEWER,
    ("POST", "/relay/keys"): SDK_SERVER,
    ("GET", "/relay/access"): SDK_SERVER,
    # Governed change (docs/governance.md)
    ("GET", "/policies"): VIEWER,
    ("GET", "/environments/{key}/policy"): VIEWER,
    ("PUT", "/environments/{key}/policy"): ADMIN,
    ("POST", "/change-requests"): EDITOR,
    ("GET", "/change-requests"): VIEWER,
    ("GET", "/change-requests/{change_id}"): VIEWER,
    ("POST", "/change-requests/{change_id}/approve"): EDITOR,
    ("POST", "/change-requests/{change_id}/reject"): EDITOR,
    ("POST", "/change-requests/{change_id}/comments"): EDITOR,
    ("POST", "/change-requests/{change_id}/cancel"): EDITOR,
    ("POST", "/change-requests/{change_id}/apply"): EDITOR,
    ("POST", "/schedules"): EDITOR,
    ("GET", "/schedules"): VIEWER,
    ("GET", "/schedules/{schedule_id}"): VIEWER,
    ("PATCH", "/schedules/{schedule_id}"): EDITOR,
    ("DELETE", "/schedules/{schedule_id}"): EDITOR,
    ("POST", "/webhooks"): ADMIN,
    ("GET", "/webhooks"): ADMIN,
    ("GET", "/webhooks/{webhook_id}"): ADMIN,
    ("PATCH", "/webhooks/{webhook_id}"): ADMIN,
    ("DELETE", "/webhooks/{webhook_id}"): ADMIN,
    ("POST", "/webhooks/{webhook_id}/rotate-secret"): ADMIN,
    ("POST", "/webhooks/{webhook_id}/ping"): ADMIN,
    ("GET", "/webhooks/{webhook_id}/deliveries"): ADMIN,
    ("GET", "/webhooks/{webhook_id}/deliveries/{delivery_id}"): ADMIN,
    ("POST", "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): ADMIN,
    ("POST", "/flags/{key}/environments/{environment}/triggers"): EDITOR,
    ("GET", "/triggers"): VIEWER,
    ("DELETE", "/triggers/{trigger_id}"): EDITOR,
    # The secret in the URL is the credential (an alerting system calls it without a token).
    ("POST", "/incoming/triggers/{secret}"): PUBLIC,
}
# Opening these with a valid key starts an endless stream; only the refusals are checked.
STREAMING = {("GET", "/stream"), ("WEBSOCKET", "/ws")}

ALLOWED = {
    VIEWER: {"admin", "editor", "viewer"},
    EDITOR: {"admin", "editor"},
    ADMIN: {"admin"},
    SDK_SERVER: {"sdk_server"},
    EVALUATE: {"admin", "editor", "viewer", "sdk_server", "sdk_client"},
    SDK_ANY: {"sdk_server", "sdk_client"},
}
ALL_TOKENS = ("admin", "editor", "viewer", "sdk_server", "sdk_client")


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    # FastAPI resolves included routers lazily; iter_route_contexts flattens them with the
    # effective (prefixed) paths.
    found: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        route, path = context.original_route, context.path
        assert path is not None
        if isinstance(route, WebSocketRoute | APIWebSocketRoute):
            found.add(("WEBSOCKET", path))
        elif isinstance(route, APIRoute | Route):
            found |= {(m, path) for m in (route.methods or set()) if m != "HEAD"}
        else:
            raise AssertionError(f"unexpected route type {type(route).__name__} at {path}")
    return found


def concrete(path: str) -> str:
    # Numeric ids (change requests, schedules, webhooks) take "1" so the path parses.
    return re.sub(r"\{[^}]+\}", lambda m: "1" if m.group(0).endswith("_id}") else "x", path)


def test_every_route_has_a_matrix_entry(app: FastAPI) -> None:
    # The console (/ui) authenticates by session cookie, not bearer token; every one of its
    # routes is walked by tests/console/test_route_guard.py instead.
    routes = {(m, p) for m, p in app_routes(app) if not p.startswith("/ui")}
    assert routes - MATRIX.keys() == set(), "routes missing from the authorization matrix"
    assert MATRIX.keys() - routes == set(), "matrix entries for routes that do not exist"


def status_for(client: TestClient, method: str, path: str, secret: str | None) -> int:
    headers = auth(secret) if secret else {}
    if method == "WEBSOCKET":
        try:
            with client.websocket_connect(concrete(path), headers=headers) as ws:
                ws.receive_text()
        except WebSocketDenialResponse as denial:
            return int(denial.status_code)
        except WebSocketDisconnect as closed:
            return int({1008: 403}.get(closed.code, closed.code))
        return 101
    return int(client.request(method, concrete(path), headers=headers).status_code)


@pytest.mark.parametrize(("method", "path"),
                         sorted(k for k, v in MATRIX.items() if v not in (PUBLIC, SIGNED_URL)))
def test_guarded_route_refuses_bad_and_insufficient_tokens(
    client: TestClient, tokens: Tokens, method: str, path: str
) -> None:
    needed = MATRIX[(method, path)]
    outcomes = {
        "no token": status_for(client, method, path, None),
        "wrong token": status_for(client, method, path, "fsm_not-a-real-token"),
        "revoked token": status_for(client, method, path, tokens.revoked),
    }
    expected_401 = {name: (401, 403) if method == "WEBSOCKET" else (401,) for name in outcomes}
    for name, status in outcomes.items():
        assert status in expected_401[name], f"{method} {path} with {name}: {status}"
    for token_name in ALL_TOKENS:
        allowed = token_name in ALLOWED[needed]
        if allowed and (method, path) in STREAMING:
            continue
        status = status_for(client, method, path, getattr(tokens, token_name))
        if allowed:
            assert status not in (401, 403), f"{method} {path} refused {token_name}: {status}"
        else:
            assert status == 403, f"{method} {path} let {token_name} through: {status}"


@pytest.mark.parametrize(("method", "path"), sorted(k for k, v in MATRIX.items() if v == PUBLIC))
def test_public_routes_need_no_token(client: TestClient, method: str, path: str) -> None:
    assert status_for(client, method, path, None) not in (401, 403)


@pytest.mark.parametrize(("method", "path"),
                         sorted(k for k, v in MATRIX.items() if v == SIGNED_URL))
def test_a_bearer_token_does_not_open_a_signed_url_route(
    client: TestClient, tokens: Tokens, method: str, path: str
) -> None:
    for token_name in ALL_TOKENS:
        secret = getattr(tokens, token_name)
        forged = client.request(method, concrete(path) + "?token=forged", headers=auth(secret))
        assert forged.status_code == 401, f"{path} let {token_name} through a forged URL token"
        missing = client.request(method, concrete(path), headers=auth(secret))
        assert missing.status_code in (400, 401), f"{path} without its token: {missing.status_code}"


def test_insecure_dev_mode_acts_as_admin_without_a_token(database_url: str) -> None:
    from flagstaff.server.app import create_app
    from flagstaff.server.settings import Settings

    settings = Settings(database_url=database_url, demo=False, insecure_dev=True, host="0.0.0.0")
    assert settings.host == "127.0.0.1"
    with TestClient(create_app(settings)) as client:
        response = client.post("/flags", json={"key": "dev-flag", "type": "boolean"})
        assert response.status_code == 201, response.text
        audit = client.get("/flags/dev-flag/audit").json()["items"]
        assert audit[0]["actor"].startswith("insecure-dev")
        # a bad token is still refused: insecure mode only stands in for a missing one
        assert client.get("/flags", headers=auth("fsm_nope")).status_code == 401
