"""POST /exposures, /track, /evaluation-counts and GET /flags/{key}/exposures over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.builders import flag
from tests.server.conftest import Tokens, auth


def exposure(user: str, variant: str = "true", ts: str = "2025-03-01T10:00:00Z") -> dict[str, Any]:
    return {"flag_key": "f", "variant": variant, "user_key": user, "timestamp": ts,
            "reason": "SPLIT", "flag_version": 1, "in_experiment": True}


def test_exposures_are_idempotent_per_batch_and_readable(client: TestClient, tokens: Tokens) -> None:
    client.post("/flags", json=flag("f").on().build(), headers=auth(tokens.editor))
    batch = {"batch_id": str(uuid.uuid4()), "events": [exposure("u1"), exposure("u2", "false"), exposure("u1")]}
    first = client.post("/exposures", json=batch, headers=auth(tokens.sdk_server))
    retry = client.post("/exposures", json=batch, headers=auth(tokens.sdk_client))
    assert (first.status_code, first.json()) == (202, {"accepted": 3, "duplicate": False})
    assert (retry.status_code, retry.json()) == (202, {"accepted": 0, "duplicate": True})
    report = client.get("/flags/f/exposures", params={"environment": "production", "bucket": "hour"},
                        headers=auth(tokens.viewer))
    assert report.status_code == 200
    assert report.json()["variants"] == [{"variant": "false", "evaluations": 1, "unique_users": 1},
                                         {"variant": "true", "evaluations": 2, "unique_users": 1}]
    assert [p["start"] for p in report.json()["series"]] == ["2025-03-01T10:00:00.000000Z"] * 2
    ranged = client.get("/flags/f/exposures", headers=auth(tokens.viewer), params={
        "environment": "production", "since": "2025-03-01T11:00:00", "until": "2025-03-02T00:00:00Z"})
    assert ranged.json()["variants"] == [] and ranged.json()["since"] == "2025-03-01T11:00:00.000000Z"


def test_bad_batches_are_400_naming_the_field(client: TestClient, tokens: Tokens) -> None:
    h = auth(tokens.sdk_server)
    cases = [
        ("/exposures", {"batch_id": "b", "events": [exposure("u"), {**exposure("u"), "timestamp": "soon"}]},
         "events[1].timestamp"),
        ("/exposures", {"events": []}, "batch_id"),
        ("/exposures", {"batch_id": "b", "events": "nope"}, "events"),
        ("/exposures", {"batch_id": "b", "events": [exposure("u")] * 10_001}, "events"),
        ("/track", {"batch_id": "b", "events": [{"metric": "m", "user_key": "u", "value": "1",
                                                 "timestamp": "2025-01-01T00:00:00Z"}]}, "events[0].value"),
        ("/evaluation-counts", {"batch_id": "b", "window_start": "2025-01-01T00:00:00Z",
                                "window_end": "2025-01-01T00:01:00Z",
                                "counts": [{"flag_key": "f", "variant": "a", "count": -1}]}, "counts[0].count"),
    ]
    for path, body, field in cases:
        response = client.post(path, json=body, headers=h)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"]["details"]["field"] == field
    # nothing was stored and the batch id "b" is still free
    ok = client.post("/exposures", json={"batch_id": "b", "events": [exposure("u")]}, headers=h)
    assert ok.json() == {"accepted": 1, "duplicate": False}


def test_a_full_batch_of_10000_fits_the_ingest_body_limit(client: TestClient, tokens: Tokens) -> None:
    events = [exposure(f"user-{i:08d}") for i in range(10_000)]
    response = client.post("/exposures", json={"batch_id": "full", "events": events},
                           headers=auth(tokens.sdk_server))
    assert response.status_code == 202 and response.json()["accepted"] == 10_000
    # other routes keep the 1 MiB limit
    big = client.post("/flags", content=b"{" + b" " * (1024 * 1024 + 10) + b"}",
                      headers=auth(tokens.editor) | {"Content-Type": "application/json"})
    assert big.status_code == 413


def test_track_and_evaluation_counts(client: TestClient, tokens: Tokens) -> None:
    h = auth(tokens.sdk_client)
    track = client.post("/track", headers=h, json={"batch_id": "t1", "events": [
        {"metric": "checkout", "user_key": "u1", "value": None, "timestamp": "2025-03-01T10:00:00Z"},
        {"metric": "revenue", "user_key": "u1", "value": 9.99, "timestamp": "2025-03-01T10:00:00Z"}]})
    assert (track.status_code, track.json()) == (202, {"accepted": 2, "duplicate": False})
    counts = {"batch_id": "c1", "window_start": "2025-03-01T10:00:00Z", "window_end": "2025-03-01T10:01:00Z",
              "counts": [{"flag_key": "f", "variant": "true", "count": 41}]}
    assert client.post("/evaluation-counts", json=counts, headers=h).json() == {"accepted": 1, "duplicate": False}
    assert client.post("/evaluation-counts", json=counts, headers=h).json()["duplicate"] is True
