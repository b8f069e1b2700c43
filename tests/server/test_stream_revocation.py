"""Revoking a key ends its open ``/stream``, ``/ws`` and OFREP event-stream connections, on the
replica that served the revocation and on every other one (the revocation travels through the
change log), while other keys' connections carry on."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.server.test_stream_harness import (
    Api,
    ServerProcess,
    SseClient,
    bearer,
    running_server,
    sse,
)

# Two server processes start on a shared, busy machine.
pytestmark = pytest.mark.timeout(300)
postgres_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
# Far beyond any wait below: an end that is not the revocation would show as a timeout.
ENDS_WITHIN = 15.0


def key_with_id(api: Api, environment: str = "production") -> tuple[str, str]:
    body = {"name": "revocable", "kind": "sdk-server", "environment": environment}
    created = api.ok("POST", "/tokens", json=body)
    return str(created["secret"]), str(created["id"])


def event_stream_url(server: ServerProcess, key: str) -> str:
    answer = httpx.post(f"{server.url}/ofrep/v1/evaluate/flags", headers=bearer(key), timeout=10,
                        json={"context": {"targetingKey": "u1"}})
    assert answer.status_code == 200, answer.text
    return server.url + answer.json()["eventStreams"][0]["endpoint"]["requestUri"]


@contextlib.asynccontextmanager
async def ofrep_events(url: str) -> AsyncIterator[SseClient]:
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=60)) as client,
        aconnect_sse(client, "GET", url) as source,
    ):
        assert source.response.status_code == 200, await source.response.aread()
        stream = SseClient(source.response, source.aiter_sse())
        try:
            yield stream
        finally:
            await stream.close()


async def ends(stream: SseClient) -> None:
    """The stream finishes (no events are expected before that: a revocation carries none)."""
    with pytest.raises(StopAsyncIteration):
        while True:
            event = await stream.next(timeout=ENDS_WITHIN)
            assert event.event in ("put", "message", ""), event


async def closed_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), ENDS_WITHIN))
            assert message["event"] == "put", message
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


async def revoke_and_check(served: ServerProcess, revoking: Api, ofrep_url: str,
                           key: str, key_id: str, bystander_key: str) -> None:
    """Open all three kinds of connection with ``key`` on ``served`` (and a ``/stream`` with
    ``bystander_key``), revoke ``key`` through ``revoking``, and check what ends."""
    ws_url = f"ws://127.0.0.1:{served.port}/ws"
    async with (
        sse(served, key) as stream,
        connect(ws_url, additional_headers=bearer(key)) as ws,
        ofrep_events(ofrep_url) as page,
        sse(served, bystander_key) as bystander,
    ):
        assert (await stream.next()).event == "put"
        assert (await bystander.next()).event == "put"
        revoking.ok("DELETE", f"/tokens/{key_id}")
        await asyncio.gather(ends(stream), ends(page))
        # 1008: policy violation, the documented "do not reconnect with this key".
        assert await closed_code(ws) == 1008
        # Other keys' connections are untouched and still get changes.
        revoking.create_flag("after-revocation")
        update = await bystander.next(timeout=ENDS_WITHIN)
        assert (update.event, json.loads(update.data)["key"]) == (
            "flag_updated", "after-revocation")
    # And the key cannot come back on any of them.
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        assert (await http.get("/stream", headers=bearer(key))).status_code == 401
        assert (await http.get(ofrep_url)).status_code == 401
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url, additional_headers=bearer(key)):
            pass
    assert refused.value.response.status_code == 401


def test_revoking_a_key_ends_its_streams_websockets_and_event_streams(
    database_url: str, tmp_path: Path
) -> None:
    with running_server(database_url, tmp_path) as server, Api(server) as api:
        key, key_id = key_with_id(api)
        bystander = api.sdk_key()
        url = event_stream_url(server, key)
        asyncio.run(revoke_and_check(server, api, url, key, key_id, bystander))


@postgres_only
@pytest.mark.parametrize("delivery", ["notify", "poll"])
def test_a_revocation_on_one_replica_ends_the_keys_connections_on_another(
    database_url: str, tmp_path: Path, delivery: str
) -> None:
    # "notify": a poll far beyond the waits, so only LISTEN/NOTIFY can end them in time;
    # "poll": LISTEN off, so only the change log's poll can.
    b_env = ({"FLAGSTAFF_STREAM_POLL_INTERVAL_SECONDS": "60"} if delivery == "notify" else
             {"FLAGSTAFF_STREAM_LISTEN": "false", "FLAGSTAFF_STREAM_POLL_INTERVAL_SECONDS": "0.5"})
    with running_server(database_url, tmp_path) as a, \
            running_server(database_url, tmp_path, **b_env) as b, Api(a) as api_a:
        key, key_id = key_with_id(api_a)
        bystander = api_a.sdk_key()
        url = event_stream_url(b, key)
        asyncio.run(revoke_and_check(b, api_a, url, key, key_id, bystander))
