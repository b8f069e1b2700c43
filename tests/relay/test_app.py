"""The relay's HTTP surface in process, with no upstream (a snapshot file and a saved key list):
the server's bodies, headers and error shapes, from memory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient, WebSocketDenialResponse

from flagstaff.engine import compile_snapshot, resolve_flag
from flagstaff.relay.app import create_relay_app
from flagstaff.relay.keys import digest
from flagstaff.relay.service import RelayConfig
from flagstaff.remote import detail_json

KEY, OTHER, BROWSER = "fss_relay_key_0001", "fss_other_key_0002", "fsc_browser_key_0003"
ENV = "production"
SNAPSHOT: dict[str, Any] = {
    "environment": ENV, "version": 42, "segments": {},
    "flags": {"checkout": resolve_flag({
        "key": "checkout", "type": "boolean",
        "environments": {ENV: {"enabled": True, "targets": [{"variant": "true", "values": ["vip"]}],
                               "fallthrough": {"variant": "false"}}}}, ENV)},
}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(relay_app(tmp_path)) as test_client:
        yield test_client


def relay_app(tmp_path: Path) -> FastAPI:
    exported = tmp_path / "production.json"
    exported.write_text(json.dumps(SNAPSHOT))
    data = tmp_path / "data"
    data.mkdir()
    saved = {digest(OTHER): {"kind": "sdk-server", "environment": ENV, "token_id": "t-2",
                             "checked_at": 0},
             digest(BROWSER): {"kind": "sdk-client", "environment": ENV, "token_id": "t-3",
                               "checked_at": 0}}
    (data / "keys.json").write_text(json.dumps({"keys": saved}))
    return create_relay_app(RelayConfig(upstream=None, keys=[KEY], data_dir=data,
                                        from_files=[exported]))


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_sdk_flags_with_etag_and_304(client: TestClient) -> None:
    answer = client.get("/sdk/flags", headers=auth(OTHER))
    assert answer.status_code == 200 and answer.json() == SNAPSHOT
    assert answer.headers["etag"] == '"42"'
    again = client.get("/sdk/flags", headers={**auth(), "If-None-Match": '"42"'})
    assert again.status_code == 304


def test_evaluation_answers_as_the_engine_does(client: TestClient) -> None:
    snapshot = compile_snapshot(SNAPSHOT)
    answer = client.post("/evaluate", headers=auth(),
                         json={"flag": "checkout", "context": {"key": "vip"}})
    assert answer.json() == detail_json("checkout", snapshot.evaluate("checkout", {"key": "vip"}))
    every = client.post("/evaluate/all", headers=auth(), json={"context": {"key": "x"}}).json()
    assert every["version"] == 42 and every["flags"]["checkout"]["value"] is False
    ofrep = client.post("/ofrep/v1/evaluate/flags/checkout", headers=auth(),
                        json={"context": {"targetingKey": "vip"}})
    assert ofrep.status_code == 200 and ofrep.json()["value"] is True
    bulk = client.post("/ofrep/v1/evaluate/flags", headers=auth(), json={"context": {}})
    assert bulk.status_code == 200 and [f["key"] for f in bulk.json()["flags"]] == ["checkout"]
    cached = client.post("/ofrep/v1/evaluate/flags", json={"context": {}},
                         headers={**auth(), "If-None-Match": bulk.headers["etag"]})
    assert cached.status_code == 304


def test_errors_keep_the_servers_shapes(client: TestClient) -> None:
    missing = client.post("/ofrep/v1/evaluate/flags/nope", headers=auth(), json={"context": {}})
    assert missing.status_code == 404 and missing.json()["errorCode"] == "FLAG_NOT_FOUND"
    broken = client.post("/ofrep/v1/evaluate/flags/checkout", headers=auth(), content=b"{",
                         )
    assert broken.status_code == 400 and broken.json()["errorCode"] == "PARSE_ERROR"
    assert client.get("/sdk/flags").json()["error"]["code"] == "unauthorized"
    other_env = client.post("/evaluate", headers=auth(),
                            json={"flag": "checkout", "environment": "staging"})
    assert other_env.status_code == 403
    # A client-side key is evaluated only once the upstream has said which origins and
    # secure mode apply (tests/relay/test_pages.py), and never at server-side routes; unknown
    # keys cannot be checked with no upstream.
    browser = client.post("/evaluate", headers=auth(BROWSER), json={"flag": "checkout"})
    assert browser.status_code == 503 and "client-side keys are refused" in browser.text
    assert client.get("/sdk/flags", headers=auth(BROWSER)).status_code == 403
    assert client.get("/sdk/flags", headers=auth("fss_unknown")).status_code == 503
    from_page = client.get("/sdk/flags", headers={**auth(), "Origin": "https://shop.example"})
    assert from_page.status_code == 403


def test_websocket_sends_the_snapshot_first(client: TestClient) -> None:
    with client.websocket_connect("/ws", headers=auth()) as socket:
        message = socket.receive_json()
    assert message["event"] == "put" and message["id"] == 42 and message["data"] == SNAPSHOT


def test_ingestion_with_no_upstream_is_buffered(client: TestClient) -> None:
    answer = client.post("/track", headers=auth(), json={"events": []})
    assert answer.status_code == 202 and answer.json() == {"buffered": True}
    assert client.get("/health").json()["ingest"]["pending"] == 1
    metrics = client.get("/metrics").text
    assert "flagstaff_relay_ingest_pending 1.0" in metrics
    assert 'flagstaff_relay_ingest_requests_total{outcome="buffered"} 1.0' in metrics
    assert 'flagstaff_relay_version{environment="production"} 42.0' in metrics
    assert client.post("/track", json={}).status_code == 401


def test_the_servers_limits_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAGSTAFF_MAX_STREAMS_PER_KEY", "1")
    monkeypatch.setenv("FLAGSTAFF_MAX_AUTH_FAILURES", "3")
    monkeypatch.setenv("FLAGSTAFF_MAX_BODY_BYTES", "1024")
    with TestClient(relay_app(tmp_path)) as client:
        with client.websocket_connect("/ws", headers=auth()) as first:
            first.receive_json()
            with pytest.raises(WebSocketDenialResponse) as refused:
                client.websocket_connect("/ws", headers=auth()).__enter__()
            assert refused.value.status_code == 429
        big = client.post("/evaluate", headers=auth(), content=b'{"flag": "' + b"x" * 2000 + b'"}',
                          )
        assert big.status_code == 413
        # An upstream that knows none of the keys it is asked about: each made-up key is a 401,
        # and after three the address is refused before anything is asked upstream.
        upstream = NoKeysUpstream()
        client.app.state.relay.keys._upstream = upstream  # type: ignore[attr-defined]
        statuses = [client.get("/sdk/flags", headers=auth(f"fss_made_up_{n}")).status_code
                    for n in range(5)]
        assert statuses == [401, 401, 401, 429, 429] and upstream.asked == 3


class NoKeysUpstream:
    asked = 0

    async def live_keys(self, key: str, digests: list[str]) -> dict[str, Any]:
        self.asked += 1
        return {}
