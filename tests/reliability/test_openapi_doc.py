"""The OpenAPI document describes every route, its errors and its auth."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from flagstaff.server.app import create_app
from flagstaff.server.settings import Settings

PUBLIC = {("/health", "get"), ("/ready", "get"), ("/metrics", "get"),
          ("/incoming/triggers/{secret}", "post")}


def test_every_operation_states_its_auth_and_common_errors(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'doc.db'}", demo=False))
    with TestClient(app) as client:
        doc = client.get("/openapi.json").json()
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    seen = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            seen += 1
            responses = op["responses"]
            assert "422" not in responses, (method, path)  # we answer 400, never 422
            for status, response in responses.items():
                if int(status) >= 400 and "content" in response:
                    assert response["content"] == {"application/json": {"schema": error_ref}}, (
                        method, path, status)
            if (path, method) in PUBLIC:
                continue
            auth = op.get("x-flagstaff-auth")
            assert auth is not None, (method, path)
            assert auth["kinds"], (method, path)
            assert "**Auth:**" in op["description"]
            assert {"401", "403", "429", "503"} <= responses.keys(), (method, path)
            if "requestBody" in op:
                assert {"400", "408", "413"} <= responses.keys(), (method, path)
    assert seen >= 30
    assert doc["paths"]["/flags"]["post"]["x-flagstaff-auth"] == {"kinds": ["management"], "role": "editor"}
    assert doc["paths"]["/stream"]["get"]["x-flagstaff-auth"]["kinds"] == ["sdk-server"]
    assert "/ws" in doc["info"]["description"]
    stream = doc["paths"]["/ofrep/v1/event-stream"]["get"]
    assert stream["x-flagstaff-auth"]["credential"] == "signed-url"
    assert "`token` query parameter" in stream["description"]
    # No reference may point inside a schema's own $defs: viewers (ReDoc) resolve them from
    # the document root and fail.
    assert '"#/$defs/' not in json.dumps(doc) and "'$defs'" not in repr(list(doc))
