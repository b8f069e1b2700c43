"""A real local HTTP receiver for webhook tests that can be down, fail, hang, or work."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.conftest import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """``mode`` is ``ok`` (200, recorded), ``error`` (500) or ``slow`` (answers after
    ``delay`` seconds, past the dispatcher's timeout); ``stop()`` makes it refuse connections."""

    port: int = field(default_factory=free_port)
    mode: str = "ok"
    delay: float = 2.0
    received: list[Received] = field(default_factory=list)
    hits: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.hits += 1
                mode = receiver.mode
                if mode == "slow":
                    time.sleep(receiver.delay)
                if mode == "ok":
                    receiver.received.append(Received(self.path, dict(self.headers), body))
                self.send_response(500 if mode == "error" else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


def wait_for(condition: Any, *, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``condition()`` until it returns something truthy (generous deadline: the machine
    is shared); returns that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
