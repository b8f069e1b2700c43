"""Relay test fixtures: a real server process to put relays in front of."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serverprocess import ServerProcess

ADMIN = "fsm_relay_tests_admin_token_00000000000000000000"
FLAG = "new-orchestrator-v2"


class Server(ServerProcess):
    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN}"})

    def sdk_key(self, name: str = "relay") -> tuple[str, str]:
        """A new server-side key of production: (secret, token id)."""
        with self.api() as api:
            answer = api.post("/tokens", json={"name": name, "kind": "sdk-server",
                                               "environment": "production"})
            answer.raise_for_status()
            return str(answer.json()["secret"]), str(answer.json()["id"])

    def kill_flag(self) -> None:
        with self.api() as api:
            api.post(f"/flags/{FLAG}/environments/production/kill").raise_for_status()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    process = Server(f"sqlite:///{tmp_path / 'flagstaff.db'}", tmp_path / "server.log",
                     admin_token=ADMIN,
                     env={"FLAGSTAFF_DEMO": "true", "FLAGSTAFF_LOG_LEVEL": "WARNING"})
    process.start()
    try:
        yield process
    finally:
        process.kill()
