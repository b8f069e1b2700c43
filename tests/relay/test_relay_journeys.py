"""Journeys through real processes: a server, relays (the ``flagstaff relay`` command) and SDK
clients that only know a relay's URL.

Invariants: a client behind a relay ends with exactly the server's snapshot; a kill reaches it
through one hop and through two; a relay with its upstream down serves its persisted
snapshot; a revoked key stops working at the relay (and its open stream ends); ingestion
posted while the upstream is away reaches it once it is back, filed under the caller's key.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flagstaff.sdk import Client
from tests.relay.conftest import FLAG, Server
from tests.relayprocess import RelayProcess
from tests.sdk.conftest import FAST, eventually

OPTIONS = dataclasses.replace(FAST, backoff_base=0.05, backoff_cap=0.3)
pytestmark = pytest.mark.slow


@pytest.fixture
def relays(tmp_path: Path) -> Iterator[list[RelayProcess]]:
    started: list[RelayProcess] = []
    yield started
    for relay in started:
        relay.kill()


def _relay(relays: list[RelayProcess], tmp_path: Path, key: str, upstream: str | None, *,
           data_dir: bool = True, args: tuple[str, ...] = ()) -> RelayProcess:
    n = len(relays)
    relay = RelayProcess(
        keys=[key], log_path=tmp_path / f"relay{n}.log", upstream=upstream,
        data_dir=tmp_path / f"relay{n}-data" if data_dir else None, args=list(args),
    )
    relays.append(relay)
    return relay


def _snapshot(url: str, key: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/sdk/flags", headers={"Authorization": f"Bearer {key}"})
    answer.raise_for_status()
    return dict(answer.json())


def _enabled(client: Client) -> object:
    return client._state.raw()["flags"][FLAG]["enabled"]


def test_a_kill_reaches_sdks_through_one_and_two_relay_hops(
    server: Server, relays: list[RelayProcess], tmp_path: Path,
) -> None:
    key, _ = server.sdk_key()
    downstream_key, _ = server.sdk_key("downstream")
    first = _relay(relays, tmp_path, key, server.url).start()
    second = _relay(relays, tmp_path, downstream_key, first.url).start()
    want = _snapshot(server.url, key)
    assert _snapshot(first.url, key) == want
    # The second relay's key is checked by the first through the server (POST /relay/keys).
    assert _snapshot(second.url, downstream_key) == want

    one_hop = Client(first.url, sdk_key=downstream_key, options=OPTIONS)
    two_hops = Client(second.url, sdk_key=key, options=OPTIONS)
    try:
        assert one_hop.wait_until_ready(timeout=10) and two_hops.wait_until_ready(timeout=10)
        assert _enabled(one_hop) is True and _enabled(two_hops) is True
        server.kill_flag()
        assert eventually(lambda: _enabled(one_hop) is False and _enabled(two_hops) is False,
                          timeout=10)
        want = _snapshot(server.url, key)
        for client in (one_hop, two_hops):
            assert client.version == want["version"]
            assert client._state.raw()["flags"] == want["flags"]
        # Evaluation at either relay answers as the server does.
        body = {"flag": FLAG, "context": {"key": "user-1"}}
        at_server = httpx.post(f"{server.url}/evaluate", json=body,
                               headers={"Authorization": f"Bearer {key}"}).json()
        for relay in (first, second):
            assert httpx.post(f"{relay.url}/evaluate", json=body,
                              headers={"Authorization": f"Bearer {key}"}).json() == at_server
        # The SDKs' own fleet reports went through the relays, marked with the nearest relay.
        relay_ids = {httpx.get(f"{r.url}/health").json()["instance"] for r in (first, second)}

        def reported_via() -> dict[str, str | None]:
            with server.api() as api:
                items = api.get("/fleet/instances", params={"kind": "sdk"}).json()["items"]
            return {i["instance"]: i.get("via") for i in items}
        assert eventually(lambda: {reported_via().get(c.instance) for c in (one_hop, two_hops)}
                          == relay_ids, timeout=10)
    finally:
        one_hop.close()
        two_hops.close()

    # Both relays are in the fleet view, as relays, at the latest version.
    def relays_current() -> bool:
        with server.api() as api:
            view = api.get("/fleet", params={"environment": "production"}).json()
        envs = view["environments"]
        return bool(envs) and envs[0]["relays"]["instances"] == 2 \
            and envs[0]["relays"]["current"] == 2
    assert eventually(relays_current, timeout=10)


def test_cold_start_with_the_upstream_down_serves_the_persisted_snapshot(
    server: Server, relays: list[RelayProcess], tmp_path: Path,
) -> None:
    key, _ = server.sdk_key()
    relay = _relay(relays, tmp_path, key, server.url).start()
    server.kill_flag()
    want = _snapshot(server.url, key)
    assert eventually(lambda: _snapshot(relay.url, key) == want, timeout=10)
    relay.stop()
    server.kill()

    relay.start()  # the upstream is down: it must serve from its data directory
    assert _snapshot(relay.url, key) == want
    client = Client(relay.url, sdk_key=key, options=OPTIONS)
    try:
        assert client.wait_until_ready(timeout=10)
        assert client.version == want["version"] and _enabled(client) is False
    finally:
        client.close()
    # The key list was persisted too: the key is still accepted, and evaluation works.
    answer = httpx.post(f"{relay.url}/ofrep/v1/evaluate/flags/{FLAG}", json={"context": {
        "targetingKey": "user-1"}}, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200 and answer.json()["value"] is False
    # An unknown key cannot be checked now: 503, not a guess either way.
    unknown = httpx.get(f"{relay.url}/sdk/flags",
                        headers={"Authorization": "Bearer fss_never_seen_before_0000000000"})
    assert unknown.status_code == 503

    # The upstream comes back: the relay resumes from its persisted version and follows again.
    server.start()
    with server.api() as api:
        api.patch(f"/flags/{FLAG}/environments/production", json={"enabled": True}
                  ).raise_for_status()
    back = _snapshot(server.url, key)
    assert eventually(lambda: _snapshot(relay.url, key) == back, timeout=20)

    # An exported snapshot starts a relay with no upstream at all (air-gapped).
    exported = tmp_path / "production.json"
    exported.write_bytes(httpx.get(f"{server.url}/sdk/flags",
                                   headers={"Authorization": f"Bearer {key}"}).content)
    server.kill()
    offline = _relay(relays, tmp_path, key, None, data_dir=False,
                     args=("--from-file", str(exported))).start()
    assert _snapshot(offline.url, key) == back


def test_a_revoked_key_stops_working_at_the_relay(
    server: Server, relays: list[RelayProcess], tmp_path: Path,
) -> None:
    key, key_id = server.sdk_key()
    other, other_id = server.sdk_key("to-revoke")
    relay = _relay(relays, tmp_path, key, server.url, args=("--key-ttl", "0.5")).start()
    headers = {"Authorization": f"Bearer {other}"}
    assert httpx.get(f"{relay.url}/sdk/flags", headers=headers).status_code == 200
    with httpx.stream("GET", f"{relay.url}/stream", headers=headers, timeout=10) as stream:
        assert stream.status_code == 200
        with server.api() as api:
            api.delete(f"/tokens/{other_id}").raise_for_status()
        began = time.monotonic()
        # The open stream ends (its first read gives the put, then the body finishes).
        for _ in stream.iter_bytes():
            pass
        assert time.monotonic() - began < 5
    assert httpx.get(f"{relay.url}/sdk/flags", headers=headers).status_code == 401
    # The relay's own key still works, until it is revoked too: then the relay stops serving
    # the environment rather than serve what it can no longer follow.
    own = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{relay.url}/sdk/flags", headers=own).status_code == 200
    with server.api() as api:
        api.delete(f"/tokens/{key_id}").raise_for_status()
    assert eventually(lambda: httpx.get(f"{relay.url}/sdk/flags", headers=own).status_code == 503,
                      timeout=10)


def test_ingestion_is_buffered_while_the_upstream_is_away_then_forwarded(
    server: Server, relays: list[RelayProcess], tmp_path: Path,
) -> None:
    key, _ = server.sdk_key()
    relay = _relay(relays, tmp_path, key, server.url).start()
    headers = {"Authorization": f"Bearer {key}"}
    server.stop()
    reports = {"reports": [{"instance": "sdk-behind-relay-1", "kind": "sdk", "version": 3}]}
    answer = httpx.post(f"{relay.url}/fleet/reports", json=reports, headers=headers)
    assert answer.status_code == 202 and answer.json() == {"buffered": True}
    assert httpx.get(f"{relay.url}/health").json()["ingest"]["pending"] == 1

    server.start()  # same port, same database

    def arrived() -> list[dict[str, Any]]:
        with server.api() as api:
            items = api.get("/fleet/instances", params={"kind": "sdk"}).json()["items"]
        return [i for i in items if i["instance"] == "sdk-behind-relay-1"]
    assert eventually(lambda: bool(arrived()), timeout=15)
    relay_instance = httpx.get(f"{relay.url}/health").json()["instance"]
    assert arrived()[0]["via"] == relay_instance
    health = httpx.get(f"{relay.url}/health").json()["ingest"]
    assert health["pending"] == 0 and health["dropped"] == 0
    # With the upstream there, the caller gets the upstream's own answer.
    answer = httpx.post(f"{relay.url}/fleet/reports", json=reports, headers=headers)
    assert answer.status_code == 202 and answer.json() == {"accepted": 1}
