"""A ``/stream`` client that goes away is noticed at once, without a task per connection.

The SSE writer drives the server's ``receive()`` by hand from its futures' callbacks (see
``realtime.sse._SseWriter.watch_disconnect``); these tests pin down that it behaves as the task it
replaced did, in-process with fake ``receive`` callables and against a real server.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path

import httpx
from starlette.types import Message

from flagstaff.realtime import Subscriber
from flagstaff.realtime.sse import _SseWriter
from flagstaff.server.metrics import Metrics
from tests.server.test_stream_harness import Api, running_server
from tests.serverprocess import ServerProcess


class FakeReceive:
    """An ASGI ``receive`` in the style of uvicorn's: an event, a body message first."""

    def __init__(self, *, body_messages: int = 1) -> None:
        self.event = asyncio.Event()
        self.disconnected = False
        self.body_messages = body_messages
        self.calls = 0
        self.closed = 0

    async def __call__(self) -> Message:
        self.calls += 1
        if self.body_messages:
            self.body_messages -= 1
            return {"type": "http.request", "body": b"", "more_body": False}
        try:
            await self.event.wait()
        except GeneratorExit:
            self.closed += 1
            raise
        self.event.clear()
        return {"type": "http.disconnect"} if self.disconnected else {
            "type": "http.request", "body": b"x", "more_body": True}

    def disconnect(self) -> None:
        self.disconnected = True
        self.event.set()


def _writer() -> tuple[_SseWriter, Subscriber]:
    subscriber = Subscriber(environment="production", transport="sse", maxsize=8)
    return _SseWriter(_no_send, subscriber, 3000, Metrics()), subscriber


async def _no_send(message: Message) -> None:
    pass


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_disconnect_closes_the_subscriber_at_once_and_body_messages_are_skipped() -> None:
    async def scenario() -> None:
        writer, subscriber = _writer()
        receive = FakeReceive(body_messages=2)
        tasks = len(asyncio.all_tasks())
        writer.watch_disconnect(receive)
        # Watching costs no task of its own.
        assert len(asyncio.all_tasks()) == tasks
        receive.event.set()  # a body chunk arriving: read and ignored
        await _settle()
        assert subscriber.closed_reason is None
        receive.disconnect()
        await _settle()
        assert subscriber.closed_reason == "disconnected"
        assert receive.calls == 4
        writer.stop_watching()  # after the end: harmless

    asyncio.run(scenario())


def test_a_client_already_gone_is_noticed_before_anything_is_sent() -> None:
    async def scenario() -> None:
        writer, subscriber = _writer()
        receive = FakeReceive()
        receive.disconnected = True
        receive.event.set()
        writer.watch_disconnect(receive)
        assert subscriber.closed_reason == "disconnected"

    asyncio.run(scenario())


def test_stop_watching_abandons_the_receive_and_nothing_fires_later() -> None:
    async def scenario() -> None:
        writer, subscriber = _writer()
        receive = FakeReceive()
        writer.watch_disconnect(receive)
        await _settle()
        writer.stop_watching()
        assert receive.closed == 1  # the pending receive() was closed, running its cleanup
        assert not receive.event._waiters
        receive.disconnect()
        await _settle()
        assert subscriber.closed_reason is None

    asyncio.run(scenario())


def test_stop_watching_after_the_wake_up_was_scheduled_does_not_resume_it() -> None:
    async def scenario() -> None:
        writer, subscriber = _writer()
        receive = FakeReceive()
        writer.watch_disconnect(receive)
        receive.disconnect()  # the done callback is now scheduled, not yet run
        writer.stop_watching()
        await _settle()
        assert subscriber.closed_reason is None

    asyncio.run(scenario())


def test_bare_yields_and_failures_of_receive() -> None:
    async def yielding() -> Message:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return {"type": "http.disconnect"}

    async def failing() -> Message:
        await asyncio.sleep(0)
        raise RuntimeError("broken server")

    async def scenario() -> None:
        writer, subscriber = _writer()
        writer.watch_disconnect(yielding)
        assert subscriber.closed_reason is None
        await _settle()
        assert subscriber.closed_reason == "disconnected"

        writer, subscriber = _writer()
        writer.watch_disconnect(failing)
        await _settle()
        # Blind to disconnects from then on: the stream ends and the client reconnects.
        assert subscriber.closed_reason == "disconnected"

    asyncio.run(scenario())


def _clients(server: ServerProcess) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    match = re.search(r'^flagstaff_stream_clients\{transport="sse"\} (\S+)$', text, re.M)
    assert match is not None
    return float(match.group(1))


def _open_stream(server: ServerProcess, key: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(f"GET /stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
    head = b""
    while b"event: put" not in head:
        chunk = sock.recv(65536)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 200 "), head
    return sock


def test_a_vanished_client_is_unsubscribed_promptly(tmp_path: Path) -> None:
    # Keepalives far apart, so no write is what finds the closed socket.
    with running_server(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path,
                        FLAGSTAFF_STREAM_KEEPALIVE_SECONDS="120") as server, Api(server) as api:
        key = api.sdk_key()
        staying, leaving = _open_stream(server, key), _open_stream(server, key)
        try:
            assert _clients(server) == 2
            leaving.close()
            deadline = time.monotonic() + 2
            while _clients(server) != 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _clients(server) == 1
            # The other connection still gets changes.
            api.create_flag("after-the-disconnect")
            received = b""
            while b"after-the-disconnect" not in received:
                chunk = staying.recv(65536)
                assert chunk, received
                received += chunk
        finally:
            staying.close()
            leaving.close()


def test_only_uvicorns_receive_is_stepped_by_hand() -> None:
    """Another server's ``receive`` (or the test client's) may need a current task: it gets
    the watcher task instead of being stepped from callbacks."""
    from uvicorn.protocols.http.h11_impl import RequestResponseCycle as H11Cycle
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle as HttptoolsCycle

    from flagstaff.realtime.sse import _drivable_by_hand

    for cycle in (HttptoolsCycle, H11Cycle):
        instance = cycle.__new__(cycle)
        assert _drivable_by_hand(instance.receive)

    async def other_receive() -> Message:
        return {"type": "http.disconnect"}

    assert not _drivable_by_hand(other_receive)
    assert not _drivable_by_hand(Subscriber.get.__get__(object()))  # a bound method of ours


def test_the_task_watcher_for_other_servers_closes_the_subscriber_on_disconnect() -> None:
    from flagstaff.realtime.sse import _watch_disconnect

    async def scenario() -> None:
        receive = FakeReceive(body_messages=1)
        subscriber = Subscriber(environment="production", transport="sse", maxsize=8)
        task = asyncio.create_task(_watch_disconnect(receive, subscriber))
        await _settle()
        assert subscriber.closed_reason is None and not task.done()
        receive.disconnect()
        await asyncio.wait_for(task, 1)
        assert subscriber.closed_reason == "disconnected"

    asyncio.run(scenario())
