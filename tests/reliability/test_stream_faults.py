"""Faults: open streams while the database is down (PostgreSQL).

A real server process holds an SSE client on ``/stream``.  The database then refuses new
connections and every existing backend is terminated (the approach of ``test_faults.py``).
Meanwhile the client must keep its connection and its keepalives, the server must stay up and
log the outage once rather than on every poll; when the database is back, a change made
through the API must reach that same client without a restart or a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import PG_ADMIN_DSN
from tests.server.test_stream_harness import Api, bearer, running_server
from tests.serverprocess import ServerProcess

KEEPALIVE = 0.5
POLL = 0.2
OUTAGE = 4.0
# The change feed (polls) and the change source (LISTEN on PostgreSQL).
FEED_LOGGERS = frozenset({"flagstaff.realtime.feed", "flagstaff.server.changesource"})


@dataclass
class RawStream:
    """Every line of one ``/stream`` response with the time it arrived (comments included,
    which SSE client libraries hide: the keepalives are what is checked here)."""

    lines: list[tuple[float, str]] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def keepalives(self, start: float, end: float) -> list[float]:
        return [t for t, line in self.lines if line == ": keepalive" and start <= t <= end]

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """``(event type, data)`` for every complete event so far."""
        found: list[tuple[str, dict[str, Any]]] = []
        kind = None
        for _, line in self.lines:
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") and kind is not None:
                found.append((kind, json.loads(line.removeprefix("data: "))))
                kind = None
        return found

    async def wait_for(self, kind: str, key: str | None, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for found, data in self.events():
                if found == kind and data.get("key") == key:
                    return data
            assert not self.ended.is_set(), "the stream ended"
            await asyncio.sleep(0.05)
        pytest.fail(f"no {kind} for {key!r} within {timeout}s; got {[e[0] for e in self.events()]}")


@contextlib.asynccontextmanager
async def raw_stream(server: ServerProcess, key: str) -> AsyncIterator[RawStream]:
    stream = RawStream()
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(10, read=30)) as client,
        client.stream("GET", "/stream", headers=bearer(key)) as response,
    ):
        assert response.status_code == 200

        async def read() -> None:
            try:
                async for line in response.aiter_lines():
                    stream.lines.append((time.monotonic(), line))
            except httpx.HTTPError:
                pass
            finally:
                stream.ended.set()

        reader = asyncio.create_task(read())
        try:
            yield stream
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


@contextlib.contextmanager
def database_down(database_url: str) -> Iterator[None]:
    """New connections refused and every open one terminated, until the block ends."""
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'.encode())
        try:
            admin.execute(b"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          b"WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'.encode())


def _warnings(log: Path, since: int) -> list[dict[str, Any]]:
    entries = []
    for line in log.read_text().splitlines()[since:]:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("level") in ("warning", "error", "critical"):
                entries.append(entry)
    return entries


def test_open_streams_survive_a_database_outage_and_get_changes_after_it(
    database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("connections are refused and terminated on PostgreSQL")
    env = {"FLAGSTAFF_STREAM_KEEPALIVE_SECONDS": str(KEEPALIVE),
           "FLAGSTAFF_STREAM_POLL_INTERVAL_SECONDS": str(POLL)}
    with running_server(database_url, tmp_path, **env) as server, Api(server) as api:
        api.create_flag("before")
        key = api.sdk_key()
        assert server.process is not None

        async def scenario() -> None:
            async with raw_stream(server, key) as stream:
                await stream.wait_for("put", None, timeout=10)
                snapshot = stream.events()[0][1]
                assert snapshot["flags"]["before"]["enabled"] is True

                log_mark = len(server.log_path.read_text().splitlines())
                with database_down(database_url):
                    started = time.monotonic()
                    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                        # The outage is real: the API and a new stream answer 503.
                        ready = await http.get("/ready")
                        assert ready.status_code == 503, ready.text
                        write = await http.post("/flags", json={"key": "during", "type": "boolean"},
                                                headers=bearer(server.admin_token))
                        assert write.status_code == 503
                        assert write.json()["error"]["code"] == "unavailable"
                        refused = await http.get("/stream", headers=bearer(key))
                        assert refused.status_code == 503
                        assert refused.json()["error"]["code"] == "unavailable"
                    await asyncio.sleep(OUTAGE - (time.monotonic() - started))
                    ended = time.monotonic()
                    assert not stream.ended.is_set(), "the open stream was dropped"
                    assert server.process is not None and server.process.poll() is None
                    beats = stream.keepalives(started, ended)
                    # One every KEEPALIVE seconds (plus up to a ticker period of lateness).
                    assert len(beats) >= OUTAGE / KEEPALIVE - 3, beats
                    gaps = [b - a for a, b in zip([started, *beats], [*beats, ended], strict=True)]
                    assert max(gaps) < 3 * KEEPALIVE, gaps
                outage_logs = _warnings(server.log_path, log_mark)

                # ~20 failed polls and a few LISTEN reconnects, but each mechanism warns once
                # per outage, and nothing is an error (a new stream was a 500 here once).
                messages = [e["message"] for e in outage_logs]
                assert not [e for e in outage_logs if e["level"] != "warning"], messages
                feed = [e["message"] for e in outage_logs
                        if e["logger"] in FEED_LOGGERS]
                assert len([m for m in feed if m.startswith("reading the change log")]) == 1, feed
                assert len([m for m in feed if m.startswith("LISTEN")]) <= 1, feed
                assert len(feed) <= 2, feed

                # Back: the same connection gets a change made through the API.
                async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                    deadline = time.monotonic() + 15
                    while (await http.get("/ready")).status_code != 200:
                        assert time.monotonic() < deadline, "the server did not recover"
                        await asyncio.sleep(0.1)
                await asyncio.to_thread(api.create_flag, "after")
                await asyncio.to_thread(api.toggle, "before", False)
                created = await stream.wait_for("flag_updated", "after", timeout=10)
                assert created["flag"]["enabled"] is True
                toggled = await stream.wait_for("flag_updated", "before", timeout=10)
                assert toggled["flag"]["enabled"] is False
                assert [kind for kind, _ in stream.events()].count("put") == 1  # never re-put
                assert not [e for e in stream.events() if e[1].get("key") == "during"]

        asyncio.run(scenario())
        assert server.process.poll() is None
        assert "reading the change log works again" in server.log_path.read_text()
