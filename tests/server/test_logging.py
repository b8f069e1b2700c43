"""Log lines: JSON for machines (never with terminal colours), readable text for people, and
the access-log policy that keeps the high-volume SDK routes out of the log by default."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from flagstaff.server.app import create_app
from flagstaff.server.logging_setup import JsonFormatter, TextFormatter
from flagstaff.server.middleware import AccessLogPolicy
from flagstaff.server.settings import Settings
from tests.server.conftest import auth

ADMIN = "fsm_logging-test-admin-secret-0123456789abcdef"


def _uvicorn_record() -> logging.LogRecord:
    # What uvicorn logs at start: a plain message plus a coloured copy in ``color_message``.
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "Uvicorn running on %s (Press CTRL+C to quit)",
        ("http://127.0.0.1:8400",), None,
    )
    record.color_message = "Uvicorn running on \x1b[1m%s\x1b[0m (Press CTRL+C to quit)"
    record.peer = "\x1b[31mred\x1b[0m"
    return record


def test_json_lines_carry_no_terminal_escapes() -> None:
    line = JsonFormatter().format(_uvicorn_record())
    entry = json.loads(line)
    assert "\x1b" not in line and "\\u001b" not in line
    assert "color_message" not in entry
    assert entry["message"] == "Uvicorn running on http://127.0.0.1:8400 (Press CTRL+C to quit)"
    assert entry["peer"] == "red"


def test_text_lines_read_as_sentences() -> None:
    access = logging.LogRecord("flagstaff.server.access", logging.INFO, __file__, 1, "request", (), None)
    access.__dict__.update(method="GET", path="/flags", status=200, duration_ms=3.1)
    plain = TextFormatter(colour=False).format(access)
    assert plain.endswith(" INFO    GET /flags 200 3.1 ms") and "{" not in plain
    coloured = TextFormatter(colour=True).format(_uvicorn_record())
    assert "Uvicorn running on http://127.0.0.1:8400" in coloured and "\x1b[" in coloured
    assert "peer=red" in TextFormatter(colour=False).format(_uvicorn_record())


@pytest.mark.parametrize(
    ("path", "status", "logged"),
    [
        ("/flags", 200, True),
        ("/evaluate", 200, False),
        ("/evaluate/all", 400, False),
        ("/ofrep/v1/evaluate/flags/x", 404, False),
        ("/sdk/flags", 304, False),
        ("/track", 202, False),
        ("/exposures", 202, False),
        ("/evaluation-counts", 202, False),
        ("/track", 401, True),  # a refused key is something an operator must see
        ("/evaluate", 503, True),
    ],
)
def test_policy_keeps_sdk_routes_out_unless_they_fail(path: str, status: int, logged: bool) -> None:
    assert AccessLogPolicy().logs(path, status) is logged
    assert AccessLogPolicy(sdk_routes=True).logs(path, status) is True


@pytest.fixture(scope="module", params=[False, True], ids=["default", "sdk-routes-logged"])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    database = tmp_path_factory.mktemp("logging") / "flagstaff.db"
    settings = Settings(
        database_url=f"sqlite:///{database}", demo=True, bootstrap_token=ADMIN,
        access_log_sdk_routes=request.param,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_access_log_through_the_app(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    key = client.post(
        "/tokens", json={"name": "svc", "kind": "sdk-server", "environment": "production"},
        headers=auth(ADMIN),
    ).json()["secret"]
    sdk_routes_logged = client.app.state.settings.access_log_sdk_routes  # type: ignore[attr-defined]
    with caplog.at_level(logging.INFO, logger="flagstaff.server.access"):
        caplog.clear()
        assert client.post(
            "/evaluate", json={"flag": "model-provider", "context": {"key": "u1"}}, headers=auth(key)
        ).status_code == 200
        event = {"metric": "checkout", "user_key": "u1", "timestamp": "2026-01-05T10:00:00Z"}
        tracked = client.post(
            "/track", json={"batch_id": f"b-{sdk_routes_logged}", "events": [event]}, headers=auth(key)
        )
        assert tracked.status_code == 202, tracked.text
        client.get("/flags", headers=auth(ADMIN))
        client.post("/evaluate", json={"flag": "x", "context": {}}, headers=auth("fss_revoked"))
    lines = [(r.method, r.path, r.status) for r in caplog.records if r.name == "flagstaff.server.access"]  # type: ignore[attr-defined]
    expected = [("GET", "/flags", 200), ("POST", "/evaluate", 401)]
    if sdk_routes_logged:
        expected = [("POST", "/evaluate", 200), ("POST", "/track", 202), *expected]
    assert lines == expected
    metrics = client.get("/metrics").text
    assert 'flagstaff_http_request_duration_seconds_count{method="POST",route="/evaluate",status="200"} 1.0' in metrics
