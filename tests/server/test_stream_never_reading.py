"""A stream client that never reads is dropped once it cannot take its initial events within the
send timeout, even with no later event or keepalive to write; a reading client of the same key
still gets the snapshot and the changes.  On glibc, what the large snapshot and the dropped write
leave in the allocator is given back to the operating system afterwards."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path

import httpx
import pytest

from flagstaff.realtime.memory import malloc_trim
from tests.server.test_stream_harness import Api, ServerProcess, running_server, sse

pytestmark = pytest.mark.timeout(300)

# Keepalives far apart: only the initial write can be what finds the client stalled.
QUIET = {"FLAGSTAFF_STREAM_KEEPALIVE_SECONDS": "600", "FLAGSTAFF_STREAM_SEND_TIMEOUT_SECONDS": "2"}


def large_flag(key: str) -> dict[str, object]:
    """About 0.74 MB of JSON: more than any socket buffer takes for a client that never reads."""
    rules = [{"id": f"r{r}", "serve": {"variant": "true"}, "conditions": [
        {"attribute": "user.id", "operator": "in", "values": [f"{r}{i:07d}" for i in range(10_000)]}]}
        for r in range(7)]
    return {"key": key, "type": "boolean", "environments": {"production": {"enabled": True,
                                                                         "rules": rules}}}


def sse_metric(server: ServerProcess, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    match = re.search(rf'^{name}\{{transport="sse"\}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def process_metric(server: ServerProcess, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    match = re.search(rf'^{name} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_client_that_never_reads_its_snapshot_is_dropped(database_url: str, tmp_path: Path) -> None:
    with running_server(database_url, tmp_path, **QUIET) as server, Api(server) as api:
        key = api.sdk_key()
        for n in range(4):
            api.ok("POST", "/flags", json=large_flag(f"large-{n}"))
        silent = socket.socket()
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        silent.connect(("127.0.0.1", server.port))
        silent.sendall(f"GET /stream HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n\r\n"
                       .encode())
        try:
            # Not timed: generous, and nothing else would end it (keepalives are 600 s apart).
            deadline = time.monotonic() + 120
            while sse_metric(server, "flagstaff_stream_slow_consumers_dropped_total") < 1:
                assert time.monotonic() < deadline, "the silent client was never dropped"
                time.sleep(0.2)
            while sse_metric(server, "flagstaff_stream_clients") > 0:
                assert time.monotonic() < deadline, "the silent client is still counted"
                time.sleep(0.2)
            if malloc_trim() is not None:
                # glibc: what the large snapshot and the dropped write left in the allocator
                # is given back to the operating system (realtime/memory.py).
                while process_metric(server, "flagstaff_memory_trims_total") < 1:
                    assert time.monotonic() < deadline, "freed memory was never given back"
                    time.sleep(0.2)
        finally:
            silent.close()

        async def reader() -> None:
            async with sse(server, key) as stream:
                put = await stream.next(timeout=60)
                assert put.event == "put" and len(put.data) > 2_900_000
                api.toggle("large-0", False)
                assert (await stream.next(timeout=60)).event == "flag_updated"

        asyncio.run(reader())
