"""Resource limits through the API: each answered with a clear 4xx/429."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flagstaff.server.app import create_app
from flagstaff.server.limits import StreamConnectionLimiter
from flagstaff.server.settings import Settings
from tests.server.conftest import ADMIN_SECRET, LiveServer, Tokens, auth


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return dict(body["error"])


def _flag(**extra: Any) -> dict[str, Any]:
    return {"key": "limits-flag", "type": "boolean", **extra}


def test_deeply_nested_json_is_refused_naming_the_limit(client: TestClient) -> None:
    nested: Any = 1
    for _ in range(70):
        nested = {"a": nested}
    body = _flag(variants=None, description="", owner="", nested=nested)
    error = _error(client.post("/flags", json=body, headers=auth(ADMIN_SECRET)), 400, "invalid")
    assert error["details"]["setting"] == "FLAGSTAFF_MAX_JSON_DEPTH"
    assert error["details"]["field"].startswith("nested.a.a")


def test_pathologically_deep_json_never_reaches_the_parser_stack(client: TestClient) -> None:
    body = "[" * 100_000 + "]" * 100_000
    response = client.post("/evaluate", content=body, headers={
        **auth(ADMIN_SECRET), "Content-Type": "application/json"})
    error = _error(response, 400, "invalid")
    assert error["details"]["limit"] == 64


def test_overlong_string_and_list_are_refused_with_the_field(database_url: str) -> None:
    settings = Settings(database_url=database_url, demo=False, bootstrap_token=ADMIN_SECRET,
                        max_string_length=100, max_list_items=5)
    with TestClient(create_app(settings)) as client:
        long_name = _flag(name="x" * 101)
        error = _error(client.post("/flags", json=long_name, headers=auth(ADMIN_SECRET)), 400, "invalid")
        assert error["details"] == {"field": "name", "limit": 100, "setting": "FLAGSTAFF_MAX_STRING_LENGTH"}
        targets = _flag(environments={"production": {"targets": [
            {"variant": "true", "values": [f"u{i}" for i in range(6)]}]}})
        error = _error(client.post("/flags", json=targets, headers=auth(ADMIN_SECRET)), 400, "invalid")
        assert error["details"]["field"] == "environments.production.targets[0].values"
        assert error["details"]["setting"] == "FLAGSTAFF_MAX_LIST_ITEMS"
        # Nothing half-written.
        assert client.get("/flags/limits-flag", headers=auth(ADMIN_SECRET)).status_code == 404


def test_nul_characters_are_refused_on_both_backends(client: TestClient) -> None:
    # Found by fuzzing: PostgreSQL cannot store U+0000 and answered 503 for bad input.
    h = auth(ADMIN_SECRET)
    assert _error(client.get("/flags/a%00b", headers=h), 400, "invalid")["details"]["field"] == "path"
    assert _error(client.get("/flags?q=%00", headers=h), 400, "invalid")["details"]["field"] == "query"
    body = {"name": "bad\u0000name", "kind": "management", "role": "viewer"}
    assert _error(client.post("/tokens", json=body, headers=h), 400, "invalid")["details"]["field"] == "name"


def test_engine_domain_limits_answer_400_through_the_api(client: TestClient) -> None:
    h = auth(ADMIN_SECRET)
    regex = _flag(environments={"production": {"rules": [{"id": "r", "conditions": [
        {"attribute": "email", "operator": "regex", "values": ["a" * 1001]}],
        "serve": {"variant": "true"}}]}})
    error = _error(client.post("/flags", json=regex, headers=h), 400, "invalid")
    assert "rules[0].conditions[0]" in error["details"]["field"]
    rules = [{"id": f"r{i}", "conditions": [], "serve": {"variant": "true"}} for i in range(1001)]
    error = _error(client.post("/flags", json=_flag(environments={"production": {"rules": rules}}),
                               headers=h), 400, "invalid")
    assert error["details"]["field"] == "environments.production.rules"
    values = _flag(environments={"production": {"targets": [
        {"variant": "true", "values": [f"u{i}" for i in range(10_001)]}]}})
    error = _error(client.post("/flags", json=values, headers=h), 400, "invalid")
    assert error["details"]["field"] == "environments.production.targets[0].values"


def test_body_over_the_size_limit_is_413(client: TestClient) -> None:
    body = json.dumps(_flag(description="x" * (1024 * 1024)))
    response = client.post("/flags", content=body, headers={
        **auth(ADMIN_SECRET), "Content-Type": "application/json"})
    _error(response, 413, "too_large")


def test_stream_connections_per_key_are_capped(database_url: str, tokens: Tokens) -> None:
    settings = Settings(database_url=database_url, demo=False, bootstrap_token=ADMIN_SECRET,
                        max_streams_per_key=2)
    app = create_app(settings)
    with TestClient(app) as client:
        limiter: StreamConnectionLimiter = app.state.stream_limiter
        h = auth(tokens.sdk_server)
        with client.stream("GET", "/stream", headers=h) as first, \
                client.stream("GET", "/stream", headers=h) as second:
            assert first.status_code == second.status_code == 200
            third = client.get("/stream", headers=h)
            error = _error(third, 429, "rate_limited")
            assert error["details"]["setting"] == "FLAGSTAFF_MAX_STREAMS_PER_KEY"
            assert third.headers["Retry-After"] == "5"
        deadline = time.monotonic() + 5
        while limiter._open and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not limiter._open  # released when the streams closed


def test_limiter_counts_per_key() -> None:
    limiter = StreamConnectionLimiter(1)
    assert limiter.acquire("a") and limiter.acquire("b")
    assert not limiter.acquire("a")
    limiter.release("a")
    assert limiter.acquire("a")
    assert limiter.open_connections("a") == 1


@pytest.fixture
def slow_server(database_url: str, unused_port: int) -> Any:
    settings = Settings(database_url=database_url, demo=False, bootstrap_token=ADMIN_SECRET,
                        body_timeout_seconds=1.0)
    server = LiveServer(create_app(settings), unused_port).start()
    try:
        yield server, unused_port
    finally:
        server.close()


def test_a_trickling_body_is_cut_off_with_408(slow_server: Any) -> None:
    _, port = slow_server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /flags HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + ADMIN_SECRET.encode() + b"\r\nContent-Length: 1000\r\n\r\n{"
        )
        started = time.monotonic()
        received = b""
        try:
            for _ in range(30):  # a byte every 0.1 s: the server must not wait for all 1000
                sock.sendall(b" ")
                time.sleep(0.1)
        except OSError:
            pass  # the server already closed the connection
        while chunk := sock.recv(65536):
            received += chunk
        elapsed = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b'"request_timeout"' in received
    assert elapsed < 6
