"""The OFREP event stream (ADR-0008): who is woken, by what, and how a reconnect resumes."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.builders import cond, flag, segment
from tests.server.conftest import ADMIN_SECRET, LiveServer, auth

BULK = "/ofrep/v1/evaluate/flags"


class Events:
    """An SSE connection read in a thread: ``next(timeout)`` gives ``(id, event, data)``."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.items: queue.Queue[tuple[str | None, str | None, str] | BaseException] = queue.Queue()
        self.response_headers: dict[str, str] = {}
        self.status = 0
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=60))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, headers or {}), daemon=True)
        self._opened = threading.Event()
        self._socket: socket.socket | None = None
        self._thread.start()
        assert self._opened.wait(10), "the stream did not open"

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                self.status = response.status_code
                self.response_headers = dict(response.headers)
                self._socket = response.extensions["network_stream"].get_extra_info("socket")
                self._opened.set()
                block: dict[str, str] = {}
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line == "":
                        if block:
                            self.items.put((block.get("id"), block.get("event"), block.get("data", "")))
                        block = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        block[name] = value.removeprefix(" ")
        except BaseException as exc:  # reported to the test
            self._opened.set()
            if not self._stop.is_set():
                self.items.put(exc)

    def next(self, timeout: float = 10) -> tuple[str | None, str | None, str]:
        item = self.items.get(timeout=timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    def quiet(self, seconds: float) -> bool:
        """True when nothing arrives for ``seconds``."""
        try:
            item = self.items.get(timeout=seconds)
        except queue.Empty:
            return True
        self.items.put(item)
        return False

    def drain(self, settle: float = 0.5) -> int:
        """Discard what arrived until nothing more does for ``settle`` seconds."""
        count = 0
        while not self.quiet(settle):
            self.next()
            count += 1
        return count

    def close(self) -> None:
        self._stop.set()
        if self._socket is not None:
            # The reading thread waits in recv(), which closing the client does not wake: the
            # server would hold the stream (and its shutdown) until the next keepalive.
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        self._client.close()


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, headers=auth(ADMIN_SECRET), timeout=10) as client:
        client.post("/segments", json=segment("beta-testers").include("u-beta").build())
        for f in (
            flag("banner").boolean().client_side().on("production"),
            flag("checkout").string({"a": "A", "b": "B"}, off="a").client_side()
            .env("production", lambda e: e.on().rule("vips", cond(None, "segment_match", "beta-testers"),
                                                     serve="b").fallthrough("a")),
            flag("backend-only").boolean().on("production"),
            flag("gate").boolean().on("production"),
            flag("gated").boolean().client_side()
            .env("production", lambda e: e.on().prerequisite("gate", "true").fallthrough("true")),
        ):
            assert client.post("/flags", json=f.build()).status_code == 201
        yield client


def key(api: httpx.Client, kind: str = "sdk-client", environment: str = "production") -> str:
    answer = api.post("/tokens", json={"name": f"{kind}-{environment}", "kind": kind,
                                       "environment": environment})
    return str(answer.json()["secret"])


def bulk(api: httpx.Client, secret: str, context: dict[str, Any] | None = None) -> httpx.Response:
    return api.post(BULK, json={"context": context or {"targetingKey": "u1"}}, headers=auth(secret))


def stream_url(base: str, answer: httpx.Response) -> str:
    streams = answer.json()["eventStreams"]
    assert [s["type"] for s in streams] == ["sse"] and streams[0]["inactivityDelaySec"] == 120
    return base + streams[0]["endpoint"]["requestUri"]


def refetch(item: tuple[str | None, str | None, str]) -> dict[str, Any]:
    event_id, name, data = item
    assert name == "message" and event_id is not None
    body = json.loads(data)
    assert body["type"] == "refetchEvaluation"
    assert body["etag"].endswith(f'-{event_id}"') and isinstance(body["lastModified"], int)
    return dict(body)


def test_client_streams_wake_only_for_changes_to_their_answers(
    live_server: LiveServer, api: httpx.Client
) -> None:
    client_key, server_key = key(api), key(api, "sdk-server")
    first = bulk(api, client_key)
    url = stream_url(live_server.url, first)
    assert "token=" in url and client_key not in url
    page = Events(url)
    backend = Events(stream_url(live_server.url, bulk(api, server_key)))
    try:
        assert page.status == 200 and page.response_headers["content-type"].startswith("text/event-stream")
        position, name, data = page.next()
        assert (name, data) == (None, "") and position is not None  # an id-only block
        backend.next()
        # Neither another environment nor a server-only flag wakes a page; the back end hears both.
        api.patch("/flags/banner/environments/development", json={"enabled": True})
        api.post("/flags/backend-only/environments/production/kill")
        assert refetch(backend.next())["etag"]
        assert page.quiet(1.5)
        # A flag a client-side flag depends on, a segment one uses, a client-side flag: woken.
        killed = api.post("/flags/gate/environments/production/kill")
        assert killed.status_code == 200
        gate_event = page.next()
        refetch(gate_event)
        api.put("/segments/beta-testers", json=segment("beta-testers").include("u-beta", "u2").build())
        refetch(page.next())
        api.post("/flags/banner/environments/production/kill")
        banner = refetch(page.next())
        # The re-fetch the event triggers carries its metadata and gets the new answers.
        again = api.post(f"{BULK}?flagConfigEtag={banner['etag']}&flagConfigLastModified={banner['lastModified']}",
                         json={"context": {"targetingKey": "u1"}},
                         headers=auth(client_key) | {"If-None-Match": first.headers["ETag"]})
        assert again.status_code == 200
        assert {f["key"]: f.get("value") for f in again.json()["flags"]}["banner"] is False
        # A flag made client-side, and then hidden again, wakes pages both times.
        api.patch("/flags/backend-only", json={"client_side": True})
        refetch(page.next())
        api.patch("/flags/backend-only", json={"client_side": False})
        refetch(page.next())
        # A save that changes nothing wakes nobody.
        assert backend.drain() >= 5
        current = api.get("/flags/banner").json()
        api.put("/flags/banner", json=current)
        assert page.quiet(1.5) and backend.quiet(0.5)
    finally:
        page.close()
        backend.close()


def test_reconnect_with_last_event_id_resumes_without_a_refresh(
    live_server: LiveServer, api: httpx.Client
) -> None:
    client_key = key(api)
    url = stream_url(live_server.url, bulk(api, client_key))
    page = Events(url)
    position = page.next()[0]
    page.close()
    assert position is not None
    # Nothing relevant since: only the position, no refetch.
    resumed = Events(url, {"Last-Event-ID": position})
    assert resumed.next() == (position, None, "")
    assert resumed.quiet(1)
    resumed.close()
    # Missed relevant changes: one coalesced refetch, with the latest id.
    api.post("/flags/banner/environments/production/kill")
    api.patch("/flags/checkout/environments/production", json={"enabled": False})
    api.patch("/flags/backend-only/environments/production", json={"enabled": False})
    caught_up = Events(url, {"Last-Event-ID": position})
    item = caught_up.next()
    refetch(item)
    now_at = caught_up.next()
    assert now_at[1] is None and now_at[2] == ""  # then the position
    # One refetch for the two client-side changes, named by the later one; the server-only
    # change after it moved the position but is not what the page is told about.
    assert int(position) < int(item[0] or 0) < int(now_at[0] or 0)
    assert caught_up.quiet(1)
    caught_up.close()
    # An id this database never issued (another install, a restored backup): re-fetch.
    stranger = Events(url, {"Last-Event-ID": "999999999"})
    assert stranger.next()[1] == "message"
    stranger.close()


def test_stream_urls_are_signed_short_lived_and_die_with_their_key(
    live_server: LiveServer, api: httpx.Client
) -> None:
    client_key = key(api)
    url = stream_url(live_server.url, bulk(api, client_key))
    with httpx.Client(timeout=10) as http:
        for broken in (url[:-3] + "AAA", url.replace("token=", "token=x"),
                       live_server.url + "/ofrep/v1/event-stream"):
            answer = http.get(broken)
            assert answer.status_code in (401, 400), broken
            assert set(answer.json()) <= {"errorCode", "errorDetails"}
        bad_id = http.get(url, headers={"Last-Event-ID": "not-a-number"})
        assert bad_id.status_code == 400 and bad_id.json()["errorCode"] == "GENERAL"
    # The same key in the same window gets the same URL (so an unchanged bulk answer keeps
    # its ETag), and a management token gets no stream.
    assert stream_url(live_server.url, bulk(api, client_key)) == url
    management = api.post(f"{BULK}?environment=production", json={"context": {"targetingKey": "u"}})
    assert "eventStreams" not in management.json()
    token_id = next(t["id"] for t in api.get("/tokens").json()["items"] if t["kind"] == "sdk-client")
    api.delete(f"/tokens/{token_id}")
    with httpx.Client(timeout=10) as http:
        assert http.get(url).status_code == 401


def test_origins_hold_for_streams_too(live_server: LiveServer, api: httpx.Client) -> None:
    api.patch("/environments/production/client-access", json={"allowed_origins": ["https://app.example.com"]})
    url = stream_url(live_server.url, bulk(api, key(api)))
    time.sleep(0.1)
    page = Events(url, {"Origin": "https://app.example.com"})
    assert page.status == 200
    assert page.response_headers["access-control-allow-origin"] == "https://app.example.com"
    page.close()
    with httpx.Client(timeout=10) as http:
        refused = http.get(url, headers={"Origin": "https://elsewhere.example.com"})
    assert refused.status_code == 403
