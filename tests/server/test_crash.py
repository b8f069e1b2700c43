"""Crash safety: SIGKILL a real server mid-stream of writes, restart it on
the same database, and find every acknowledged write present and flag state = last audit entry."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import ADMIN_SECRET, auth
from tests.serverprocess import server_process

FLAGS = ("crash-a", "crash-b", "crash-c")


ENV = {"FLAGSTAFF_STREAM_POLL_INTERVAL_SECONDS": "5"}


def write_until_dead(url: str, acked: list[dict[str, Any]]) -> None:
    n = 0
    with httpx.Client(base_url=url, headers=auth(ADMIN_SECRET), timeout=5) as http:
        while True:
            key = FLAGS[n % len(FLAGS)]
            try:
                response = http.patch(f"/flags/{key}", json={"description": f"write-{n}"})
            except httpx.TransportError:
                return
            if response.is_success:
                acked.append(response.json())
            n += 1


@pytest.mark.slow
def test_sigkill_mid_writes_loses_no_acknowledged_write(database_url: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    acked: list[dict[str, Any]] = []
    with server_process(database_url, log, admin_token=ADMIN_SECRET, **ENV) as server:
        url = server.url
        with httpx.Client(base_url=url, headers=auth(ADMIN_SECRET)) as http:
            for key in FLAGS:
                assert http.post("/flags", json={"key": key, "type": "boolean"}).status_code == 201
        writer = threading.Thread(target=write_until_dead, args=(url, acked))
        writer.start()
        deadline = time.monotonic() + 20
        while len(acked) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()
        writer.join(timeout=30)
    assert len(acked) >= 30, "the writer never got going"

    with server_process(database_url, log, admin_token=ADMIN_SECRET, **ENV) as server, httpx.Client(
        base_url=server.url, headers=auth(ADMIN_SECRET), timeout=10
    ) as http:
        for key in FLAGS:
            current = http.get(f"/flags/{key}").json()
            history = http.get(f"/flags/{key}/audit", params={"limit": 500}).json()["items"]
            # The audit records the stored definition; reads add the derived default_value.
            derived = current.pop("default_value")
            assert derived is False
            assert history[-1]["after"] == current, "flag state differs from its last audit entry"
            assert [h["after"]["version"] for h in history] == list(range(1, current["version"] + 1))
            audited = {(h["after"]["version"], h["after"]["description"]) for h in history}
            mine = [a for a in acked if a["key"] == key]
            assert mine
            for write in mine:
                assert (write["version"], write["description"]) in audited
            assert current["version"] >= max(w["version"] for w in mine)
