"""``/ws`` against a real server process with the ``websockets`` client."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.server.test_stream_harness import Api, ServerProcess, bearer, running_server


def ws_url(server: ServerProcess, last_event_id: str | None = None) -> str:
    base = f"ws://127.0.0.1:{server.port}/ws"
    return base if last_event_id is None else f"{base}?last_event_id={last_event_id}"


async def receive(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout)))


def test_websocket_carries_the_snapshot_events_and_catch_up(
    database_url: str, tmp_path: Path
) -> None:
    with running_server(database_url, tmp_path) as server, Api(server) as api:
        key = api.sdk_key()
        api.create_flag("before")

        async def scenario() -> None:
            async with connect(ws_url(server), additional_headers=bearer(key)) as ws:
                put = await receive(ws)
                assert put["event"] == "put"
                assert put["id"] == put["data"]["version"]
                assert set(put["data"]["flags"]) == {"before"}
                api.toggle("before", False)
                update = await receive(ws)
                assert update["event"] == "flag_updated"
                assert update["id"] > put["id"]
                assert update["data"]["key"] == "before"
                assert update["data"]["flag"]["enabled"] is False
                assert set(update["data"]) == {"key", "flag"}
            api.create_flag("missed")
            api.ok("DELETE", "/flags/before")
            url = ws_url(server, last_event_id=str(update["id"]))
            async with connect(url, additional_headers=bearer(key)) as ws:
                missed = [await receive(ws), await receive(ws)]
                assert [(m["event"], m["data"]["key"]) for m in missed] == [
                    ("flag_updated", "missed"), ("flag_archived", "before")]
                assert missed[1]["data"] == {"key": "before"}
                with pytest.raises(TimeoutError):
                    await receive(ws, timeout=0.7)

        asyncio.run(scenario())


def test_websocket_handshake_refusals_carry_status_and_error_body(tmp_path: Path) -> None:
    with running_server(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path) as server, \
            Api(server) as api:
        key = api.sdk_key()
        client_key = api.sdk_key(kind="sdk-client")

        async def refused(url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
            with pytest.raises(InvalidStatus) as info:
                async with connect(url, additional_headers=headers):
                    pass
            response = info.value.response
            return response.status_code, json.loads(response.body or b"{}")

        async def scenario() -> None:
            status, body = await refused(ws_url(server), {})
            assert (status, body["error"]["code"]) == (401, "unauthorized")
            status, body = await refused(ws_url(server), bearer(client_key))
            assert (status, body["error"]["code"]) == (403, "forbidden")
            status, body = await refused(ws_url(server, "abc"), bearer(key))
            assert status == 400
            assert body["error"]["details"]["field"] == "last_event_id"

        asyncio.run(scenario())


def test_websocket_closes_with_1001_at_maximum_age(tmp_path: Path) -> None:
    age = {"FLAGSTAFF_STREAM_MAX_AGE_MIN_SECONDS": "0.5",
           "FLAGSTAFF_STREAM_MAX_AGE_MAX_SECONDS": "0.8"}
    with running_server(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path, **age) as server, \
            Api(server) as api:
        key = api.sdk_key()

        async def scenario() -> None:
            async with connect(ws_url(server), additional_headers=bearer(key)) as ws:
                assert (await receive(ws))["event"] == "put"
                with pytest.raises(ConnectionClosed) as info:
                    await receive(ws, timeout=5)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1001

        asyncio.run(scenario())


def test_websocket_handshake_of_a_rate_limited_address_is_429_with_retry_after(
    tmp_path: Path,
) -> None:
    # A 403 would tell clients to stop for good; the limit is temporary and says until when.
    with running_server(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path,
                        FLAGSTAFF_MAX_AUTH_FAILURES="3",
                        FLAGSTAFF_AUTH_FAILURE_WINDOW_SECONDS="30") as server, Api(server) as api:
        key = api.sdk_key()

        async def scenario() -> None:
            for _ in range(3):
                with pytest.raises(InvalidStatus) as info:
                    async with connect(ws_url(server),
                                       additional_headers=bearer("fss_wrong_guess_000000")):
                        pass
                assert info.value.response.status_code == 401
            with pytest.raises(InvalidStatus) as info:
                async with connect(ws_url(server), additional_headers=bearer(key)):
                    pass
            response = info.value.response
            assert response.status_code == 429
            assert 1 <= int(response.headers["Retry-After"]) <= 30
            body = json.loads(response.body or b"{}")
            assert body["error"]["code"] == "rate_limited"

        asyncio.run(scenario())
