"""``GET /stream`` against real server processes: snapshot, per-change events, catch-up."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.test_stream_harness import Api, ServerProcess, bearer, running_server, sse


def data(event: Any) -> dict[str, Any]:
    return dict(json.loads(event.data))


def latest_id(api: Api, key: str) -> int:
    """The snapshot version as /sdk/flags reports it (its ETag is the latest event id)."""
    response = api.client.get("/sdk/flags", headers=bearer(key))
    assert response.status_code == 200
    return int(response.json()["version"])


def test_snapshot_on_connect_then_one_event_per_change_with_only_that_object(
    database_url: str, tmp_path: Path
) -> None:
    with running_server(database_url, tmp_path) as server, Api(server) as api:
        api.create_flag("existing", environments={"production": {"enabled": True},
                                                  "staging": {"enabled": False}})
        api.ok("POST", "/segments", json={"key": "beta", "included": ["u1"]})
        key = api.sdk_key("production")
        version = latest_id(api, key)

        async def scenario() -> None:
            async with sse(server, key) as stream:
                put = await stream.next()
                assert put.event == "put"
                assert put.id == str(version)
                snapshot = data(put)
                assert snapshot["environment"] == "production"
                assert snapshot["version"] == version
                assert set(snapshot["flags"]) == {"existing"}
                # Resolved for this environment: no other environment's configuration.
                assert snapshot["flags"]["existing"]["enabled"] is True
                assert "environments" not in snapshot["flags"]["existing"]
                assert set(snapshot["segments"]) == {"beta"}

                api.create_flag("fresh")
                created = await stream.next()
                assert created.event == "flag_updated"
                assert int(created.id) > version
                assert set(data(created)) == {"key", "flag"}
                assert data(created)["key"] == "fresh"
                assert data(created)["flag"]["key"] == "fresh"
                assert data(created)["flag"]["enabled"] is True

                api.toggle("existing", False)
                toggled = await stream.next()
                assert (toggled.event, data(toggled)["key"]) == ("flag_updated", "existing")
                assert data(toggled)["flag"]["enabled"] is False
                assert int(toggled.id) > int(created.id)

                api.ok("DELETE", "/flags/fresh")
                archived = await stream.next()
                assert archived.event == "flag_archived"
                assert data(archived) == {"key": "fresh"}

                api.ok("PUT", "/segments/beta", json={"key": "beta", "included": ["u1", "u2"]})
                segment = await stream.next()
                assert segment.event == "segment_updated"
                assert data(segment)["key"] == "beta"
                assert data(segment)["segment"]["included"] == ["u1", "u2"]

                api.ok("DELETE", "/segments/beta")
                deleted = await stream.next()
                assert (deleted.event, data(deleted)) == ("segment_deleted", {"key": "beta"})

                ids = [int(e.id) for e in (created, toggled, archived, segment, deleted)]
                assert ids == sorted(set(ids))
                await stream.assert_quiet(1.0)

        asyncio.run(scenario())


def test_reconnect_with_last_event_id_gets_exactly_the_missed_events(
    database_url: str, tmp_path: Path
) -> None:
    with running_server(database_url, tmp_path) as server, Api(server) as api:
        key = api.sdk_key()

        async def scenario() -> None:
            async with sse(server, key) as stream:
                await stream.next()
                api.create_flag("seen")
                seen = await stream.next()
            for name in ("missed-1", "missed-2", "missed-3"):
                api.create_flag(name)
            async with sse(server, key, last_event_id=seen.id) as stream:
                missed = [await stream.next() for _ in range(3)]
                assert [data(e)["key"] for e in missed] == ["missed-1", "missed-2", "missed-3"]
                assert all(e.event == "flag_updated" for e in missed)
                ids = [int(e.id) for e in missed]
                assert ids == sorted(ids) and ids[0] > int(seen.id)
                await stream.assert_quiet(1.0)
                api.create_flag("live")
                live = await stream.next()
                assert data(live)["key"] == "live"
                await stream.assert_quiet(1.0)
            # Up to date: nothing until the next change.
            async with sse(server, key, last_event_id=live.id) as stream:
                await stream.assert_quiet(1.0)

        asyncio.run(scenario())


def test_catch_up_works_across_a_server_restart(database_url: str, tmp_path: Path) -> None:
    first = ServerProcess(database_url, tmp_path / "first.log",
                          env={"FLAGSTAFF_STREAM_KEEPALIVE_SECONDS": "0.5"}).start()
    try:
        with Api(first) as api:
            key = api.sdk_key()
            api.create_flag("before")

            async def connect_once() -> str:
                async with sse(first, key) as stream:
                    put = await stream.next()
                    assert "before" in data(put)["flags"]
                    return str(put.id)

            last_seen = asyncio.run(connect_once())
            api.create_flag("during-old-process")
    finally:
        first.stop()

    second = ServerProcess(database_url, tmp_path / "second.log", admin_token=first.admin_token,
                           env={"FLAGSTAFF_STREAM_KEEPALIVE_SECONDS": "0.5"}).start()
    try:
        with Api(second) as api:
            api.create_flag("after-restart")

            async def reconnect() -> None:
                async with sse(second, key, last_event_id=last_seen) as stream:
                    events = [await stream.next(), await stream.next()]
                    assert [data(e)["key"] for e in events] == [
                        "during-old-process", "after-restart"]
                    await stream.assert_quiet(1.0)

            asyncio.run(reconnect())
    finally:
        second.stop()


def test_too_old_or_unknown_last_event_id_gets_a_fresh_put(
    database_url: str, tmp_path: Path
) -> None:
    retention = {
        "FLAGSTAFF_STREAM_RETENTION_MAX_COUNT": "2",
        "FLAGSTAFF_STREAM_PRUNE_INTERVAL_SECONDS": "0.2",
    }
    with running_server(database_url, tmp_path, **retention) as server, Api(server) as api:
        key = api.sdk_key()
        first_id = latest_id(api, key)
        for n in range(5):
            api.create_flag(f"flag-{n}")
        latest = latest_id(api, key)
        # Wait for the retention job to prune everything but the newest two events.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            async def probe() -> str:
                async with sse(server, key, last_event_id=str(first_id)) as stream:
                    return str((await stream.next()).event)
            if asyncio.run(probe()) == "put":
                break
            time.sleep(0.2)

        async def scenario() -> None:
            async with sse(server, key, last_event_id=str(first_id)) as stream:
                put = await stream.next()
                assert put.event == "put" and put.id == str(latest)
                assert set(data(put)["flags"]) == {f"flag-{n}" for n in range(5)}
            async with sse(server, key, last_event_id=str(latest + 1000)) as stream:
                put = await stream.next()
                assert put.event == "put" and put.id == str(latest)
            # The newest retained events are still served exactly.
            async with sse(server, key, last_event_id=str(latest - 1)) as stream:
                only = await stream.next()
                assert (only.event, only.id, data(only)["key"]) == (
                    "flag_updated", str(latest), "flag-4")
                await stream.assert_quiet(0.7)

        asyncio.run(scenario())


def test_keepalives_retry_hint_and_proxy_headers(tmp_path: Path) -> None:
    with running_server(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path) as server, \
            Api(server) as api:
        key = api.sdk_key()

        async def scenario() -> None:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as client, \
                    client.stream("GET", "/stream", headers=bearer(key)) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                assert response.headers["cache-control"] == "no-cache"
                assert response.headers["x-accel-buffering"] == "no"
                # The interval in force (FAST: 0.5 s), so clients bound the silence they accept.
                assert response.headers["flagstaff-keepalive-seconds"] == "0.5"
                assert "content-encoding" not in response.headers
                assert "content-length" not in response.headers
                lines: list[str] = []
                started = time.monotonic()
                async for line in response.aiter_lines():
                    lines.append(line)
                    if lines.count(": keepalive") >= 3:
                        break
                # Three keepalives at a 0.5 s interval, well before the 15 s default.
                assert time.monotonic() - started < 5
                # The retry hint is a field of the first event.
                assert lines[:3] == ["retry: 3000", lines[1], "event: put"]
                assert lines[1].startswith("id: ")

        asyncio.run(scenario())


def test_stream_refuses_bad_ids_and_the_wrong_credentials(tmp_path: Path) -> None:
    with running_server(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path) as server, \
            Api(server) as api:
        server_key = api.sdk_key()
        client_key = api.sdk_key(kind="sdk-client")
        with httpx.Client(base_url=server.url, timeout=10) as client:
            bad = client.get("/stream", headers={**bearer(server_key), "Last-Event-ID": "abc"})
            assert bad.status_code == 400
            assert bad.json()["error"]["details"]["field"] == "Last-Event-ID"
            assert client.get("/stream").status_code == 401
            assert client.get("/stream", headers=bearer("fss_nope")).status_code == 401
            assert client.get("/stream", headers=bearer(client_key)).status_code == 403
            assert client.get("/stream", headers=bearer(server.admin_token)).status_code == 403


def test_connections_end_at_their_maximum_age_and_resume(tmp_path: Path) -> None:
    age = {"FLAGSTAFF_STREAM_MAX_AGE_MIN_SECONDS": "1",
           "FLAGSTAFF_STREAM_MAX_AGE_MAX_SECONDS": "1.5"}
    with running_server(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path, **age) as server, \
            Api(server) as api:
        key = api.sdk_key()

        async def scenario() -> None:
            started = time.monotonic()
            async with sse(server, key) as stream:
                put = await stream.next()
                with pytest.raises(StopAsyncIteration):
                    await stream.next(timeout=5)
            assert 0.9 < time.monotonic() - started < 4
            api.create_flag("while-away")
            async with sse(server, key, last_event_id=put.id) as stream:
                assert data(await stream.next())["key"] == "while-away"

        asyncio.run(scenario())


def test_deleting_the_keys_environment_ends_its_streams(tmp_path: Path) -> None:
    with running_server(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path) as server, \
            Api(server) as api:
        api.ok("POST", "/environments", json={"key": "qa"})
        qa_key = api.sdk_key("qa")
        prod_key = api.sdk_key("production")

        async def scenario() -> None:
            async with sse(server, qa_key) as qa, sse(server, prod_key) as prod:
                await qa.next()
                await prod.next()
                api.ok("DELETE", "/environments/qa")
                gone = await qa.next()
                assert (gone.event, data(gone)) == ("environment_deleted", {"key": "qa"})
                with pytest.raises(StopAsyncIteration):
                    await qa.next()
                # Other environments' streams are not told about it.
                await prod.assert_quiet(0.7)

        asyncio.run(scenario())
