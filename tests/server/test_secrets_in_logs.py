"""No secret reaches the logs, at DEBUG, from any logger, against a real server process.

A full run over HTTP, Server-Sent Events, WebSocket handshakes (where the WebSocket library under
uvicorn logs every request header at DEBUG) and the OFREP event stream (whose signed URL is the
credential), with right, wrong, revoked and misplaced credentials; then every secret the server
issued, and every wrong guess, is searched for in the whole log.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from flagstaff.server.redaction import redact_text
from tests.server.test_stream_harness import Api, bearer, running_server, sse


def _handshake(port: int, headers: dict[str, str], query: str = "") -> int:
    async def attempt() -> int:
        try:
            async with connect(f"ws://127.0.0.1:{port}/ws{query}", additional_headers=headers,
                               open_timeout=10) as ws:
                await asyncio.wait_for(ws.recv(), 10)  # the snapshot
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code

    return asyncio.run(attempt())


def test_no_secret_in_a_debug_log_of_http_sse_and_websocket_traffic(tmp_path: Path) -> None:
    with running_server(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path,
                        FLAGSTAFF_LOG_LEVEL="DEBUG", FLAGSTAFF_LOG_FORMAT="json") as server:
        log_path = server.log_path
        issued = [server.admin_token]
        with Api(server) as api:
            server_key = api.sdk_key()
            client_key = api.sdk_key(kind="sdk-client")
            editor = api.ok("POST", "/tokens", json={"name": "ed", "kind": "management",
                                                     "role": "editor"})["secret"]
            revoked = api.ok("POST", "/tokens", json={"name": "gone", "kind": "management",
                                                      "role": "viewer"})
            api.ok("DELETE", f"/tokens/{revoked['id']}")
            api.create_flag("logged")
            trigger_url = api.ok("POST", "/flags/logged/environments/production/triggers",
                                 json={"name": "alert"})["url"]
            issued += [server_key, client_key, editor, revoked["secret"], trigger_url.rsplit("/", 1)[1]]
        guesses = ["fss_" + secrets.token_urlsafe(32), "fsm_" + secrets.token_urlsafe(32),
                   "guess-" + secrets.token_hex(12)]

        with httpx.Client(base_url=server.url, timeout=15) as http:
            for secret in [*issued, *guesses]:
                http.get("/flags", headers=bearer(secret))
                http.get("/sdk/flags", headers=bearer(secret))
                http.get("/stream", headers={**bearer(secret), "Last-Event-ID": "x"})
                # Pasted where it does not belong: a body field, a query string, a cookie.
                http.post("/flags", headers=bearer(editor), json={"key": secret})
                http.get("/flags", params={"q": secret}, headers=bearer(editor))
                http.get("/ui/flags", headers={"Cookie": f"flagstaff_session={secret}"})
            fired = http.post(trigger_url.removeprefix(server.url))
            assert fired.status_code == 200, fired.text
            bulk = http.post("/ofrep/v1/evaluate/flags", headers=bearer(client_key),
                             json={"context": {"targetingKey": "u1"}})
            assert bulk.status_code == 200, bulk.text
            stream_urls = [s["endpoint"]["requestUri"] for s in bulk.json().get("eventStreams", [])]
            assert stream_urls, bulk.json()
            issued += [httpx.URL(u).params["token"] for u in stream_urls]
            with http.stream("GET", stream_urls[0]) as opened:
                assert opened.status_code == 200, opened.read()
                next(opened.iter_lines())

        async def one_sse_event() -> None:
            async with sse(server, server_key) as stream:
                await stream.next(timeout=10)

        asyncio.run(one_sse_event())
        assert _handshake(server.port, bearer(server_key)) == 101
        assert _handshake(server.port, bearer(server_key), "?last_event_id=1") == 101
        for secret in [client_key, revoked["secret"], *guesses]:
            assert _handshake(server.port, bearer(secret)) in (401, 403)
        with contextlib.suppress(Exception):
            _handshake(server.port, {"Authorization": f"Basic {server_key}"})

    log = log_path.read_text()
    leaked = [s[:8] + "..." for s in [*issued, *guesses] if s in log or s[4:] in log]
    assert leaked == []
    # The handshake headers were logged (masked): the run did reach the library's DEBUG lines.
    assert "authorization: [redacted]" in log.lower()


@pytest.mark.parametrize("line", [
    "< authorization: Bearer {s}",
    "headers=[(b'authorization', b'Bearer {s}'), (b'host', b'x')]",
    "{{'Authorization': 'Bearer {s}', 'accept': '*/*'}}",
    "GET /ofrep/v1/stream?token={s}&x=1",
    "cookie: flagstaff_session={s}; theme=dark",
])
def test_each_shape_a_library_logs_a_credential_in_is_masked(line: str) -> None:
    # Whatever the value looks like: a wrong guess is often a real key with a typo.
    secret = "fss_" + secrets.token_urlsafe(32)
    guess = "wrong-" + secrets.token_hex(8)
    for value in (secret, guess):
        masked = redact_text(line.format(s=value))
        assert value not in masked and value[4:] not in masked, masked


def test_a_secret_shaped_value_is_masked_anywhere_in_a_line() -> None:
    for prefix in ("fsm_", "fss_", "fsc_", "fsh_", "fst_", "whsec_"):
        secret = prefix + secrets.token_urlsafe(32)
        masked = redact_text(f"invalid key {secret}!")
        assert secret[4:] not in masked and masked.endswith("[redacted]!"), masked
