"""The HTTP surface says what it does: ``Allow``, ``OPTIONS``, and the OpenAPI document's
defaults, nullability and formats match what the server accepts."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.server.conftest import Tokens, auth


def test_options_and_405_name_every_method_of_the_path(client: TestClient, tokens: Tokens) -> None:
    h = auth(tokens.admin)
    listed = client.options("/flags", headers=h)
    assert (listed.status_code, listed.headers["allow"]) == (204, "GET, POST, OPTIONS")
    refused = client.put("/flags", headers=h)
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, POST, OPTIONS"
    assert refused.json()["error"]["code"] == "method_not_allowed"
    one = client.options("/flags/some-flag", headers=h)
    assert one.headers["allow"] == "GET, PUT, PATCH, DELETE, OPTIONS"


def test_every_documented_path_answers_options_with_its_documented_methods(
    client: TestClient,
) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for template, operations in paths.items():
        path = re.sub(r"\{[^}]+\}", "x", template)
        answer = client.options(path)
        documented = {m.upper() for m in operations if m in {"get", "post", "put", "patch", "delete"}}
        if "OPTIONS" in documented:
            continue
        assert answer.status_code == 204, (template, answer.status_code, answer.text)
        allowed = set(answer.headers["allow"].split(", "))
        assert documented | {"OPTIONS"} <= allowed, (template, allowed)


def test_a_flag_without_type_is_refused_and_the_document_requires_it(
    client: TestClient, tokens: Tokens,
) -> None:
    answer = client.post("/flags", json={"key": "untyped"}, headers=auth(tokens.editor))
    assert answer.status_code == 400
    assert answer.json()["error"]["details"]["field"] == "type"
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("FlagIn", "FlagReplaceIn"):
        assert "default" not in schemas[name]["properties"]["type"], name
    assert "type" in schemas["FlagIn"]["required"]


def test_names_may_be_absent_but_not_null_as_documented(client: TestClient, tokens: Tokens) -> None:
    h = auth(tokens.editor)
    for path, body in (("/segments", {"key": "s-null", "name": None}),
                       ("/flags", {"key": "f-null", "type": "boolean", "name": None})):
        answer = client.post(path, json=body, headers=h)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["details"]["field"] == "name"
    assert client.post("/segments", json={"key": "s-absent"}, headers=h).status_code == 201
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("SegmentIn", "SegmentReplaceIn", "FlagIn"):
        field = schemas[name]["properties"]["name"]
        assert field.get("type") == "string" and "anyOf" not in field, (name, field)
        assert "default" not in field, (name, field)


def test_iso_8601_parameters_refuse_unix_seconds(client: TestClient, tokens: Tokens) -> None:
    h = auth(tokens.viewer)
    for value in ("0.5", "1700000000", "yesterday", "\u0662\u0660\u0662\u0665-01-01"):
        answer = client.get("/audit", params={"until": value}, headers=h)
        assert answer.status_code == 400, (value, answer.text)
        assert answer.json()["error"]["details"]["field"] == "until"
    for value in ("2025-03-01", "2025-03-01T10:00:00Z", "2025-03-01T10:00:00+02:00"):
        assert client.get("/audit", params={"since": value}, headers=h).status_code == 200, value
