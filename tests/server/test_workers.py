"""``--workers 2``: one port served by two processes on one database (SQLite and PostgreSQL).

The parent does the one-time work once (the admin token line is printed once, the demo flags
loaded once); a write through one worker reaches a stream held by the other; a due schedule is
applied once although both workers run a scheduler; the authentication-failure limit holds per
worker, so an address gets at most ``workers x limit`` failures answered per window; workers
whose parent was killed stop serving.

Which worker serves a connection is the kernel's choice, so the tests find out: a worker's
``/metrics`` counts only its own stream clients, and a keep-alive connection stays on the worker
that accepted it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from flagstaff.flagfile import demo_path, load_file
from tests.server.governance.receiver import wait_for
from tests.server.governance.test_schedule_processes import schedule, scheduled_writes
from tests.server.test_stream_harness import FAST, Api, sse
from tests.serverprocess import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
AUTH_LIMIT = 3
ENV = {
    **FAST,
    "FLAGSTAFF_DEMO": "true",
    "FLAGSTAFF_SCHEDULER_POLL_SECONDS": "0.2",
    "FLAGSTAFF_MAX_AUTH_FAILURES": str(AUTH_LIMIT),
    "FLAGSTAFF_LOG_LEVEL": "WARNING",
}


@contextmanager
def two_workers(database_url: str, log_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(database_url, log_path, env=ENV, args=["--workers", "2"])
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            # The parent stops its workers gracefully; on a loaded machine that takes a while.
            assert server.stop(timeout=120) == 0


def stream_clients(client: httpx.Client) -> float:
    """Stream clients open on the worker behind this (keep-alive) connection."""
    text = client.get("/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("flagstaff_stream_clients{"))  # fmt: skip


def connection_to_a_worker_without_streams(server: ServerProcess) -> httpx.Client:
    """A keep-alive admin connection to a worker holding no stream (another worker holds it)."""
    deadline = time.monotonic() + 180  # the second worker may still be starting
    while time.monotonic() < deadline:
        client = httpx.Client(base_url=server.url, timeout=30,
                              headers={"Authorization": f"Bearer {server.admin_token}"})
        if stream_clients(client) == 0:
            return client
        client.close()
    raise AssertionError("every connection landed on the worker holding the stream")


def test_two_workers_share_one_start_streams_schedules_and_auth_limits(
    database_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    with two_workers(database_url, log) as server, Api(server) as api:
        # One-time work ran once: one token line, the demo flags loaded once.
        assert log.read_text().count("admin token created") == 1
        demo_flags = {str(flag["key"]) for flag in load_file(demo_path()).flags}
        listed = api.client.get("/flags", params={"limit": 500}).json()["items"]
        assert sorted(f["key"] for f in listed) == sorted(demo_flags)

        key = api.sdk_key()

        async def write_on_the_other_worker_reaches_the_stream() -> None:
            async with sse(server, key) as stream:
                await stream.next()  # the initial put: the stream is open and counted
                other = connection_to_a_worker_without_streams(server)
                try:
                    made = other.post("/flags", json={"key": "from-the-other-worker",
                                                      "type": "boolean"})
                    assert made.status_code == 201, made.text
                    assert stream_clients(other) == 0  # still the other worker
                finally:
                    other.close()
                event = await stream.next(timeout=10.0)
                assert event.event == "flag_updated"
                assert json.loads(event.data)["key"] == "from-the-other-worker"

        asyncio.run(write_on_the_other_worker_reaches_the_stream())

        # Both workers run a scheduler; the due schedule is applied once.
        made = schedule(api.client, "scheduled", datetime.now(UTC) + timedelta(seconds=2))
        done = wait_for(
            lambda: (s := api.client.get(f"/schedules/{made['id']}").json())["status"] != "pending"
            and s, timeout=60, what="the schedule")
        assert done["status"] == "applied"
        time.sleep(1.0)  # several more polls of both schedulers
        assert len(scheduled_writes(api.client, "scheduled")) == 1
        assert api.client.get("/flags/scheduled").json()["version"] == 2

    # The address is blocked last: the limit applies to every request from it.
    with two_workers(database_url, tmp_path / "limits.log") as server:
        bad = {"Authorization": "Bearer fsm_wrong"}
        with httpx.Client(base_url=server.url, headers=bad, timeout=30) as pinned:
            codes = [pinned.get("/flags").status_code for _ in range(AUTH_LIMIT + 1)]
        assert codes == [401] * AUTH_LIMIT + [429]  # per worker, the configured limit
        # Fresh connections spread over both workers: the other worker answers at most its
        # own limit of failures, so at most workers x limit in all.
        fresh = [httpx.get(f"{server.url}/flags", headers=bad, timeout=30).status_code
                 for _ in range(20)]
        assert set(fresh) <= {401, 429}
        assert fresh.count(401) <= AUTH_LIMIT

        # A parent killed outright cannot stop its workers: they stop by themselves.
        server.kill()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{server.url}/health", timeout=5)
            except httpx.ConnectError:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the workers went on serving after their parent was killed")
