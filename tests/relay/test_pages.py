"""Pages at the relay, in process (no upstream: the snapshot, keys and browser access a relay
persisted): CORS, origins and secure mode as the server applies them, client-side flags only,
the event-stream URL of the bulk answer, and beacons (a batch with its key in the body).  The same against a real server: the journey in
tests/relay/test_relay_pages_journey.py."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from flagstaff.engine import resolve_flag
from flagstaff.relay.app import create_relay_app
from flagstaff.relay.keys import digest
from flagstaff.relay.service import RelayConfig
from flagstaff.relay.upstream import Unreachable
from flagstaff.secure_mode import secure_mode_hash

KEY, PAGE, SECURE_PAGE = "fss_relay_key_0001", "fsc_page_key_0002", "fsc_secure_page_0003"
SHOP, SECRET = "https://shop.example.com", "fsh_test_secure_mode_secret"


def _flag(key: str, *, client_side: bool, env: str) -> dict[str, Any]:
    return resolve_flag({
        "key": key, "type": "boolean", "client_side": client_side,
        "environments": {env: {"enabled": True, "targets": [{"variant": "true", "values": ["vip"]}],
                               "fallthrough": {"variant": "false"}}}}, env)


def _snapshot(env: str, version: int) -> dict[str, Any]:
    return {"environment": env, "version": version, "segments": {},
            "flags": {"banner": _flag("banner", client_side=True, env=env),
                      "billing": _flag("billing", client_side=False, env=env)}}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    files = []
    for env, version in (("production", 42), ("secure", 7)):
        path = tmp_path / f"{env}.json"
        path.write_text(json.dumps(_snapshot(env, version)))
        files.append(path)
    data = tmp_path / "data"
    data.mkdir()
    saved = {digest(PAGE): {"kind": "sdk-client", "environment": "production", "token_id": "t-2",
                            "checked_at": 0},
             digest(SECURE_PAGE): {"kind": "sdk-client", "environment": "secure",
                                   "token_id": "t-3", "checked_at": 0}}
    (data / "keys.json").write_text(json.dumps({"keys": saved}))
    (data / "access.json").write_text(json.dumps({"environments": [
        {"environment": "production", "allowed_origins": [SHOP], "secure_mode": False,
         "secure_mode_secret": None},
        {"environment": "secure", "allowed_origins": [SHOP], "secure_mode": True,
         "secure_mode_secret": SECRET}]}))
    app = create_relay_app(RelayConfig(upstream=None, keys=[KEY, "fss_secure_key_0004"],
                                       data_dir=data, from_files=files))
    with TestClient(app) as test_client:
        yield test_client


def page(key: str = PAGE, origin: str = SHOP) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Origin": origin}


def test_preflights_and_origins_as_at_the_server(client: TestClient) -> None:
    asked = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type"}
    allowed = client.options("/ofrep/v1/evaluate/flags", headers={"Origin": SHOP, **asked})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == SHOP
    misspelt = client.options("/ofrep/v1/evaluate/flags",
                              headers={"Origin": "https://shop.exmaple.com", **asked})
    assert misspelt.status_code == 403 and "access-control-allow-origin" not in misspelt.headers
    assert "'https://shop.exmaple.com' is not allowed" in misspelt.json()["error"]["message"]
    # A known origin with a key of an environment that does not allow it: refused, with CORS
    # headers so the page can read why.
    answer = client.post("/evaluate", headers=page(), json={"flag": "banner",
                                                           "context": {"key": "vip"}})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == SHOP
    foreign = client.post("/evaluate", headers=page(origin="https://elsewhere.example.com"),
                          json={"flag": "banner"})
    assert foreign.status_code == 403 and foreign.json()["error"]["details"] == {"field": "Origin"}
    server_key = client.post("/evaluate", headers=page(KEY), json={"flag": "banner"})
    assert server_key.status_code == 403
    assert "must not be used from a browser" in server_key.json()["error"]["message"]


def test_client_side_keys_see_client_side_flags_only(client: TestClient) -> None:
    bulk = client.post("/ofrep/v1/evaluate/flags", headers=page(),
                       json={"context": {"targetingKey": "vip"}})
    assert bulk.status_code == 200, bulk.text
    body = bulk.json()
    assert [f["key"] for f in body["flags"]] == ["banner"] and body["flags"][0]["value"] is True
    assert body["eventStreams"][0]["endpoint"]["requestUri"].startswith(
        "/ofrep/v1/event-stream?token=")
    hidden = client.post("/ofrep/v1/evaluate/flags/billing", headers=page(),
                         json={"context": {"targetingKey": "vip"}})
    assert hidden.status_code == 404 and hidden.json()["errorCode"] == "FLAG_NOT_FOUND"
    every = client.post("/evaluate/all", headers=page(), json={"context": {"key": "vip"}}).json()
    assert list(every["flags"]) == ["banner"]
    # Server-side keys still see everything, and nothing of a page's checks applies to them.
    full = client.post("/ofrep/v1/evaluate/flags", headers={"Authorization": f"Bearer {KEY}"},
                       json={"context": {}}).json()
    assert [f["key"] for f in full["flags"]] == ["banner", "billing"]


def test_secure_mode_refuses_a_missing_or_forged_hash(client: TestClient) -> None:
    def ask(context: dict[str, Any]) -> Any:
        return client.post("/ofrep/v1/evaluate/flags/banner", headers=page(SECURE_PAGE),
                           json={"context": context})

    missing = ask({"targetingKey": "vip"})
    assert missing.status_code == 403 and missing.json()["errorCode"] == "INVALID_CONTEXT"
    forged = ask({"targetingKey": "vip", "secureModeHash": secure_mode_hash("guess", "vip")})
    assert forged.status_code == 403 and "does not match" in forged.json()["errorDetails"]
    borrowed = ask({"targetingKey": "vip", "secureModeHash": secure_mode_hash(SECRET, "alice")})
    assert borrowed.status_code == 403
    signed = ask({"targetingKey": "vip", "secureModeHash": secure_mode_hash(SECRET, "vip")})
    assert signed.status_code == 200 and signed.json()["value"] is True


def test_event_stream_urls_are_checked(client: TestClient) -> None:
    forged = client.get("/ofrep/v1/event-stream", params={"token": "e30.AAAA"},
                        headers={"Origin": SHOP})
    assert forged.status_code == 401 and "re-fetch" in forged.json()["errorDetails"]
    assert forged.headers["access-control-allow-origin"] == SHOP


def test_a_downstream_relay_learns_its_own_environments_access(client: TestClient) -> None:
    own = client.get("/relay/access", headers={"Authorization": f"Bearer {KEY}"})
    assert own.json() == {"environment": "production", "allowed_origins": [SHOP],
                          "secure_mode": False, "secure_mode_secret": None}
    other = client.get("/relay/access", params={"environment": "secure"},
                       headers={"Authorization": f"Bearer {KEY}"})
    assert other.status_code == 403 and SECRET not in other.text
    assert client.get("/relay/access", headers={"Authorization": f"Bearer {PAGE}"}
                      ).status_code == 403


LIVE = {digest(PAGE): {"kind": "sdk-client", "environment": "production", "token_id": "t-2"},
        digest(KEY): {"kind": "sdk-server", "environment": "production", "token_id": "t-1"}}


class Upstream:
    """Knows the page's key and the relay's (none other); records what is forwarded while
    up."""

    def __init__(self) -> None:
        self.down = False
        self.received: list[tuple[str, dict[str, str], bytes]] = []

    async def live_keys(self, key: str, digests: list[str]) -> dict[str, Any]:
        if self.down:
            raise Unreachable("down")
        return {d: LIVE[d] for d in digests if d in LIVE}

    async def send(self, method: str, path: str, *, headers: Mapping[str, str],
                   body: bytes) -> httpx.Response:
        if self.down:
            raise Unreachable("down")
        self.received.append((path, dict(headers), body))
        return httpx.Response(202, json={"accepted": 1})


@pytest.fixture
def upstream(client: TestClient) -> Upstream:
    fake = Upstream()
    relay = client.app.state.relay  # type: ignore[attr-defined]
    relay.keys._upstream = fake
    relay.forwarder._upstream = fake
    return fake


EXPOSURE = {"flag_key": "banner", "variant": "true", "user_key": "u1",
            "timestamp": "2026-01-01T00:00:00Z", "reason": "SPLIT", "flag_version": None,
            "in_experiment": True}
BEACON = {"Origin": SHOP, "Content-Type": "text/plain;charset=UTF-8"}


def beacon(client: TestClient, key: str, *, path: str = "/exposures",
           headers: Mapping[str, str] = BEACON) -> httpx.Response:
    body = json.dumps({"batch_id": "b1", "events": [EXPOSURE], "client_key": key})
    answer: httpx.Response = client.post(path, content=body.encode(), headers=dict(headers))
    return answer


def test_a_beacon_is_forwarded_with_its_key_in_the_body(
    client: TestClient, upstream: Upstream,
) -> None:
    answer = beacon(client, PAGE)
    assert answer.status_code == 202 and answer.json() == {"accepted": 1}
    assert answer.headers["access-control-allow-origin"] == SHOP
    [(path, headers, body)] = upstream.received
    # As it came: the server reads the key from the body and checks it again.
    assert path == "/exposures" and body == answer.request.content
    assert "authorization" not in headers and headers["content-type"] == BEACON["Content-Type"]
    assert beacon(client, PAGE, path="/track").status_code == 202
    assert len(upstream.received) == 2


def test_a_beacon_is_refused_as_at_the_server(client: TestClient, upstream: Upstream) -> None:
    unknown = beacon(client, "fsc_made_up_key")
    assert unknown.status_code == 401
    assert unknown.json()["error"]["message"] == "unknown or revoked token"
    server_key = beacon(client, KEY)
    assert server_key.status_code == 403
    assert server_key.json()["error"]["details"] == {"field": "client_key"}
    foreign = beacon(client, PAGE, headers={**BEACON, "Origin": "https://elsewhere.example.com"})
    assert foreign.status_code == 403 and foreign.json()["error"]["details"] == {"field": "Origin"}
    # Only /exposures and /track take a key in the body, and only in a body the server's
    # limits accept.
    assert beacon(client, PAGE, path="/evaluation-counts").status_code == 401
    malformed = client.post("/track", content=b'{"client_key": "' + PAGE.encode(), headers=BEACON)
    assert malformed.status_code == 401
    nested = b'{"client_key": "' + PAGE.encode() + b'", "x": ' + b"[" * 70 + b"]" * 70 + b"}"
    too_deep = client.post("/track", content=nested, headers=BEACON)
    assert too_deep.status_code == 400
    assert too_deep.json()["error"]["details"]["setting"] == "FLAGSTAFF_MAX_JSON_DEPTH"
    assert upstream.received == []

def test_a_beacon_is_buffered_while_the_upstream_is_away(
    client: TestClient, upstream: Upstream,
) -> None:
    upstream.down = True
    answer = beacon(client, PAGE)
    assert answer.status_code == 202 and answer.json() == {"buffered": True}
    assert client.get("/health").json()["ingest"]["pending"] == 1
    assert upstream.received == []
