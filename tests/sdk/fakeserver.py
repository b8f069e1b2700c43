"""A small threaded HTTP server speaking the SDK protocol (docs/streaming.md), for unit tests.

It keeps a snapshot and an event log, serves ``/sdk/flags`` with ETag/304 and ``/stream`` with
``put``, catch-up by ``Last-Event-ID`` and live events, and can be told to refuse requests
(401, 429 with Retry-After, 503) or to drop every open stream.  ``announce_keepalive`` sends
the ``Flagstaff-Keepalive-Seconds`` header the real server sends; ``silent`` makes streams go
quiet after their first write (no events, no keepalives: a dead connection that stays open).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY = "fss_test"


def bool_flag(key: str, on: bool = True, version: int = 1) -> dict[str, Any]:
    """A resolved (contract §3) boolean flag serving ``on`` to everyone."""
    return {
        "key": key, "type": "boolean", "kind": "release", "version": version, "state": "active",
        "variants": {"true": True, "false": False}, "off_variant": "false", "salt": None,
        "enabled": True, "prerequisites": [], "targets": [], "rules": [],
        "fallthrough": {"variant": "true" if on else "false"},
    }


def string_flag(key: str, value: str, version: int = 1) -> dict[str, Any]:
    return {
        "key": key, "type": "string", "kind": "release", "version": version, "state": "active",
        "variants": {"a": value, "off": "off"}, "off_variant": "off", "salt": None,
        "enabled": True, "prerequisites": [], "targets": [], "rules": [],
        "fallthrough": {"variant": "a"},
    }


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    at: float


@dataclass
class FakeState:
    flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    segments: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    version: int = 0


class FakeServer:
    def __init__(self, flags: list[dict[str, Any]] | None = None, keepalive: float = 0.2) -> None:
        self.state = FakeState()
        self.cond = threading.Condition()
        self.keepalive = keepalive
        self.seen: list[Seen] = []
        self.refuse: dict[str, tuple[int, dict[str, str]]] = {}
        self.stream_epoch = 0
        self.open_streams = 0
        self.closing = False
        self.raw_stream_prefix = b""
        self.announce_keepalive = False
        self.silent = False
        # Cleared by a test that must look at a client before any stream answers it.
        self.streams_open = threading.Event()
        self.streams_open.set()
        # Ingestion (contract §9): batches accepted per path, counted once per batch id.
        self.ingested: dict[str, list[dict[str, Any]]] = {}
        self.posts: list[tuple[str, str]] = []  # (path, batch_id) of every POST, retries included
        self.reports: list[dict[str, Any]] = []  # every fleet report, in arrival order
        self.report_headers: list[dict[str, str]] = []  # fleet headers seen on other requests
        self.fail_posts: list[int] = []  # statuses to answer the next POSTs with, in order
        for flag in flags or []:
            self.state.flags[flag["key"]] = flag
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join()
        deadline = time.monotonic() + 5
        while self.open_streams and time.monotonic() < deadline:
            time.sleep(0.01)

    # -- changes -------------------------------------------------------------------------

    def publish(self, kind: str, key: str, body: dict[str, Any] | None) -> int:
        with self.cond:
            self.state.version += 1
            number = self.state.version
            if kind == "flag_updated" and body is not None:
                self.state.flags[key] = body
            elif kind == "flag_archived":
                self.state.flags.pop(key, None)
            elif kind == "segment_updated" and body is not None:
                self.state.segments[key] = body
            elif kind == "segment_deleted":
                self.state.segments.pop(key, None)
            field_name = "flag" if kind.startswith("flag") else "segment"
            self.state.events.append((number, kind, {"key": key, field_name: body}))
            self.cond.notify_all()
            return number

    def set_flag(self, flag: dict[str, Any]) -> int:
        return self.publish("flag_updated", flag["key"], flag)

    def drop_streams(self) -> None:
        with self.cond:
            self.stream_epoch += 1
            self.cond.notify_all()

    def snapshot(self) -> dict[str, Any]:
        with self.cond:
            return {"environment": "production", "version": self.state.version,
                    "flags": dict(self.state.flags), "segments": dict(self.state.segments)}

    def count(self, path: str) -> int:
        return sum(1 for s in self.seen if s.path == path)


def _handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            server.seen.append(Seen(path, dict(self.headers.items()), time.monotonic()))
            if self.headers.get("Authorization") != f"Bearer {KEY}":
                self._json(401, {"error": {"code": "unauthorized", "message": "bad key"}})
                return
            if path in server.refuse:
                status, headers = server.refuse[path]
                self._json(status, {"error": {"code": "x", "message": "refused"}}, headers)
                return
            if path == "/sdk/flags":
                with server.cond:
                    self._note_report_headers()
                self._flags()
            elif path == "/stream":
                self._stream()
            else:
                self._json(404, {"error": {"code": "not_found", "message": path}})

        def do_POST(self) -> None:
            path = self.path.split("?")[0]
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            if self.headers.get("Authorization") != f"Bearer {KEY}":
                self._json(401, {"error": {"code": "unauthorized", "message": "bad key"}})
                return
            if path in server.refuse:
                status, headers = server.refuse[path]
                self._json(status, {"error": {"code": "x", "message": "refused"}}, headers)
                return
            with server.cond:
                self._note_report_headers()
                if path == "/fleet/reports":
                    server.reports.extend(body["reports"])
                    server.cond.notify_all()
                    self._json(202, {"accepted": len(body["reports"])})
                    return
                server.posts.append((path, body["batch_id"]))
                status = server.fail_posts.pop(0) if server.fail_posts else 202
                if status != 202:
                    self._json(status, {"error": {"code": "x", "message": "failing"}},
                               {"Retry-After": "0"})
                    return
                seen = {b["batch_id"] for b in server.ingested.get(path, [])}
                duplicate = body["batch_id"] in seen
                if not duplicate:
                    server.ingested.setdefault(path, []).append(body)
            self._json(202, {"accepted": len(body.get("events") or body.get("counts") or []),
                             "duplicate": duplicate})

        def _note_report_headers(self) -> None:
            if self.headers.get("Flagstaff-Instance"):
                server.report_headers.append({
                    "path": self.path, "instance": self.headers["Flagstaff-Instance"],
                    "version": self.headers.get("Flagstaff-Version", ""),
                })

        def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _flags(self) -> None:
            snap = server.snapshot()
            etag = f'"{snap["version"]}"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self._json(200, snap, {"ETag": etag})

        def _stream(self) -> None:
            server.streams_open.wait(10)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            if server.announce_keepalive:
                self.send_header("Flagstaff-Keepalive-Seconds", f"{server.keepalive:g}")
            self.end_headers()
            self.close_connection = True
            last = self.headers.get("Last-Event-ID")
            with server.cond:
                server.open_streams += 1
                epoch = server.stream_epoch
                known = {n for n, _, _ in server.state.events}
                if last is not None and (last.isdigit() and (int(last) in known or int(last) == 0
                                                               or int(last) == server.state.version)):
                    sent = int(last)
                    out = b""
                else:
                    snap = server.snapshot()
                    sent = snap["version"]
                    out = _frame("put", sent, snap)
            try:
                self.wfile.write(server.raw_stream_prefix + b"retry: 1000\n" + out)
                self.wfile.flush()
                if server.silent:
                    with server.cond:
                        server.cond.wait_for(
                            lambda: server.closing or server.stream_epoch != epoch)
                    return
                while True:
                    with server.cond:
                        server.cond.wait_for(
                            lambda: server.closing or server.stream_epoch != epoch
                            or server.state.version > sent,  # noqa: B023 (waited on at once)
                            timeout=server.keepalive,
                        )
                        if server.closing or server.stream_epoch != epoch:
                            return
                        pending = [e for e in server.state.events if e[0] > sent]
                    chunk = b"".join(_frame(kind, n, data) for n, kind, data in pending)
                    if pending:
                        sent = pending[-1][0]
                    self.wfile.write(chunk or b": keepalive\n\n")
                    self.wfile.flush()
            except OSError:
                return
            finally:
                with server.cond:
                    server.open_streams -= 1

    return Handler


def _frame(kind: str, number: int, data: Any) -> bytes:
    return f"id: {number}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()
