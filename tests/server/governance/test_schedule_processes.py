"""Scheduled changes across real server processes on one database: two replicas race for the
same due schedules (each is applied exactly once), then both are SIGKILLed around a due time
and another is due while every server is down (each is applied exactly once after restart,
the late one with its lateness recorded)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.governance.receiver import wait_for
from tests.serverprocess import ServerProcess

pytestmark = pytest.mark.slow
ADMIN = "fsm_schedule_processes_admin_0123456789abcdef"
ENV = {"FLAGSTAFF_SCHEDULER_POLL_SECONDS": "0.2", "FLAGSTAFF_LOG_LEVEL": "WARNING"}


def api(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"},
                        timeout=30)


def schedule(http: httpx.Client, key: str, at: datetime) -> dict[str, Any]:
    created = http.post("/flags", json={"key": key, "type": "boolean"})
    assert created.status_code == 201, created.text
    made = http.post("/schedules", json={
        "flag": key, "environment": "production", "action": "enable",
        "at": at.isoformat().replace("+00:00", "Z")})
    assert made.status_code == 201, made.text
    return dict(made.json())


def scheduled_writes(http: httpx.Client, key: str) -> list[dict[str, Any]]:
    items = http.get(f"/flags/{key}/audit").json()["items"]
    return [r for r in items if r["actor"].startswith("scheduled by")]


def all_done(http: httpx.Client, ids: list[int]) -> list[dict[str, Any]] | None:
    found = [http.get(f"/schedules/{i}").json() for i in ids]
    return found if all(s["status"] != "pending" for s in found) else None


def test_replicas_race_and_crashes_never_apply_a_schedule_twice_nor_lose_one(
    database_url: str, tmp_path: Path
) -> None:
    a = ServerProcess(database_url, tmp_path / "a.log", env=ENV, admin_token=ADMIN).start()
    b = ServerProcess(database_url, tmp_path / "b.log", env=ENV, admin_token=ADMIN).start()
    try:
        with api(a) as http:
            due = datetime.now(UTC) + timedelta(seconds=3)
            raced = [schedule(http, f"race-{n}", due)["id"] for n in range(6)]
            done = wait_for(lambda: all_done(http, raced), timeout=60, what="raced schedules")
            assert [s["status"] for s in done] == ["applied"] * 6
            for n in range(6):
                assert len(scheduled_writes(http, f"race-{n}")) == 1
                assert http.get(f"/flags/race-{n}").json()["version"] == 2

            now = datetime.now(UTC)
            around = schedule(http, "around-the-kill", now + timedelta(seconds=2))
            while_down = schedule(http, "while-down", now + timedelta(seconds=4))
        time.sleep(max(0.0, (now + timedelta(seconds=2) - datetime.now(UTC)).total_seconds()))
        a.kill()
        b.kill()
        time.sleep(max(0.0, (now + timedelta(seconds=5) - datetime.now(UTC)).total_seconds()))
        a.start()
        with api(a) as http:
            ids = [around["id"], while_down["id"]]
            done = wait_for(lambda: all_done(http, ids), timeout=60, what="schedules after restart")
            assert [s["status"] for s in done] == ["applied", "applied"]
            assert done[1]["late_ms"] >= 1000  # due while every server was down
            for key in ("around-the-kill", "while-down"):
                assert len(scheduled_writes(http, key)) == 1
                flag = http.get(f"/flags/{key}").json()
                assert flag["version"] == 2 and flag["environments"]["production"]["enabled"]
    finally:
        a.stop()
        b.stop()
