"""Real server processes and real clients for the real-time tests (and a test of shutdown).

``running_server`` starts ``python -m flagstaff.server`` on a free port with a known admin token
and the streaming knobs a test asks for; ``Api`` drives the management API over HTTP;
``SseClient`` reads ``/stream`` with httpx + httpx-sse and hands events over with timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from tests.serverprocess import ServerProcess, server_process

FAST = {
    "FLAGSTAFF_STREAM_KEEPALIVE_SECONDS": "0.5",
    "FLAGSTAFF_STREAM_POLL_INTERVAL_SECONDS": "0.2",
}


@contextlib.contextmanager
def running_server(database_url: str, tmp_path: Path, **env: str) -> Iterator[ServerProcess]:
    log_path = tmp_path / f"server-{secrets.token_hex(4)}.log"
    with server_process(database_url, log_path, **{**FAST, **env}) as server:
        yield server


class Api:
    """The management API as an admin, over a real HTTP connection."""

    def __init__(self, server: ServerProcess) -> None:
        self.client = httpx.Client(
            base_url=server.url, timeout=10,
            headers={"Authorization": f"Bearer {server.admin_token}"},
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def sdk_key(self, environment: str = "production", kind: str = "sdk-server") -> str:
        body = {"name": f"key-{secrets.token_hex(3)}", "kind": kind, "environment": environment}
        return str(self.ok("POST", "/tokens", json=body)["secret"])

    def create_flag(self, key: str, **fields: Any) -> dict[str, Any]:
        body = {"key": key, "type": "boolean",
                "environments": {"production": {"enabled": True}}, **fields}
        return dict(self.ok("POST", "/flags", json=body))

    def toggle(self, key: str, enabled: bool, environment: str = "production") -> None:
        self.ok("PATCH", f"/flags/{key}/environments/{environment}", json={"enabled": enabled})


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


class SseClient:
    """One ``/stream`` connection; ``next()`` waits for the next event with a timeout.

    A reader task moves events into a queue, because cancelling ``anext()`` on the event
    iterator after a timeout would close it.
    """

    def __init__(self, response: httpx.Response, events: AsyncIterator[ServerSentEvent]) -> None:
        self.response = response
        self._queue: asyncio.Queue[ServerSentEvent | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read(events))
        self.last_id: str | None = None

    async def _read(self, events: AsyncIterator[ServerSentEvent]) -> None:
        try:
            async for event in events:
                self._queue.put_nowait(event)
        except httpx.HTTPError:
            pass  # a dropped connection ends the stream like a clean close
        finally:
            self._queue.put_nowait(None)

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def next(self, timeout: float = 5.0) -> ServerSentEvent:
        event = await asyncio.wait_for(self._queue.get(), timeout)
        if event is None:
            self._queue.put_nowait(None)
            raise StopAsyncIteration
        if event.id:
            self.last_id = event.id
        return event

    async def assert_quiet(self, seconds: float) -> None:
        """No event arrives for ``seconds`` (keepalive comments are not events)."""
        try:
            event = await self.next(timeout=seconds)
        except TimeoutError:
            return
        pytest.fail(f"unexpected event {event.event} id={event.id}: {event.data[:200]}")


@contextlib.asynccontextmanager
async def sse(
    server: ServerProcess, key: str, last_event_id: str | None = None
) -> AsyncIterator[SseClient]:
    headers = bearer(key)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(10, read=30)) as client,
        aconnect_sse(client, "GET", "/stream", headers=headers) as source,
    ):
        assert source.response.status_code == 200, await source.response.aread()
        stream = SseClient(source.response, source.aiter_sse())
        try:
            yield stream
        finally:
            await stream.close()


def test_sigterm_ends_open_streams_and_the_server_exits(tmp_path: Path) -> None:
    """uvicorn waits for open responses before shutting down, so streams must end on SIGTERM."""
    database_url = f"sqlite:///{tmp_path / 'flagstaff.db'}"
    with running_server(database_url, tmp_path) as server, Api(server) as api:
        key = api.sdk_key()

        async def scenario() -> None:
            async with sse(server, key) as stream:
                assert (await stream.next()).event == "put"
                started = time.monotonic()
                assert server.process is not None
                server.process.send_signal(signal.SIGTERM)
                # The stream ends (the iterator finishes) instead of hanging.
                with pytest.raises(StopAsyncIteration):
                    while True:
                        await stream.next(timeout=10)
                assert time.monotonic() - started < 5

        asyncio.run(scenario())
        assert server.process is not None
        # uvicorn re-raises the signal it handled once it has shut down gracefully.
        assert server.process.wait(timeout=10) in (0, -signal.SIGTERM)
