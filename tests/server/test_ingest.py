"""POST /exposures, /track, /evaluation-counts and GET /flags/{key}/exposures over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from flagstaff.store.schema import exposures as exposures_table
from flagstaff.store.schema import metric_events
from tests.builders import flag
from tests.server.conftest import Tokens, auth, create_token


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


def test_a_batch_id_is_idempotent_per_kind_and_environment(client: TestClient, tokens: Tokens) -> None:
    """One id on /exposures, /track and /evaluation-counts, and from a key of another environment,
    names four different batches: each is stored; only a retry in the same scope is a duplicate."""
    store = client.app.state.store  # type: ignore[attr-defined]
    staging = create_token(client, "sdk-server", environment="staging")["secret"]
    same = "batch-shared-0001"
    exposures = {"batch_id": same, "events": [exposure("u1"), exposure("u2")]}
    track = {"batch_id": same, "events": [metric("u1"), metric("u2", value=3.5), metric("u3")]}
    counts = {"batch_id": same, "window_start": "2025-03-01T10:00:00Z",
              "window_end": "2025-03-01T10:01:00Z", "counts": [{"flag_key": "f", "variant": "true", "count": 7}]}
    sends = [("/exposures", exposures, tokens.sdk_server, 2), ("/track", track, tokens.sdk_server, 3),
             ("/evaluation-counts", counts, tokens.sdk_server, 1), ("/track", track, staging, 3)]
    for path, body, key, n in sends:
        answer = client.post(path, json=body, headers=auth(key))
        assert (answer.status_code, answer.json()) == (202, {"accepted": n, "duplicate": False}), path
    for path, body, key, _ in sends:
        assert client.post(path, json=body, headers=auth(key)).json() == {"accepted": 0, "duplicate": True}
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(metric_events.c.environment, sa.func.count())
                              .group_by(metric_events.c.environment)).all()
        assert sorted(map(tuple, stored)) == [("production", 3), ("staging", 3)]
        assert conn.execute(sa.select(sa.func.count()).select_from(exposures_table)).scalar_one() == 2


def metric(user: str, **changes: Any) -> dict[str, Any]:
    return {"metric": "checkout", "user_key": user, "value": None,
            "timestamp": "2025-03-01T10:00:00Z"} | changes


# One bad member in the middle of an otherwise good batch: the 400 names exactly that field,
# as the per-event reference check orders them, and nothing of the batch is stored.
BAD_EXPOSURES = [
    ({"flag_key": ""}, "flag_key"), ({"flag_key": "f" * 129}, "flag_key"), ({"flag_key": 1}, "flag_key"),
    ({"variant": None}, "variant"), ({"variant": "v" * 65}, "variant"),
    ({"user_key": ["u"]}, "user_key"), ({"user_key": "u" * 257}, "user_key"),
    ({"timestamp": 1740823200}, "timestamp"), ({"timestamp": "2025-13-01T00:00:00Z"}, "timestamp"),
    ({"timestamp": "2025-03-01T10:00:00Z" + " " * 60}, "timestamp"),
    ({"reason": 3}, "reason"), ({"reason": "r" * 33}, "reason"),
    ({"flag_version": -1}, "flag_version"), ({"flag_version": 2**31}, "flag_version"),
    ({"flag_version": 1.0}, "flag_version"), ({"flag_version": True}, "flag_version"),
    ({"in_experiment": 1}, "in_experiment"), ({"in_experiment": None}, "in_experiment"),
    # several bad fields: the first in the reference order wins
    ({"flag_key": "", "flag_version": "3", "timestamp": "x"}, "flag_version"),
]
BAD_METRICS = [
    ({"metric": ""}, "metric"), ({"metric": "has space"}, "metric"), ({"metric": "checkout\n"}, "metric"),
    ({"metric": "m" * 129}, "metric"), ({"value": "1"}, "value"), ({"value": True}, "value"),
    ({"user_key": ""}, "user_key"), ({"timestamp": None}, "timestamp"), ({"timestamp": "soon"}, "timestamp"),
]


@pytest.mark.parametrize(("change", "name"), BAD_EXPOSURES)
def test_each_bad_exposure_field_is_named(
    client: TestClient, tokens: Tokens, change: dict[str, Any], name: str
) -> None:
    events = [exposure(f"u{i}") for i in range(50)]
    events[17] = {**events[17], **change}
    response = client.post("/exposures", headers=auth(tokens.sdk_server),
                           json={"batch_id": "bad", "events": events})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == f"events[17].{name}"
    assert response.json()["error"]["message"].startswith(f"events[17].{name}: ")
    # nothing stored, and the batch id is still free
    ok = client.post("/exposures", headers=auth(tokens.sdk_server),
                     json={"batch_id": "bad", "events": [exposure("u")]})
    assert ok.json() == {"accepted": 1, "duplicate": False}


@pytest.mark.parametrize(("change", "name"), BAD_METRICS)
def test_each_bad_metric_field_is_named(
    client: TestClient, tokens: Tokens, change: dict[str, Any], name: str
) -> None:
    events = [metric(f"u{i}") for i in range(30)]
    events[17] = {**events[17], **change}
    response = client.post("/track", headers=auth(tokens.sdk_server),
                           json={"batch_id": "bad", "events": events})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == f"events[17].{name}"


def test_values_that_are_not_storable_numbers_are_400_not_500(client: TestClient, tokens: Tokens) -> None:
    # 10**400 is a valid JSON integer that no float holds; 1e400 parses as infinity.
    for raw in (b"1" + b"0" * 400, b"1e400", b"-1e400", b"NaN"):
        body = (b'{"batch_id": "n", "events": [{"metric": "m", "user_key": "u", "value": ' + raw
                + b', "timestamp": "2025-03-01T10:00:00Z"}]}')
        response = client.post("/track", content=body, headers=auth(tokens.sdk_server)
                               | {"Content-Type": "application/json"})
        assert response.status_code == 400, (raw[:10], response.text)
        assert response.json()["error"]["details"]["field"] == "events[0].value"


def test_events_are_stored_as_sent(client: TestClient, tokens: Tokens) -> None:
    client.post("/flags", json=flag("f").on().build(), headers=auth(tokens.editor))
    events = [exposure("u1", ts="2025-03-01T10:00:00.250+01:00"),  # 09:00:00.250 UTC
              {"flag_key": "f", "variant": "false", "user_key": "u2", "timestamp": "2025-03-01T09:59:59"}]
    answer = client.post("/exposures", headers=auth(tokens.sdk_client),
                         json={"batch_id": "as-sent", "events": events, "sdk": "python/1.0"})
    assert answer.json() == {"accepted": 2, "duplicate": False}
    report = client.get("/flags/f/exposures", headers=auth(tokens.viewer), params={
        "environment": "production", "bucket": "hour"}).json()
    assert [(p["start"], p["variant"]) for p in report["series"]] == [
        ("2025-03-01T09:00:00.000000Z", "false"), ("2025-03-01T09:00:00.000000Z", "true")]


@pytest.mark.parametrize("path", ["/exposures", "/track"])
def test_bodies_that_are_not_a_json_batch(client: TestClient, tokens: Tokens, path: str) -> None:
    h = auth(tokens.sdk_server)
    json_type = {"Content-Type": "application/json"}
    cases: list[tuple[bytes, dict[str, str], str, str | None]] = [
        (b'{"batch_id": "x"', json_type, "invalid_json", None),
        (b"\xff\xfe{", json_type, "invalid_json", None),
        (b"", json_type, "invalid", "body"),
        (b"[]", json_type, "invalid", "body"),
        (b"null", json_type, "invalid", "body"),
        (b'{"batch_id": "x", "events": []}', {"Content-Type": "application/x-www-form-urlencoded"},
         "invalid", "Content-Type"),
        (b'{"batch_id": 7, "events": []}', json_type, "invalid", "batch_id"),
        (b'{"batch_id": "x\\n", "events": []}', json_type, "invalid", "batch_id"),
        (b'{"batch_id": "x", "events": null}', json_type, "invalid", "events"),
        (b'{"batch_id": "x"}', json_type, "invalid", "events"),
        (b'{"batch_id": "x", "events": [[]]}', json_type, "invalid", "events[0]"),
    ]
    for body, headers, code, field in cases:
        response = client.post(path, content=body, headers=h | headers)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == code, (body, error)
        assert error["details"].get("field") == field, (body, error)
    # +json media types, charsets and text/plain (what sendBeacon sends) are JSON too
    for media in ("application/json; charset=utf-8", "application/vnd.flagstaff+json",
                  "text/plain;charset=UTF-8"):
        response = client.post(path, content=b'{"batch_id": "ok-%d", "events": []}' % len(media),
                               headers=h | {"Content-Type": media})
        assert response.status_code == 202, response.text
    # an unauthenticated bad body is 401: authentication comes before the body
    assert client.post(path, content=b"{", headers=json_type).status_code == 401


def test_each_request_authenticates_once(
    client: TestClient, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = client.app.state.store  # type: ignore[attr-defined]
    calls: list[str] = []
    real = store.authenticate

    def counting(*, secret: str) -> Any:
        calls.append(secret)
        return real(secret=secret)

    monkeypatch.setattr(store, "authenticate", counting)
    client.post("/exposures", headers=auth(tokens.sdk_server), json={"batch_id": "a1", "events": [exposure("u")]})
    client.post("/track", headers=auth(tokens.sdk_server), json={"batch_id": "a2", "events": [metric("u")]})
    assert len(calls) == 2


def test_the_openapi_document_describes_the_hand_parsed_bodies(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for path, required in (("/exposures", ["flag_key", "variant", "user_key", "timestamp"]),
                           ("/track", ["metric", "user_key", "timestamp"])):
        body = doc["paths"][path]["post"]["requestBody"]
        assert body["required"] is True
        schema = body["content"]["application/json"]["schema"]
        assert schema["required"] == ["batch_id", "events"]
        assert schema["properties"]["events"]["maxItems"] == 10_000
        assert schema["properties"]["events"]["items"]["required"] == required
        assert {"400", "401", "403", "413"} <= set(doc["paths"][path]["post"]["responses"])


def test_each_batch_is_decoded_once(
    client: TestClient, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request-limits middleware decodes and checks the body; the route reuses that."""
    import json

    import flagstaff.server.limits as limits
    import flagstaff.server.routes.ingest as ingest

    calls: list[int] = []

    def counting(real: Any) -> Any:
        def decode(body: Any) -> Any:
            calls.append(len(body))
            return real(body)
        return decode

    # Every way either layer may decode: the middleware's hot-path JSON, the route's json.
    monkeypatch.setattr(limits.wirejson, "loads", counting(limits.wirejson.loads))
    assert ingest.json is json
    monkeypatch.setattr(json, "loads", counting(json.loads))
    for path, event in (("/exposures", exposure("u")), ("/track", metric("u"))):
        calls.clear()
        response = client.post(path, headers=auth(tokens.sdk_server),
                               json={"batch_id": f"once{path[1:]}", "events": [event] * 3})
        assert (response.status_code, response.content) == (202, b"{\"accepted\":3,\"duplicate\":false}")
        assert len(calls) == 1, path


def test_a_batch_not_decoded_upstream_is_decoded_by_the_route() -> None:
    from flagstaff.errors import Invalid
    from flagstaff.server.limits import NOT_PARSED
    from flagstaff.server.routes.ingest import decode_batch

    body = b'{"batch_id": "b", "events": []}'
    assert decode_batch(("application/json", body, NOT_PARSED)) == {"batch_id": "b", "events": []}
    assert decode_batch(("application/json", body, {"batch_id": "c"})) == {"batch_id": "c"}
    with pytest.raises(Invalid, match="JSON object"):
        decode_batch(("application/json", body, [1]))
    with pytest.raises(Invalid, match="Content-Type"):
        decode_batch(("multipart/form-data", body, {"batch_id": "c"}))
