"""Shutting a client down is bounded: ``close``/``flush`` (and ``aclose``/``aflush``) return
within their timeout against a server that accepts and never answers, one that refuses
connections and a healthy one, and a clean close logs no warning.

Each client here uses the SDK's default timings (40 s read timeout, 5 s per event post with
retries), the ones that made a shutdown take 20-40 s before it was bounded.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flagstaff.sdk import Client
from tests.builders import flag, snapshot
from tests.sdk.conftest import eventually, sdk_threads
from tests.sdk.fakeserver import KEY
from tests.serverprocess import server_process

ADMIN = "fsm_sdk_shutdown_admin_token_00000000000000000"

# Scheduling slack for a loaded 2-core machine; the unbounded shutdown took 20-40 s.
SLACK = 2.0
DEFAULT_TIMEOUT = 5.0  # documented in docs/sdk.md


def _experiment_snapshot() -> dict[str, Any]:
    return snapshot([
        flag("exp").env("production", lambda e: e.on().fallthrough("false").experiment(status="running")),
    ])


class BlackHole:
    """Accepts TCP connections, reads whatever arrives and never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(conn)  # held open, never read from nor written to

    def close(self) -> None:
        self.listener.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


def _refusing_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again: connections are refused


def _expose(client: Client, users: int = 50) -> None:
    for i in range(users):
        client.bool("exp", {"key": f"user-{i}"})


def _timed(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = call(*args, **kwargs)
    return result, time.monotonic() - started


def test_flush_and_close_are_bounded_against_a_black_hole(black_hole: BlackHole) -> None:
    client = Client(black_hole.url, sdk_key=KEY, bootstrap=_experiment_snapshot())
    assert eventually(lambda: len(black_hole.accepted) >= 1)  # the sync thread is waiting on it
    _expose(client)

    delivered, elapsed = _timed(client.flush, timeout=1.0)
    assert delivered is False
    assert elapsed <= 1.0 + SLACK

    closed, elapsed = _timed(client.close)  # the default bound
    assert closed is False  # the exposures could not be delivered
    assert elapsed <= DEFAULT_TIMEOUT + SLACK
    assert client.bool("exp", {"key": "user-1"}) in (True, False)  # evaluation still works
    assert eventually(lambda: not sdk_threads())  # nothing left blocked on the black hole


def test_close_is_bounded_against_a_refusing_server() -> None:
    client = Client(_refusing_url(), sdk_key=KEY, bootstrap=_experiment_snapshot())
    _expose(client)
    closed, elapsed = _timed(client.close, timeout=2.0)
    assert closed is False
    assert elapsed <= 2.0 + SLACK


def test_close_against_a_healthy_server_delivers_everything_and_logs_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        server_process(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "server.log",
                       admin_token=ADMIN) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"}) as api,
    ):
        api.post("/flags", json={"key": "exp", "type": "boolean",
                                 "environments": {"production": {"enabled": True}}})
        api.put("/experiments/exp", params={"environment": "production"}, json={
            "variations": [{"variant": "false", "weight": 50}, {"variant": "true", "weight": 50}],
            "control": "false", "primary_metric": "signup", "salt": "shutdown"})
        api.post("/experiments/exp/start").raise_for_status()
        key = api.post("/tokens", json={"name": "sdk", "kind": "sdk-server",
                                        "environment": "production"}).json()["secret"]
        client = Client(server.url, sdk_key=key)
        assert client.wait_until_ready(timeout=10)
        assert eventually(lambda: client._sync is not None and client._sync.streaming, timeout=15)
        _expose(client)
        with caplog.at_level(logging.DEBUG, logger="flagstaff"):
            closed, elapsed = _timed(client.close)
        assert closed is True and elapsed <= DEFAULT_TIMEOUT + SLACK
        report = api.get("/flags/exp/exposures", params={"environment": "production"}).json()
        assert sum(v["unique_users"] for v in report["variants"]) == 50
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [], [r.getMessage() for r in warnings]


def test_aflush_and_aclose_do_not_block_the_event_loop(black_hole: BlackHole) -> None:
    client = Client(black_hole.url, sdk_key=KEY, bootstrap=_experiment_snapshot())
    _expose(client)

    async def main() -> tuple[bool, bool, int, float]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        started = time.monotonic()
        flushed = await client.aflush(timeout=0.5)
        closed = await client.aclose(timeout=1.0)
        elapsed = time.monotonic() - started
        stop.set()
        await task
        return flushed, closed, ticks, elapsed

    flushed, closed, ticks, elapsed = asyncio.run(main())
    assert (flushed, closed) == (False, False)
    assert elapsed <= 1.5 + SLACK
    assert ticks >= 20  # the loop kept running while the client shut down (~150 ticks)
