"""Fault tests against real ``python -m flagstaff.server`` processes, on SQLite and PostgreSQL.

Clients stream from a real server; the server is killed with SIGKILL, flags change while it is
down (through the store, on the same database) and after it restarts (through the API), and
every client must end with exactly the server's state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flagstaff.sdk import Client, ClientStatus
from tests.sdk.conftest import FAST, eventually
from tests.serverprocess import ServerProcess

ADMIN = "fsm_sdk_tests_admin_token_000000000000000000000"
pytestmark = pytest.mark.slow


class RealServer(ServerProcess):
    """A real server process with the admin helpers these tests use."""

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN}"})

    def sdk_key(self) -> str:
        with self.api() as api:
            response = api.post("/tokens", json={"name": "sdk", "kind": "sdk-server",
                                                 "environment": "production"})
            response.raise_for_status()
            return str(response.json()["secret"])

    def snapshot(self, key: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/sdk/flags", headers={"Authorization": f"Bearer {key}"})
        response.raise_for_status()
        return dict(response.json())


@pytest.fixture
def real_server(tmp_path: Path, database_url: str) -> Iterator[RealServer]:
    server = RealServer(
        database_url, tmp_path / "server.log", admin_token=ADMIN,
        # The demo flags give the clients something to stream.
        env={"FLAGSTAFF_DEMO": "true", "FLAGSTAFF_STREAM_POLL_INTERVAL_SECONDS": "0.2"},
    )
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _state(client: Client) -> dict[str, object]:
    return {"version": client.version, "flags": client._state.raw()["flags"]}


def test_sigkill_changes_while_down_and_restart_converge(real_server: RealServer) -> None:
    from flagstaff.store import Store

    key = real_server.sdk_key()
    options = dataclasses.replace(FAST, backoff_base=0.05, backoff_cap=0.5)
    clients = [Client(real_server.url, sdk_key=key, options=options) for _ in range(5)]
    try:
        assert all(c.wait_until_ready(timeout=10) for c in clients)
        flag_keys = sorted(real_server.snapshot(key)["flags"])
        assert flag_keys
        with real_server.api() as api:
            api.patch(f"/flags/{flag_keys[0]}/environments/production",
                      json={"enabled": False}).raise_for_status()
        want = real_server.snapshot(key)
        assert eventually(lambda: all(_state(c) == {"version": want["version"], "flags": want["flags"]}
                                      for c in clients), timeout=10)

        real_server.kill()
        store = Store.open(real_server.database_url)
        try:
            for flag_key in flag_keys[1:3]:
                store.set_flag_enabled(key=flag_key, environment="production", enabled=False,
                                       actor="fault test")
            store.archive_flag(key=flag_keys[-1], actor="fault test")
        finally:
            store.close()
        real_server.start()
        with real_server.api() as api:
            api.patch(f"/flags/{flag_keys[0]}/environments/production",
                      json={"enabled": True}).raise_for_status()
        want = real_server.snapshot(key)
        assert flag_keys[-1] not in want["flags"]
        expected = {"version": want["version"], "flags": want["flags"]}
        assert eventually(lambda: all(_state(c) == expected for c in clients), timeout=20), [
            _state(c)["version"] for c in clients]
    finally:
        for client in clients:
            client.close()


def test_exposures_counts_and_track_reach_the_real_server_once(real_server: RealServer) -> None:
    from flagstaff.sdk.recorder import EventOptions
    from flagstaff.sdk.sinks import HttpSink
    from tests.builders import flag

    definition = flag("checkout-exp").env(
        "production", lambda e: e.on().fallthrough("false").experiment(status="draft")).build()
    with real_server.api() as api:
        api.post("/flags", json=definition).raise_for_status()
        api.post("/experiments/checkout-exp/start", params={"environment": "production"}
                 ).raise_for_status()
    key = real_server.sdk_key()
    options = EventOptions(flush_interval=60.0, counts_interval=60.0)
    with Client(real_server.url, sdk_key=key, options=FAST, event_options=options) as client:
        assert client.wait_until_ready(timeout=10)
        assert eventually(lambda: client.detail("checkout-exp", {"key": "u0"}).in_experiment)
        variants = {client.detail("checkout-exp", {"key": f"u{i}"}).variant for i in range(20)}
        assert variants == {"true", "false"}
        for i in range(20):  # deduplicated within the window
            client.bool("checkout-exp", {"key": f"u{i}"})
        client.track("checkout", {"key": "u1"})
        client.flush()
        # A retried batch (same id) is not counted twice.
        sink = HttpSink(real_server.url, key)
        batch = {"batch_id": "retry-test-1", "events": [{
            "flag_key": "checkout-exp", "variant": "true", "user_key": "u-retry",
            "timestamp": "2026-01-01T00:00:00.000Z", "reason": "SPLIT", "flag_version": 1,
            "in_experiment": True}]}
        try:
            sink.send("exposures", batch)
            sink.send("exposures", batch)
        finally:
            sink.close()
        assert sink.sent == 2 and sink.failed == 0
    with real_server.api() as api:
        report = api.get("/flags/checkout-exp/exposures",
                         params={"environment": "production"}).json()
    by_variant = {v["variant"]: v for v in report["variants"]}
    assert sum(v["unique_users"] for v in by_variant.values()) == 21
    assert report["total"]["evaluations"] == 21


def test_an_address_over_the_auth_failure_limit_is_waited_out_not_given_up(
    tmp_path: Path,
) -> None:
    """A 429 with Retry-After (here: other clients on this address guessed keys) is temporary:
    the SDK neither reports an error nor stops, and syncs once the window has passed."""
    window = 4.0
    server = RealServer(
        "sqlite:///" + str(tmp_path / "limit.db"), tmp_path / "server.log", admin_token=ADMIN,
        env={"FLAGSTAFF_DEMO": "true", "FLAGSTAFF_MAX_AUTH_FAILURES": "3",
             "FLAGSTAFF_AUTH_FAILURE_WINDOW_SECONDS": str(window)},
    )
    server.start()
    try:
        key = server.sdk_key()
        for _ in range(3):
            guess = httpx.get(f"{server.url}/stream",
                              headers={"Authorization": "Bearer fss_guess_0000000000"})
            assert guess.status_code == 401
        assert httpx.get(f"{server.url}/sdk/flags",
                         headers={"Authorization": f"Bearer {key}"}).status_code == 429
        statuses: list[object] = []
        client = Client(server.url, sdk_key=key, options=dataclasses.replace(FAST, backoff_cap=0.5))
        client.on_status(lambda status, message: statuses.append(status))
        try:
            assert client.wait_until_ready(timeout=window + 20)
            assert client.error is None
            assert _state(client)["flags"] == server.snapshot(key)["flags"]
            assert ClientStatus.ERROR not in statuses
        finally:
            client.close()
    finally:
        server.stop()


def test_after_a_restart_the_stream_is_back_within_a_probe_interval(tmp_path: Path) -> None:
    """A SIGTERM restart: however long the backoff step (here up to 120 s), the client probes
    ``/health`` and streams again about one probe interval after the server is back."""
    import time

    server = RealServer("sqlite:///" + str(tmp_path / "restart.db"), tmp_path / "server.log",
                        admin_token=ADMIN, env={"FLAGSTAFF_DEMO": "true"})
    server.start()
    try:
        key = server.sdk_key()
        options = dataclasses.replace(FAST, backoff_base=120, backoff_cap=120, probe_interval=0.5,
                                      read_timeout=None, poll_after=3600)
        client = Client(server.url, sdk_key=key, options=options)
        try:
            assert client.wait_until_ready(timeout=10)
            sync = client._sync
            assert sync is not None
            assert eventually(lambda: sync.streaming, timeout=10)
            connects = sync.stream_connects
            server.stop()
            time.sleep(3)  # the outage
            server.start()
            back = time.monotonic()
            assert eventually(lambda: sync.stream_connects > connects, timeout=60)
            waited = time.monotonic() - back
            # 0.5 s probes and up to 0.5 s of jitter; the rest is slack for a loaded machine.
            assert waited < 6, waited
            assert sync.probes >= 1
            first = sorted(server.snapshot(key)["flags"])[0]
            with server.api() as api:
                api.patch(f"/flags/{first}/environments/production",
                          json={"enabled": False}).raise_for_status()
            want = server.snapshot(key)
            assert eventually(lambda: _state(client) == {"version": want["version"],
                                                         "flags": want["flags"]}, timeout=10)
        finally:
            client.close()
    finally:
        server.stop()
