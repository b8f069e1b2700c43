"""One error shape for every 4xx/5xx, naming the field, and nothing half-written."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flagstaff.server.app import create_app
from flagstaff.server.settings import Settings
from tests.builders import cond, flag, segment_match
from tests.server.conftest import Tokens, auth


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error["details"]["field"] == field, error
    return dict(error)


def nothing_written(client: TestClient, tokens: Tokens) -> None:
    assert client.get("/flags", headers=auth(tokens.viewer)).json()["items"] == []
    audit = client.get("/audit", headers=auth(tokens.viewer)).json()["items"]
    assert [a for a in audit if a["target_kind"] != "token"] == []


def test_malformed_json(client: TestClient, tokens: Tokens) -> None:
    response = client.post(
        "/flags", content=b'{"key": "a",', headers=auth(tokens.editor) | {"Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_json")
    nothing_written(client, tokens)


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        ({"key": "a", "tags": "not-a-list"}, "tags"),
        ({"key": 5}, "key"),
        ({"key": "a", "environments": {"production": {"enabled": "yes"}}}, "environments.production.enabled"),
        ({"key": "Bad Key!"}, "key"),
        ({"key": "a", "name": "n" * 201}, "name"),
        ({"key": "a", "description": "d" * 2001}, "description"),
        (flag("a").number({"low": 1, "high": "ten"}, off="low").build(), "variants.high"),  # type: ignore[dict-item]
        (flag("a").string({"x": "1"}, off="missing").build(), "off_variant"),
    ],
)
def test_wrong_types_and_bad_values_name_the_field(
    client: TestClient, tokens: Tokens, definition: dict[str, Any], field: str
) -> None:
    assert_error(client.post("/flags", json=definition, headers=auth(tokens.editor)), 400, "invalid", field)
    nothing_written(client, tokens)


def test_unknown_operator_and_missing_segment_name_the_path(client: TestClient, tokens: Tokens) -> None:
    bad_operator = flag("a").boolean().env(
        "production", lambda e: e.rule("r", cond("country", "eq", "DE"), serve="true")
    ).build()
    assert_error(
        client.post("/flags", json=bad_operator, headers=auth(tokens.editor)),
        400, "invalid", "environments.production.rules[0].conditions[0].operator",
    )
    missing_segment = flag("a").boolean().env(
        "production", lambda e: e.rule("r", segment_match("ghosts"), serve="true")
    ).build()
    error = assert_error(client.post("/flags", json=missing_segment, headers=auth(tokens.editor)), 400, "invalid")
    assert error["details"]["field"].startswith("environments.production.rules[0].conditions[0]")
    assert "ghosts" in error["message"]
    nothing_written(client, tokens)


def test_body_over_limit_is_413_by_length_and_by_stream(client: TestClient, tokens: Tokens) -> None:
    big = {"key": "big", "description": "x" * (1024 * 1024)}
    assert_error(client.post("/flags", json=big, headers=auth(tokens.editor)), 413, "too_large")

    def chunks() -> Iterator[bytes]:
        yield b'{"key": "big", "description": "'
        for _ in range(20):
            yield b"y" * 65536
        yield b'"}'

    # a generator body is sent chunked, without Content-Length
    streamed = client.post(
        "/flags", content=chunks(), headers=auth(tokens.editor) | {"Content-Type": "application/json"}
    )
    assert_error(streamed, 413, "too_large")
    nothing_written(client, tokens)


def test_routing_errors_use_the_shape(client: TestClient, tokens: Tokens) -> None:
    assert_error(client.get("/no-such-route", headers=auth(tokens.viewer)), 404, "not_found")
    response = client.put("/health")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


def test_missing_body_and_missing_query_type(client: TestClient, tokens: Tokens) -> None:
    assert_error(client.post("/flags", headers=auth(tokens.editor)), 400, "invalid")
    assert_error(client.get("/flags", params={"limit": "many"}, headers=auth(tokens.viewer)), 400, "invalid", "limit")


def test_unexpected_error_is_500_with_request_id_and_no_traceback(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app) as client:
        response = client.get("/boom", headers={"X-Request-ID": "req-123"})
    error = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and "Traceback" not in response.text
    assert error["details"] == {}
    assert response.headers["X-Request-ID"] == "req-123"


def test_request_ids_are_echoed_or_generated(client: TestClient) -> None:
    assert client.get("/health", headers={"X-Request-ID": "abc-1"}).headers["X-Request-ID"] == "abc-1"
    generated = client.get("/health").headers["X-Request-ID"]
    assert len(generated) == 32
    # an id that could inject into logs or headers is replaced
    assert client.get("/health", headers={"X-Request-ID": "a b\x7f"}).headers["X-Request-ID"] != "a b\x7f"


def test_a_form_content_type_is_told_to_send_json(client: TestClient, tokens: Tokens) -> None:
    answer = client.post(
        "/flags",
        content=b'{"key": "x", "type": "boolean"}',
        headers={**auth(tokens.admin), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["details"]["field"] == "Content-Type"
    assert "application/json" in error["message"]
    assert client.get("/flags/x", headers=auth(tokens.admin)).status_code == 404
