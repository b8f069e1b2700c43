"""What one turn of the event loop writes leaves as one write, in order, no later than the end of
that turn; large writes, closing, aborting and a closing socket behave as the socket's own
transport does.  Served by uvicorn, an answer's head and body go out in one write."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
from fastapi import FastAPI

from flagstaff.server import coalesced_writes
from flagstaff.server.coalesced_writes import FLUSH_BYTES, CoalescingTransport
from tests.server.conftest import LiveServer


class Socket(asyncio.Transport):
    """The socket's transport, as far as the coalescing transport uses it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False
        self.buffered = 0

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self.events.append("write")

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def abort(self) -> None:
        self.closing = True
        self.events.append("abort")

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000)}.get(name, default)


def run(scenario: Any) -> None:
    async def main() -> None:
        raw = Socket()
        await scenario(raw, CoalescingTransport(raw, asyncio.get_running_loop()))

    asyncio.run(main())


def test_one_turns_writes_leave_as_one_write_at_its_end() -> None:
    async def scenario(raw: Socket, transport: CoalescingTransport) -> None:
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"")
        transport.write(bytearray(b"{}"))
        assert raw.writes == []  # still this turn
        assert transport.get_write_buffer_size() == 21
        await asyncio.sleep(0)
        assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
        assert transport.get_write_buffer_size() == 0
        transport.writelines([b"a", b"b"])
        await asyncio.sleep(0)
        assert raw.writes[1:] == [b"ab"]  # the next turn's, in order

    run(scenario)


def test_a_large_write_goes_at_once() -> None:
    async def scenario(raw: Socket, transport: CoalescingTransport) -> None:
        transport.write(b"head")
        transport.write(b"x" * FLUSH_BYTES)
        assert raw.writes == [b"head" + b"x" * FLUSH_BYTES]  # flow control sees it now
        await asyncio.sleep(0)
        assert len(raw.writes) == 1

    run(scenario)


def test_closing_writes_what_is_pending_first_and_aborting_drops_it() -> None:
    async def scenario(raw: Socket, transport: CoalescingTransport) -> None:
        transport.write(b"last words")
        transport.close()
        assert raw.events == ["write", "close"] and raw.writes == [b"last words"]

    run(scenario)

    async def aborted(raw: Socket, transport: CoalescingTransport) -> None:
        transport.write(b"never sent")
        transport.abort()
        await asyncio.sleep(0)
        assert raw.events == ["abort"] and transport.get_write_buffer_size() == 0

    run(aborted)


def test_what_is_pending_when_the_socket_closes_is_dropped() -> None:
    async def scenario(raw: Socket, transport: CoalescingTransport) -> None:
        transport.write(b"too late")
        raw.closing = True  # the peer went away within the turn
        await asyncio.sleep(0)
        assert raw.writes == [] and transport.is_closing()
        assert transport.get_extra_info("peername") == ("127.0.0.1", 5000)

    run(scenario)


def _get(port: int, path: str, count: int) -> list[bytes]:
    """``count`` keep-alive GETs on one connection, each answer read whole."""
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        for _ in range(count):
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(body) < length:
                body += conn.recv(65536)
            answers.append(body)
    return answers


def test_served_by_uvicorn_an_answer_is_one_write(
    monkeypatch: pytest.MonkeyPatch, unused_port: int,
) -> None:
    flushed: list[int] = []  # how many pieces each write to the socket carried
    flush = CoalescingTransport.flush

    def counting(self: CoalescingTransport) -> None:
        if self._pending:
            flushed.append(len(self._pending))
        flush(self)

    monkeypatch.setattr(coalesced_writes.CoalescingTransport, "flush", counting)
    app = FastAPI()
    big = "x" * (2 * FLUSH_BYTES)

    @app.get("/small")
    def small() -> dict[str, str]:
        return {"answer": "yes"}

    @app.get("/big")
    def large() -> dict[str, str]:
        return {"answer": big}

    server = LiveServer(app, unused_port).start()
    try:
        assert [json.loads(b) for b in _get(unused_port, "/small", 3)] == [{"answer": "yes"}] * 3
        assert flushed == [2, 2, 2]  # head and body, joined, once per answer
        flushed.clear()
        assert json.loads(_get(unused_port, "/big", 1)[0]) == {"answer": big}
        assert flushed == [2]  # the body reached the flush size: written with its head at once
    finally:
        server.close()
