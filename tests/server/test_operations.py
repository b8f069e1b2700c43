"""Health, readiness, OpenAPI documentation and settings."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from flagstaff.errors import Unavailable
from flagstaff.server.__main__ import parse_args
from flagstaff.server.app import create_app
from flagstaff.server.logging_setup import JsonFormatter
from flagstaff.server.settings import Settings
from flagstaff.store import Store


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}


def test_ready_is_503_with_error_shape_when_the_database_is_down(settings: Settings) -> None:
    store = Store.open(settings.database_url)
    try:
        with TestClient(create_app(settings, store=store)) as client:
            def down() -> None:
                raise Unavailable("connection refused")

            store.ping = down  # type: ignore[method-assign]
            response = client.get("/ready")
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "unavailable"
            assert client.get("/health").status_code == 200
    finally:
        store.close()


def test_openapi_documents_auth_and_the_error_shape(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    create = spec["paths"]["/flags"]["post"]
    assert create["security"] == [{"HTTPBearer": []}]
    assert create["responses"]["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "If-Match" in str(spec["paths"]["/flags/{key}"]["put"]["parameters"]) or "if-match" in str(
        spec["paths"]["/flags/{key}"]["put"]["parameters"]
    )
    assert "/ofrep/v1/evaluate/flags/{key}" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_cli_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAGSTAFF_PORT", "9000")
    monkeypatch.setenv("FLAGSTAFF_DATABASE_URL", "sqlite:///env.db")
    settings = parse_args(["--port", "9100", "--insecure-dev", "--host", "0.0.0.0"])
    assert (settings.port, settings.database_url, settings.insecure_dev) == (9100, "sqlite:///env.db", True)
    assert settings.host == "127.0.0.1"  # insecure mode never binds beyond localhost
    assert Settings().max_body_bytes == 1024 * 1024


def test_json_log_lines_carry_request_id_and_never_tokens(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="flagstaff.server.access"):
        client.get("/flags", headers={"Authorization": "Bearer fsm_secret-do-not-log", "X-Request-ID": "rid-9"})
    records = [r for r in caplog.records if r.name == "flagstaff.server.access"]
    assert records
    import json

    line = json.loads(JsonFormatter().format(records[-1]))
    assert line["path"] == "/flags" and line["status"] == 401
    assert "fsm_secret" not in caplog.text
