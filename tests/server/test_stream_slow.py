"""Slow consumers: a client that stops reading is dropped, counted, and others are unaffected."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from tests.server.test_metrics import scrape
from tests.server.test_stream_harness import Api, ServerProcess, running_server, sse


def wait_for_metric(server: ServerProcess, name: str, value: float, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        current = scrape(server).get(name)
        if current == value:
            return
        assert time.monotonic() < deadline, f"{name} stayed {current}, expected {value}"
        time.sleep(0.1)


def stalled_stream(server: ServerProcess, key: str) -> socket.socket:
    """A raw HTTP client with a tiny receive window that sends the request and never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    request = (f"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
               "Accept: text/event-stream\r\n\r\n")
    sock.sendall(request.encode())
    return sock


def read_to_eof(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_client_that_stops_reading_is_disconnected_and_counted(tmp_path: Path) -> None:
    knobs = {"FLAGSTAFF_STREAM_BUFFER_SIZE": "2", "FLAGSTAFF_STREAM_SEND_TIMEOUT_SECONDS": "2"}
    with running_server(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path, **knobs) as server, \
            Api(server) as api:
        key = api.sdk_key()
        # ~130 KB per event: the kernel's socket buffers (autotuned up to a few MB on
        # loopback) and the server's own write buffer fill after a few dozen of them.
        targets = [{"variant": "true", "values": [f"user-{n:08d}" for n in range(9000)]}]
        dropped = "flagstaff_stream_slow_consumers_dropped_total{transport=sse}"

        async def scenario() -> None:
            async with sse(server, key) as healthy:
                await healthy.next()
                stalled = stalled_stream(server, key)
                try:
                    await asyncio.to_thread(
                        wait_for_metric, server, "flagstaff_stream_clients{transport=sse}", 2)
                    written = 0
                    while scrape(server)[dropped] == 0:
                        assert written < 150, "the stalled client was never dropped"
                        for _ in range(5):
                            await asyncio.to_thread(
                                api.create_flag, f"big-{written}",
                                environments={"production": {"enabled": True,
                                                             "targets": targets}})
                            written += 1
                    await asyncio.to_thread(
                        wait_for_metric, server, "flagstaff_stream_clients{transport=sse}", 1)
                    # The server closed its end: reading now drains what was in flight, then EOF.
                    received = await asyncio.to_thread(read_to_eof, stalled, 15)
                    assert received.startswith(b"HTTP/1.1 200")
                    assert received.count(b"event: flag_updated") < written
                finally:
                    stalled.close()
                # Counted once, and the reader that keeps up got every event, in order.
                assert scrape(server)[dropped] == 1
                keys = [(await healthy.next(timeout=10)).data for _ in range(written)]
                assert all(f'"key":"big-{n}"' in k for n, k in enumerate(keys))

        asyncio.run(scenario())
